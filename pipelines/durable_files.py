"""Files that survive a crash or a power cut: written whole or not at all, renames synced.

A rename is recorded in its directory, so a file is durable under its new name only once the
directory is synced too; every writer of the service's state (registry, index, saved state,
offline store, retrain jobs, key file) goes through these two functions.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def sync_directory(directory: Path) -> None:
    """Sync ``directory``: a rename in it survives a power cut only once this returns."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers, and a crash, see the old file or the new one."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    sync_directory(path.parent)
