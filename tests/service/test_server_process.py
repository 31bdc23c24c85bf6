"""The real server process (uvicorn) over a real socket, including the SSE alert stream."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.service.client import transaction


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def server() -> Iterator[str]:
    """``fraudstream serve`` on a free port, alerting on every card, stopped by its pid."""
    port = _free_port()
    environment = {
        **os.environ,
        "FRAUDSTREAM_ALERT_THRESHOLD": "0",
        "FRAUDSTREAM_SIMULATE_RATE": "0",
        "FRAUDSTREAM_LOG_LEVEL": "warning",
    }
    command = [str(Path(sys.executable).with_name("fraudstream")), "serve", "--port", str(port)]
    process = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert process.poll() is None, "the server exited during start-up"
            try:
                if httpx.get(f"{base}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        else:
            pytest.fail("the server did not become ready within 60 s")
        yield base
    finally:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


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
