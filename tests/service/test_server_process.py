"""The real server process (uvicorn) over a real socket, including the SSE alert stream."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from pipelines.bench.server_process import serve
from tests.service.client import transaction


@pytest.fixture
def server() -> Iterator[str]:
    """``fraudstream serve`` on a free port, alerting on every card, stopped by its pid."""
    settings = {"FRAUDSTREAM_ALERT_THRESHOLD": "0", "FRAUDSTREAM_LOG_LEVEL": "warning"}
    with serve(settings=settings) as process:
        yield process.url


def test_real_server_scores_and_streams_alerts_over_sse(server: str) -> None:
    with (
        httpx.Client(base_url=server, timeout=10) as client,
        client.stream("GET", "/v1/alerts/stream") as stream,
    ):
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.iter_lines()
        assert next(lines).startswith(":")  # the subscription is open before we score
        scored = client.post("/v1/score", json=transaction(42))
        assert scored.status_code == 200
        assert scored.json()["decision"] == "alert"
        event = None
        for line in lines:
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            if line.startswith("data:") and event == "alert":
                alert = json.loads(line.split(":", 1)[1])
                break
        assert alert["transaction"]["transaction_id"] == "tx-42"
        assert alert["score"] == scored.json()["score"]
        assert alert["model_version"] == scored.json()["model_version"]
        listed = client.get("/v1/alerts").json()
        assert listed[0]["transaction"]["transaction_id"] == "tx-42"
