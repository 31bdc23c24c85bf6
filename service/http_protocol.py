"""uvicorn's httptools protocol, bounded: a deadline to send a request, no connection past the
limit.

uvicorn bounds how long an idle keep-alive connection stays open (``timeout_keep_alive``), but
not how long a client may take to send a request: a connection that sends nothing, or its
headers or body a byte at a time, would hold its file descriptor for ever (slowloris). This
protocol closes a connection whose request (headers and body) is not complete ``read_timeout``
seconds after the connection opened or its previous response ended. A request once read is
never cut, however long it takes to answer (an alert stream).

uvicorn's ``limit_concurrency`` answers 503 once a request's headers are read, so connections
that send nothing would still pile up until their deadline; past the limit, a new connection
is closed at once, and the file descriptors in use stay below the limit plus a few.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class BoundedProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` that closes a connection past the limit or slow to send a request."""

    read_timeout: float = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self.limit_concurrency is not None and len(self.connections) > self.limit_concurrency:
            transport.close()  # the one at the limit is answered 503; those past it, not at all
            return
        self._await_request()

    def on_message_complete(self) -> None:
        self._stop_waiting()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._await_request()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_waiting()
        super().connection_lost(exc)

    def _await_request(self) -> None:
        self._stop_waiting()
        self._deadline = self.loop.call_later(self.read_timeout, self._request_late)

    def _stop_waiting(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _request_late(self) -> None:
        self._deadline = None
        cycle = self.cycle
        # A request already read (the last one, or one queued behind it) is being answered.
        reading = cycle is None or cycle.response_complete or cycle.more_body
        if reading and not self.transport.is_closing():
            self.transport.close()


def bounded_protocol(read_timeout: float) -> type[BoundedProtocol]:
    """The protocol class to hand uvicorn (``http=``), with its deadline set."""
    return type("BoundedProtocol", (BoundedProtocol,), {"read_timeout": read_timeout})
