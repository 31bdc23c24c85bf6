"""Writing a signed snapshot of the serving state without holding the event loop.

Serialising the state (every card's windows, every vector awaiting its label) takes seconds
of CPU once it holds a few hundred thousand entries, and the state changes with every request:
neither a thread (it would read the state while the loop changes it) nor a copy made on the
loop (it costs as much as the serialisation) serves. A forked child does: it is the operating
system's copy-on-write image of the process at the instant of the fork, so it serialises a
consistent state while the parent goes on serving, and only the pages the parent changes
meanwhile are copied.

The child waits, on a pipe, for the one thing not known at the fork (the version the registry
gives the champion, registered by the parent off the loop meanwhile), completes the value with
it, writes and syncs a temporary file beside the target and exits; the parent waits for it on
a thread and then puts the file in place, so a superseded snapshot is simply not renamed. The
child runs at a lower priority, closes every inherited descriptor (a listening socket held by
a child would keep a restarted server from binding its port), and leaves with ``os._exit``: no
event loop, no logging, no exit handlers of the parent's.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Generic, NoReturn, TypeVar

from models.snapshots import dump_signed

Value = TypeVar("Value")

CHILD_NICENESS = 19
"""The child serialises on spare CPU: the serving parent comes first."""


class ForkedWriteError(RuntimeError):
    """The child did not write the snapshot (its exit status says how it ended)."""


def remove_stale(path: Path) -> None:
    """Remove temporary files a child left when its parent died before renaming them."""
    for stale in path.parent.glob(f".{path.name}.*.forked"):
        stale.unlink(missing_ok=True)


def _close_inherited(keep: int) -> None:
    with contextlib.suppress(OSError):
        for name in os.listdir("/proc/self/fd"):
            descriptor = int(name)
            if descriptor > 2 and descriptor != keep:
                with contextlib.suppress(OSError):
                    os.close(descriptor)


def _read_all(descriptor: int) -> bytes:
    chunks = []
    while chunk := os.read(descriptor, 4096):
        chunks.append(chunk)
    return b"".join(chunks)


class ForkedWriter(Generic[Value]):
    """A child forked at construction, holding ``value`` as it stands then; `write` tells it
    the detail ``complete`` finishes the value with, and waits for the file."""

    def __init__(
        self, path: Path, value: Value, key: bytes, complete: Callable[[Value, str], None]
    ) -> None:
        self.temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.forked")
        reading, self._writing = os.pipe()
        self._pid = os.fork()
        if self._pid == 0:  # pragma: no cover - the child leaves through os._exit
            os.close(self._writing)
            self._child(reading, value, key, complete)
        os.close(reading)

    def _child(
        self, reading: int, value: Value, key: bytes, complete: Callable[[Value, str], None]
    ) -> NoReturn:
        status = 1
        try:
            # The child's touching every object's collector header would copy every page.
            gc.disable()
            _close_inherited(keep=reading)
            with contextlib.suppress(ValueError):  # signals are set from the main thread only
                signal.set_wakeup_fd(-1)
                for number in (signal.SIGINT, signal.SIGTERM):
                    signal.signal(number, signal.SIG_DFL)
            os.nice(CHILD_NICENESS)
            detail = _read_all(reading)
            if detail:  # nothing: the parent gave up (or died) before telling it
                complete(value, detail.decode())
                payload = dump_signed(value, key)
                with self.temporary.open("wb") as handle:
                    handle.write(payload)
                    handle.flush()
                    os.fsync(handle.fileno())
                status = 0
        finally:
            os._exit(status)

    async def write(self, detail: str) -> Path:
        """Tell the child ``detail`` and wait for it: the synced temporary file it wrote."""
        try:
            os.write(self._writing, detail.encode())
        finally:
            os.close(self._writing)
        return await self._reap()

    async def abandon(self) -> None:
        """Tell the child to write nothing, and wait for it to exit."""
        os.close(self._writing)
        with contextlib.suppress(ForkedWriteError):
            await self._reap()

    async def _reap(self) -> Path:
        _, status = await asyncio.to_thread(os.waitpid, self._pid, 0)
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            self.temporary.unlink(missing_ok=True)
            raise ForkedWriteError(f"the snapshot writer exited with status {code}")
        return self.temporary
