"""Feature vectors kept from scoring time until their label arrives.

Learning must use exactly the vector the model scored, never one recomputed later (by then the
card's windows have moved on and the label would leak into them). Entries live for a TTL in
event time and the store is capped; vectors are kept as compact float arrays.
"""

from __future__ import annotations

from array import array
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Protocol

from models.scored import Scored


@dataclass(slots=True)
class PendingEntry:
    """What is remembered of a scored transaction until its label is learned."""

    values: array[float]
    terminal_id: str
    second: int
    scored: Scored
    """The answer given at scoring time, re-emitted as it was if the transaction comes again."""
    verdict: bool | None = None
    """The label learned so far: ``None`` until one arrives."""
    card_id: str = ""
    """The card, for Card Precision@k on matured labels."""
    shadow: tuple[tuple[str, float], ...] = ()
    """The scores the shadow challengers gave, by challenger name, judged when the label comes."""
    digest: bytes | None = None
    """The transaction's `content_digest`, to tell a repeat from another transaction under the
    same id (``None``: not known, a repeat is taken as the same)."""
    corrections: int = 0
    """How many times a later label reversed the verdict learned (bounded by the policy)."""

    def __setstate__(self, state: tuple[None, dict[str, object]]) -> None:
        # Unpickling an entry saved before a field existed leaves that slot unset, and reading
        # it would fail: start from the defaults, then take what was saved.
        self.digest, self.corrections = None, 0
        for name, value in state[1].items():
            object.__setattr__(self, name, value)


class PendingStore(Protocol):
    """Where scored vectors wait for their labels: this process's memory, or Redis.

    A remote store may also load ahead and write behind; how is its own business
    (`pipelines.state.buffering`): to the detector every store reads and writes at once.
    """

    @property
    def awaiting_label(self) -> int | None:
        """Entries no label has reached yet; ``None`` where the store cannot tell cheaply."""
        ...

    def get(self, transaction_id: str) -> PendingEntry | None: ...

    def put(self, transaction_id: str, entry: PendingEntry) -> None: ...

    def set_verdict(self, entry: PendingEntry, verdict: bool) -> bool | None:
        """Record the label learned for ``entry``; returns the verdict it had before."""
        ...

    def expire(self, watermark: int) -> None: ...


class PendingVectors:
    """Scored vectors by transaction id, bounded by a TTL in event time and a count cap.

    Examples
    --------
    >>> from array import array
    >>> pending = PendingVectors(ttl_seconds=100, max_entries=10)
    >>> pending.put("t1", PendingEntry(array("d", [1.0]), "p1", second=0, scored=None))
    >>> pending.get("t1").terminal_id, pending.awaiting_label
    ('p1', 1)
    >>> pending.set_verdict(pending.get("t1"), True) is None, pending.awaiting_label
    (True, 0)
    >>> pending.expire(watermark=150)
    >>> pending.get("t1") is None
    True
    """

    def __init__(self, ttl_seconds: int, max_entries: int = 2_000_000) -> None:
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self._entries: OrderedDict[str, PendingEntry] = OrderedDict()
        self._awaiting = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def awaiting_label(self) -> int:
        """Entries no label has reached yet (labelled ones stay to recognise repeats)."""
        return self._awaiting

    def put(self, transaction_id: str, entry: PendingEntry) -> None:
        replaced = self._entries.get(transaction_id)
        if replaced is not None:
            self._forget(replaced)
        self._entries[transaction_id] = entry
        self._awaiting += entry.verdict is None
        if len(self._entries) > self.max_entries:
            self._forget(self._entries.popitem(last=False)[1])

    def get(self, transaction_id: str) -> PendingEntry | None:
        return self._entries.get(transaction_id)

    def set_verdict(self, entry: PendingEntry, verdict: bool) -> bool | None:
        """Record the label learned for ``entry``; returns the verdict it had before."""
        previous, entry.verdict = entry.verdict, verdict
        self._awaiting -= previous is None
        return previous

    def expire(self, watermark: int) -> None:
        """Drop entries scored more than the TTL before ``watermark`` (in arrival order)."""
        cutoff = watermark - self.ttl_seconds
        entries = self._entries
        while entries and next(iter(entries.values())).second <= cutoff:
            self._forget(entries.popitem(last=False)[1])

    def _forget(self, entry: PendingEntry) -> None:
        self._awaiting -= entry.verdict is None


class MaturityQueue:
    """Transactions in the order they were scored, to find those whose label never came.

    Examples
    --------
    >>> queue = MaturityQueue(maturity_seconds=10)
    >>> queue.push("t1", 0)
    >>> queue.push("t2", 5)
    >>> queue.matured(watermark=12)
    ['t1']
    """

    def __init__(self, maturity_seconds: int) -> None:
        self.maturity_seconds = maturity_seconds
        self._queue: deque[tuple[int, str]] = deque()

    def push(self, transaction_id: str, second: int) -> None:
        self._queue.append((second, transaction_id))

    def matured(self, watermark: int) -> list[str]:
        """Ids scored at least the maturity period before ``watermark``, each returned once."""
        cutoff = watermark - self.maturity_seconds
        queue = self._queue
        matured: list[str] = []
        while queue and queue[0][0] <= cutoff:
            matured.append(queue.popleft()[1])
        return matured
