"""The refusal to start unsafely.

Every route against every role: ``tests/security/test_routes_access.py``.
"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from service.cli import app


@pytest.mark.parametrize(
    ("command", "environment", "says"),
    [
        (["api"], {}, "FRAUDSTREAM_SECRET_KEY"),
        (["api"], {"FRAUDSTREAM_SECRET_KEY": "s" * 32}, "FRAUDSTREAM_API_KEYS"),
        (["worker"], {}, "FRAUDSTREAM_SECRET_KEY"),
        (["learner"], {}, "FRAUDSTREAM_SECRET_KEY"),
        (["serve", "--host", "0.0.0.0"], {}, "FRAUDSTREAM_ALLOW_OPEN"),
    ],
)
def test_outside_localhost_the_service_refuses_to_start_with_defaults(
    command: list[str], environment: dict[str, str], says: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FRAUDSTREAM_KAFKA_BOOTSTRAP", "127.0.0.1:1")
    monkeypatch.setenv("FRAUDSTREAM_REDIS_URL", "redis://127.0.0.1:1/0")
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 2, result.output
    assert says in result.output
    assert "s" * 32 not in result.output  # a secret is never echoed
