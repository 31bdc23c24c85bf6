"""A signing key kept in a file: the embedded service's own, made on first start.

The key signs every model and state the service writes, so whoever can read it can forge one
and whoever can replace it can make the service accept theirs. The file is created with mode
0600, atomically and never over an existing one (two processes starting together end up with
the same key), and an existing file is used only if it is a regular file of this user that
nobody else can read or write: a symbolic link, a group- or world-accessible file, another
user's file or a short key is refused with `SigningKeyError`, which says what to fix.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

from pipelines.durable_files import sync_directory

KEY_FILE = "secret.key"
"""The key's name in the data directory."""
NEW_KEY_BYTES = 32
"""Random bytes in a new key (written as 64 hex digits, which are the key)."""


class SigningKeyError(ValueError):
    """A key file this process will not sign with: it says why and what to do."""


def load_or_create_key(path: Path, *, min_bytes: int) -> bytes:
    """The key in ``path``, created first if there is none.

    Examples
    --------
    >>> import tempfile
    >>> directory = Path(tempfile.mkdtemp())
    >>> key = load_or_create_key(directory / KEY_FILE, min_bytes=32)
    >>> len(key), oct((directory / KEY_FILE).stat().st_mode & 0o777)
    (64, '0o600')
    >>> load_or_create_key(directory / KEY_FILE, min_bytes=32) == key
    True
    """
    if not os.path.lexists(path):
        _create(path)
    return read_key(path, min_bytes=min_bytes)


def read_key(path: Path, *, min_bytes: int) -> bytes:
    """The key in ``path``, once the file has passed the checks above."""
    try:
        # O_NOFOLLOW: the checks below are made on the very file read, never a link's target;
        # O_NONBLOCK: a FIFO put in its place cannot hang the start.
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as error:
        if os.path.islink(path):
            raise SigningKeyError(
                f"the key file {path} is a symbolic link: refused; replace it with the file"
            ) from None
        raise SigningKeyError(f"cannot read the key file {path}: {error.strerror}") from None
    try:
        _check(path, os.fstat(descriptor))
        chunks = []
        while chunk := os.read(descriptor, 4_096):
            chunks.append(chunk)
    finally:
        os.close(descriptor)
    key = b"".join(chunks).strip()
    if len(key) < min_bytes:
        raise SigningKeyError(
            f"the key file {path} holds fewer than {min_bytes} bytes: refused; delete it to have "
            "a new one made, or write a longer key"
        )
    return key


def _check(path: Path, status: os.stat_result) -> None:
    if not stat.S_ISREG(status.st_mode):
        raise SigningKeyError(f"the key file {path} is not a regular file: refused")
    if status.st_uid != os.geteuid():
        raise SigningKeyError(
            f"the key file {path} belongs to another user (uid {status.st_uid}): refused"
        )
    if status.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SigningKeyError(
            f"the key file {path} is open to other users (mode "
            f"{stat.S_IMODE(status.st_mode):04o}): refused; run `chmod 600 {path}`, and replace "
            "the key if anyone may have read it"
        )


def _create(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.{secrets.token_hex(8)}.draft")
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as file:
            os.fchmod(file.fileno(), 0o600)  # whatever the umask
            file.write(secrets.token_hex(NEW_KEY_BYTES).encode() + b"\n")
            file.flush()
            os.fsync(file.fileno())
        # A hard link never replaces a file: a key made meanwhile by another process wins,
        # and both use it.
        with contextlib.suppress(FileExistsError):
            os.link(draft, path)
    finally:
        draft.unlink(missing_ok=True)
    sync_directory(path.parent)
