"""Repeated transaction ids: the same transaction again, or another one under a used id.

A transaction sent twice (a client's retry, a consumer's redelivery) is answered with its first
answer, marked replayed, and changes no state. A *different* transaction under an id already
scored is refused: answering it with the first transaction's score would tell its sender
nothing about what they sent. The two are told apart by a digest of the transaction's content,
kept with the first answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from hashlib import blake2b
from operator import attrgetter

import orjson

from models.pending import PendingStore
from models.schemas import Transaction
from models.state import WindowAggregates

_CONTENT = attrgetter(
    "timestamp",
    "card_id",
    "terminal_id",
    "amount",
    "currency",
    "merchant_category",
    "channel",
    "country",
)
"""Every field but the id, in a fixed order: a digest must not depend on how a body was written
(key order, spacing, ``+02:00`` or its UTC instant)."""


def content_digest(transaction: Transaction) -> bytes:
    """Eight bytes that change whenever anything but the id changes.

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> tx = Transaction(transaction_id="t1", timestamp=datetime(2018, 4, 1, tzinfo=UTC),
    ...                  card_id="c1", terminal_id="p1", amount=20.0, currency="EUR")
    >>> content_digest(tx) == content_digest(tx.model_copy(update={"transaction_id": "t2"}))
    True
    >>> content_digest(tx) == content_digest(tx.model_copy(update={"amount": 21.0}))
    False
    """
    return blake2b(orjson.dumps(_CONTENT(transaction)), digest_size=8).digest()


class ConflictingRepeatError(ValueError):
    """Transactions whose ids were scored before with different content; nothing was scored.

    ``positions`` are their indices in the batch refused, ``transaction_ids`` their ids.
    """

    def __init__(self, positions: Sequence[int], transaction_ids: Sequence[str]) -> None:
        self.positions = tuple(positions)
        self.transaction_ids = tuple(transaction_ids)
        shown = ", ".join(self.transaction_ids[:10])
        more = len(self.transaction_ids) - 10
        super().__init__(
            f"transaction_id already scored with different content: {shown}"
            + (f" (and {more} more)" if more > 0 else "")
            + "; send a new id for a new transaction"
        )


def refuse_conflicts(
    transactions: Sequence[Transaction],
    observed: Sequence[WindowAggregates] | None,
    pending: PendingStore,
) -> None:
    """Raise `ConflictingRepeatError` for the transactions whose id was first scored with other
    content: kept in ``pending``, or earlier in this very batch.

    ``observed`` says which ids feature state had seen (a batch being scored): only those are
    looked up. Without it (a batch to be queued) every id is, and repeats within the batch are
    left to the scoring.
    """
    firsts: dict[str, Transaction] = {}
    positions: list[int] = []
    for position, tx in enumerate(transactions):
        tid = tx.transaction_id
        if observed is not None and not observed[position].duplicate:
            firsts.setdefault(tid, tx)
            continue
        first = firsts.get(tid)
        if first is not None:
            known: bytes | None = content_digest(first)
        else:
            entry = pending.get(tid)
            known = None if entry is None else entry.digest
        if known is not None and known != content_digest(tx):
            positions.append(position)
    if positions:
        raise ConflictingRepeatError(
            positions, [transactions[position].transaction_id for position in positions]
        )
