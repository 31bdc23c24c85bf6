"""A minimal HTTP/1.1 keep-alive client: the load generator of `fraudstream bench http`.

Server and load generator share this machine's cores, so every microsecond the client spends is
one the server cannot: a general-purpose client (httpx costs about a millisecond of CPU per
request here) would measure itself, not the API. This one writes a prepared request and reads
the status line, the headers up to ``content-length`` and the body: nothing more.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from urllib.parse import urlsplit


class LoadClientError(RuntimeError):
    """The server answered something this client does not read (no content-length)."""


class KeepAliveConnection:
    """One persistent connection sending POSTs one after another."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.hostname is None:
            raise LoadClientError(f"the load client speaks plain http://, not {url!r}")
        self._host = parts.hostname
        self._port = parts.port or 80
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> KeepAliveConnection:
        self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._writer is not None:
            self._writer.close()

    async def post(self, path: str, body: bytes) -> int:
        """POST a JSON ``body`` and return the status once the whole answer is read."""
        if self._reader is None or self._writer is None:
            raise LoadClientError("open the connection with `async with` first")
        head = (
            f"POST {path} HTTP/1.1\r\nhost: {self._host}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
        )
        self._writer.write(head.encode() + body)
        reader = self._reader
        status = int((await reader.readline()).split(b" ", 2)[1])
        length = None
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        if length is None:
            raise LoadClientError(f"{path} answered without a content-length")
        await reader.readexactly(length)
        return status
