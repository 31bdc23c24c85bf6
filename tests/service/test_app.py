"""The app runs whatever its runtime asks for and never asks which runtime it holds."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from tests.service.client import api_client

SERVICE = Path(__file__).parents[2] / "service"
RUNTIME_PARTS = re.compile(r"isinstance\([^)]*(runtime|lifecycle|retrain|jobs)", re.IGNORECASE)
IMPLEMENTATIONS = re.compile(r"from pipelines\.runtime\.(embedded|cluster) import")
COMPOSITION_ROOTS = {"bootstrap.py", "distributed.py"}


@pytest.mark.anyio
async def test_the_embedded_app_runs_the_loops_its_runtime_names() -> None:
    async with api_client(retrain_every="1d") as (_, app):
        running = {task.get_name() for task in asyncio.all_tasks() if not task.done()}
        assert {"transaction-queue", "quality-sampler", "model-lifecycle"} <= running
        assert "retrain-schedule" in running  # its jobs are local
        assert "simulated-feed" not in running  # off by default
        assert app.state.runtime.local_jobs is not None


def test_service_never_asks_which_runtime_it_holds() -> None:
    sources = {path: path.read_text() for path in SERVICE.rglob("*.py")}
    assert len(sources) > 20
    assert [str(path) for path, text in sources.items() if RUNTIME_PARTS.search(text)] == []
    importing = {path.name for path, text in sources.items() if IMPLEMENTATIONS.search(text)}
    assert importing == COMPOSITION_ROOTS
