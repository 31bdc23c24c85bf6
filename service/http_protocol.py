"""uvicorn's httptools protocol with a deadline for a request's headers.

uvicorn bounds how long an idle keep-alive connection stays open (``timeout_keep_alive``), but
not how long a client may take to send a request's headers: a new connection that sends
nothing, or one byte at a time, would hold its file descriptor for ever (slowloris). This
protocol closes a connection whose headers are not complete ``header_timeout`` seconds after it
opened or after its previous response ended. A request being answered is never cut: the
deadline runs only while the connection waits for headers.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` that closes a connection slow to send a request's headers."""

    header_timeout: float = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_headers()

    def on_headers_complete(self) -> None:
        self._stop_waiting()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._await_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_waiting()
        super().connection_lost(exc)

    def _await_headers(self) -> None:
        self._stop_waiting()
        self._header_deadline = self.loop.call_later(self.header_timeout, self._headers_late)

    def _stop_waiting(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_late(self) -> None:
        self._header_deadline = None
        answering = self.cycle is not None and not self.cycle.response_complete
        if not answering and not self.pipeline and not self.transport.is_closing():
            self.transport.close()


def with_header_timeout(seconds: float) -> type[HeaderTimeoutProtocol]:
    """The protocol class to hand uvicorn (``http=``), with its deadline set."""
    return type("HeaderTimeoutProtocol", (HeaderTimeoutProtocol,), {"header_timeout": seconds})
