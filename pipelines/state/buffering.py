"""Stores that load ahead and write behind: the round trips a remote store saves a batch.

The detector reads and writes its stores one key at a time (`models.pending.PendingStore`,
`models.alerting.CooldownBook`). Against Redis that would be a round trip per key, so the Redis
stores also follow this protocol: whoever drives a batch loads the keys it will read in one go
(`prefetch`), takes the writes it left (`flushing`) to make them in one round trip, and drops
both if the batch failed (`discard`). The in-memory stores do not follow it: they read and
write at once, and a batch over them needs none of this.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import cache
from typing import Protocol, cast


class BufferedStore(Protocol):
    """A store whose reads a batch loads ahead and whose writes it makes behind."""

    def prefetch(self, keys: Iterable[str]) -> None:
        """Load the entries of ``keys`` in one go; reads of them until `discard` ask nothing."""
        ...

    def flushing(self) -> Callable[[], None]:
        """The buffered writes, taken from the buffer now and made when the result is called;
        until then the store's reads see them (a stream worker makes them on a thread of its
        own while it scores the next batch)."""
        ...

    def discard(self) -> None:
        """Drop what was loaded or buffered: the batch failed and will be done again."""
        ...


def buffered(store: object) -> BufferedStore | None:
    """``store`` as a `BufferedStore`, or None when it reads and writes at once."""
    kind: type = type(store)
    return cast(BufferedStore, store) if _buffers(kind) else None


@cache
def _buffers(kind: type) -> bool:
    """Whether stores of ``kind`` follow `BufferedStore`: asked once a batch of every store,
    so answered once per class (a protocol's own ``isinstance`` check costs tens of µs)."""
    return all(callable(getattr(kind, name, None)) for name in ("prefetch", "flushing", "discard"))
