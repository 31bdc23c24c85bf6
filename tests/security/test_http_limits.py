"""A running server bounds what strangers can hold open: alert streams, connections, and the
time to send a request. Past each bound it refuses (503) or closes, and keeps serving others.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from pipelines.bench.server_process import ServerProcess, serve
from tests.service.client import transaction

STREAMS = 3
READ_TIMEOUT = 1.0
CONNECTIONS = 4


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    settings = {
        "FRAUDSTREAM_ALERT_THRESHOLD": "0",  # every score alerts: the streams carry something
        "FRAUDSTREAM_MAX_STREAM_SUBSCRIBERS": str(STREAMS),
        "FRAUDSTREAM_READ_TIMEOUT": str(READ_TIMEOUT),
        "FRAUDSTREAM_LOG_LEVEL": "warning",
    }
    with serve(settings=settings) as process:
        yield process


def _subscribed(stack: contextlib.ExitStack, client: httpx.Client) -> Iterator[str]:
    stream = stack.enter_context(client.stream("GET", "/v1/alerts/stream"))
    assert stream.status_code == 200
    lines = stream.iter_lines()
    assert next(lines).startswith(":")  # registered before the next one asks
    return lines


def _next_alert(lines: Iterator[str]) -> dict[str, object]:
    for line in lines:
        if line.startswith("data:"):
            alert: dict[str, object] = json.loads(line.removeprefix("data:"))
            return alert
    raise AssertionError("the stream ended")


def test_streams_past_the_cap_get_503_while_the_open_ones_and_the_api_go_on(
    server: ServerProcess,
) -> None:
    with contextlib.ExitStack() as stack:
        clients = [stack.enter_context(httpx.Client(base_url=server.url, timeout=10))]
        clients += [stack.enter_context(httpx.Client(base_url=server.url, timeout=10))]
        clients += [stack.enter_context(httpx.Client(base_url=server.url, timeout=10))]
        streams = [_subscribed(stack, client) for client in clients]
        with httpx.Client(base_url=server.url, timeout=10) as api:
            refused = api.get("/v1/alerts/stream")
            assert refused.status_code == 503
            assert "FRAUDSTREAM_MAX_STREAM_SUBSCRIBERS" in refused.json()["detail"]
            assert refused.headers["retry-after"]
            # Longer than the read deadline: a request once read is never cut.
            time.sleep(READ_TIMEOUT * 2)
            assert api.post("/v1/score", json=transaction(7)).json()["decision"] == "alert"
            assert api.get("/v1/alerts").status_code == 200
            for lines in streams:
                alert = _next_alert(lines)
                assert alert["transaction"]["transaction_id"] == "tx-7"  # type: ignore[index]
    with httpx.Client(base_url=server.url, timeout=10) as api, contextlib.ExitStack() as stack:
        _subscribed(stack, api)  # the closed ones freed their places


def test_a_request_sent_too_slowly_is_closed_and_others_are_answered(
    server: ServerProcess,
) -> None:
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    head = b"POST /v1/labels HTTP/1.1\r\nHost: localhost\r\ncontent-type: application/json\r\n"
    cases = {
        "silent": [],
        "headers a byte at a time": [bytes([byte]) for byte in head],
        "body never sent": [head + b"content-length: 100\r\n\r\n"],
    }
    for name, pieces in cases.items():
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            waited = _closed_after(sock, pieces)
            assert READ_TIMEOUT * 0.8 < waited < READ_TIMEOUT + 2, (name, waited)
    with httpx.Client(base_url=server.url, timeout=10) as api:
        assert api.get("/healthz").status_code == 200


def _closed_after(sock: socket.socket, pieces: list[bytes]) -> float:
    """Send ``pieces`` slowly until the server closes the connection; how long that took."""
    started = time.monotonic()
    for piece in pieces:
        if _closed(sock):
            break
        try:
            sock.sendall(piece)
        except OSError:
            break
        time.sleep(0.05)
    try:
        answer = sock.recv(1_000)
    except OSError:
        answer = b""
    assert answer == b"", answer  # closed without an answer
    return time.monotonic() - started


def _closed(sock: socket.socket) -> bool:
    if not select.select([sock], [], [], 0)[0]:
        return False
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


def test_connections_past_the_limit_get_503_and_the_next_one_is_served() -> None:
    settings = {"FRAUDSTREAM_MAX_CONNECTIONS": str(CONNECTIONS), "FRAUDSTREAM_LOG_LEVEL": "error"}
    with serve(settings=settings) as server, contextlib.ExitStack() as stack:
        # Streams hold their connections open (while read from: a dropped reader closes its
        # response). The limit counts open connections, the one asking included.
        clients = [
            stack.enter_context(httpx.Client(base_url=server.url, timeout=10))
            for _ in range(CONNECTIONS - 1)
        ]
        streams = [_subscribed(stack, client) for client in clients]
        with httpx.Client(base_url=server.url, timeout=10) as api:
            assert api.get("/healthz").status_code == 503
        host, port = server.url.removeprefix("http://").rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=10) as at_the_limit:
            time.sleep(0.2)
            assert not _closed(at_the_limit)  # would be answered 503 once it asks
            with socket.create_connection((host, int(port)), timeout=10) as past_it:
                assert _closed_after(past_it, []) < 1.0  # closed at once, not at the deadline
        assert len(streams) == CONNECTIONS - 1  # held until here
        stack.close()
        with httpx.Client(base_url=server.url, timeout=10) as api:
            assert api.get("/healthz").status_code == 200
