"""Fixtures shared by the whole suite."""

from __future__ import annotations

import pytest

pytest_plugins = ["tests.browser", "tests.servers.fixtures", "tests.servers.kafka_fixtures"]


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run on asyncio, the loop the service itself runs on."""
    return "asyncio"
