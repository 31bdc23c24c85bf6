"""A role's metrics page: the default port or the next free one; a port set is that port."""

from __future__ import annotations

import contextlib
import errno
import socket
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter

from pipelines.bench.server_process import free_port
from service.metrics_server import DEFAULT_METRICS_PORT, MetricsPortError, serve_metrics_page


@pytest.fixture
def registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("fraudstream_test_pages", "A counter only this test's registry has", registry=registry)
    return registry


@contextlib.contextmanager
def held(port: int) -> Iterator[None]:
    """``port`` taken for the duration: by this socket, or already by another process."""
    with socket.socket() as sock:
        # As the metrics server does: a port left in TIME_WAIT by an earlier connection is free,
        # so only a listening socket makes the bind fail.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                raise
        yield


def test_a_role_takes_the_next_free_port_when_the_default_is_taken(
    registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    with held(DEFAULT_METRICS_PORT):
        server = serve_metrics_page(registry, "127.0.0.1", None)
    assert server is not None
    try:
        assert server.port > DEFAULT_METRICS_PORT
        assert "fraudstream_test_pages_total 0.0" in httpx.get(server.url, timeout=5).text
        assert f"metrics at {server.url}" in caplog.text
        assert f"port {DEFAULT_METRICS_PORT} is taken" in caplog.text
    finally:
        server.close()


def test_a_port_set_explicitly_is_that_port(registry: CollectorRegistry) -> None:
    port = free_port()
    server = serve_metrics_page(registry, "127.0.0.1", port)
    assert server is not None
    try:
        assert server.port == port
        assert "fraudstream_test_pages_total" in httpx.get(server.url, timeout=5).text
    finally:
        server.close()


def test_a_port_set_explicitly_and_taken_is_refused_naming_the_setting(
    registry: CollectorRegistry,
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        taken = sock.getsockname()[1]
        with pytest.raises(MetricsPortError, match=f"FRAUDSTREAM_METRICS_PORT={taken}"):
            serve_metrics_page(registry, "127.0.0.1", taken)


def test_port_zero_serves_nothing(registry: CollectorRegistry) -> None:
    assert serve_metrics_page(registry, "127.0.0.1", 0) is None
