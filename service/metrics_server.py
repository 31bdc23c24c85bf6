"""The Prometheus page of a worker or the learner: on a port of its own, even when several
roles share one host.

With ``FRAUDSTREAM_METRICS_PORT`` unset, a role takes 9400, or the first free port above it:
the learner and two workers started on one machine serve on 9400, 9401 and 9402 (in the order
they bind), each saying where in its log. A port set explicitly is that port or a clear error,
so that a scrape configured for it never reads another process's page.
"""

from __future__ import annotations

import errno
import logging
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server

logger = logging.getLogger(__name__)

DEFAULT_METRICS_PORT = 9400
PORTS_TRIED = 100
"""How far above the default a role looks for a free port before giving up."""


class MetricsPortError(ValueError):
    """No port to serve the metrics on: the one set is taken, or every one tried is."""


@dataclass(frozen=True)
class MetricsServer:
    host: str
    port: int
    server: WSGIServer

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving (a role never needs to: the page goes with the process)."""
        self.server.shutdown()
        self.server.server_close()


def serve_metrics_page(
    registry: CollectorRegistry, host: str, port: int | None
) -> MetricsServer | None:
    """Serve ``registry`` on ``host``: on ``port`` exactly, or (``None``) on the default port
    or the first free one above it; ``0`` serves nothing."""
    if port == 0:
        return None
    candidates = (
        [port]
        if port is not None
        else range(DEFAULT_METRICS_PORT, DEFAULT_METRICS_PORT + PORTS_TRIED)
    )
    for candidate in candidates:
        try:
            httpd, _ = start_http_server(candidate, addr=host, registry=registry)
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                raise
            continue
        server = MetricsServer(host, candidate, httpd)
        if port is None and candidate != DEFAULT_METRICS_PORT:
            logger.warning(
                "metrics at %s: port %d is taken (by another role on this host?)",
                server.url,
                DEFAULT_METRICS_PORT,
            )
        else:
            logger.info("metrics at %s", server.url)
        return server
    if port is not None:
        raise MetricsPortError(
            f"FRAUDSTREAM_METRICS_PORT={port} is already in use on {host}: choose another, "
            f"or leave it unset to take {DEFAULT_METRICS_PORT} or the first free port above it"
        )
    raise MetricsPortError(
        f"ports {DEFAULT_METRICS_PORT}-{DEFAULT_METRICS_PORT + PORTS_TRIED - 1} are all in use "
        f"on {host}: set FRAUDSTREAM_METRICS_PORT to a free one (0: no metrics)"
    )
