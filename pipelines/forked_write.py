"""Writing a signed snapshot of the serving state without holding the event loop.

Serialising the state (every card's windows, every vector awaiting its label) takes seconds
of CPU once it holds a few hundred thousand entries, and the state changes with every request:
neither a thread (it would read the state while the loop changes it) nor a copy made on the
loop (it costs as much as the serialisation) serves. A forked child does: it is the operating
system's copy-on-write image of the process at the instant of the fork, so it serialises a
consistent state while the parent goes on serving, and only the pages the parent changes
meanwhile are copied. The child writes and syncs a temporary file beside the target and exits;
the parent waits for it on a thread and then puts the file in place, so a superseded snapshot
is simply not renamed.

The child runs nothing but the serialisation, the signature and the write, and leaves with
``os._exit``: no event loop, no logging, no exit handlers of the parent's.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import uuid
from pathlib import Path
from typing import NoReturn

from models.snapshots import dump_signed


class ForkedWriteError(RuntimeError):
    """The child did not write the snapshot (its exit status says how it ended)."""


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{uuid.uuid4().hex}.forked")


def remove_stale(path: Path) -> None:
    """Remove temporary files a child left when its parent died before renaming them."""
    for stale in path.parent.glob(f".{path.name}.*.forked"):
        stale.unlink(missing_ok=True)


def sync_directory(directory: Path) -> None:
    """Sync ``directory``: a rename in it survives a power cut only once this returns."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _child(temporary: Path, value: object, key: bytes) -> NoReturn:
    status = 1
    try:
        # Signals are the parent's business; and the child's touching every object's garbage
        # collector header would copy every page of the heap.
        gc.disable()
        with contextlib.suppress(ValueError):  # signals can be set from the main thread only
            signal.set_wakeup_fd(-1)
            for number in (signal.SIGINT, signal.SIGTERM):
                signal.signal(number, signal.SIG_DFL)
        payload = dump_signed(value, key)
        with temporary.open("wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        status = 0
    finally:
        os._exit(status)


async def write_forked(path: Path, value: object, key: bytes) -> Path:
    """Sign and write ``value`` as it stands now, from a forked child; returns the temporary
    file beside ``path`` it was written to, synced, for the caller to rename into place."""
    temporary = _temporary(path)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child leaves through os._exit
        _child(temporary, value, key)
    _, status = await asyncio.to_thread(os.waitpid, pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise ForkedWriteError(f"the snapshot writer exited with status {code}")
    return temporary
