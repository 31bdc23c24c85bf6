"""One batch scored around its stores: loaded ahead, scored, its writes taken behind.

The detector scores on plain values (`FraudDetector.score_observed`) and reads its stores one
key at a time: against Redis, a round trip per key. A `ScoringUnit` loads what the batch will
read from each buffered store in one go (`pipelines.state.buffering`), says so (the stream
worker then lets the state script of the batch behind run in Redis), scores, and hands back the
writes the batch left, to be made in one round trip when the caller chooses. Over in-memory
stores there is nothing to load or write behind, and the unit only scores.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from models.detector import FraudDetector
from models.schemas import Transaction
from models.scored import Scored
from models.state import WindowAggregates
from pipelines.state.buffering import BufferedStore, buffered
from pipelines.state.redis_stores import written_together


@dataclass(frozen=True)
class ScoringUnit:
    """A detector's batches, each scored between a load and a write of its stores."""

    detector: FraudDetector

    def score(
        self,
        transactions: Sequence[Transaction],
        observed: Sequence[WindowAggregates],
        on_loaded: Callable[[], object] | None = None,
    ) -> list[Scored]:
        """Score ``transactions``, recorded in feature state already (``observed``).

        ``on_loaded`` is called once the stores have loaded what the batch will read: until
        its writes, the batch asks nothing more of them. Raises `ConflictingRepeatError` as
        `FraudDetector.score_observed` does, after the load.
        """
        detector = self.detector
        pending = buffered(detector.pending)
        if pending is not None:
            # Only a repeated id has a vector stored to re-emit or to check its content against.
            pending.prefetch(
                tx.transaction_id
                for tx, aggregates in zip(transactions, observed, strict=True)
                if aggregates.duplicate
            )
        book = buffered(detector.alerting.book)
        if book is not None:
            book.prefetch(tx.card_id for tx in transactions)
        if on_loaded is not None:
            on_loaded()
        return detector.score_observed(transactions, observed)

    def writes(self) -> Callable[[], None]:
        """The writes the batches scored since the last call left (vectors awaiting labels,
        then cooldowns), taken now and made in one round trip when called; the stores' reads
        see them meanwhile."""
        return written_together([store.flushing() for store in self._stores()])

    def discard(self) -> None:
        """Drop what the stores loaded and buffered: the batch failed and is scored again
        whole, and half of it must not reach them."""
        for store in self._stores():
            store.discard()

    def _stores(self) -> list[BufferedStore]:
        detector = self.detector
        stores = (buffered(detector.pending), buffered(detector.alerting.book))
        return [store for store in stores if store is not None]
