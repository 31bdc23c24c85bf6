"""One batch of the scoring worker, without the clients: record bytes in, record bytes out.

The worker (`pipelines.stream.worker`) wraps these steps in fetching, delivery, retries and
commits; `fraudstream bench stream` runs the very same steps over in-memory state and marks,
so that its in-process rate is the worker's own path with Kafka and Redis taken out:

1. `decode_records` (`pipelines.stream.record_decoding`): the valid transactions, and a dead letter
   for each record that is not one;
2. `score_batch`: the detector scores them in order, and their alerts are picked out; a
   repeated id with other content than it was scored with is left out (`Verdicts.conflicts`)
   and becomes a dead letter;
3. `undelivered_alerts`: the alerts that never reached the alerts topic (a replay re-emits
   its scores, but not an alert already sent). Only a repeated transaction can have been
   alerted before: a first sighting's alert is new, so a batch of first sightings asks
   nothing (the worker knows which are repeats from feature state; without that, all are
   asked about);
4. `outgoing_records`: a score record per transaction, an alert record per alert not yet sent,
   then the dead letters.

`process_records` chains the four, delivery taken as done at once: the bench's path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import orjson

from models.detector import FraudDetector
from models.idempotency import ConflictingRepeatError
from models.schemas import Alert, Decision, Transaction
from models.scored import Scored
from models.state import WindowAggregates
from pipelines.stream.kafka_clients import OutgoingRecord
from pipelines.stream.record_decoding import Record, dead_letter, decode_batch
from pipelines.stream.scoring_unit import ScoringUnit
from pipelines.stream.topics import Topics


class AlertMarks(Protocol):
    """Which alerts reached the alerts topic (`DeliveredAlerts` in Redis)."""

    def undelivered(self, transaction_ids: list[str]) -> list[str]: ...

    def mark(self, transaction_ids: Iterable[str]) -> None: ...


class MemoryAlertMarks:
    """`AlertMarks` in a set, for a path without Redis.

    >>> marks = MemoryAlertMarks()
    >>> marks.mark(["t1"])
    >>> marks.undelivered(["t1", "t2"])
    ['t2']
    """

    def __init__(self) -> None:
        self._delivered: set[str] = set()

    def undelivered(self, transaction_ids: list[str]) -> list[str]:
        return [tid for tid in transaction_ids if tid not in self._delivered]

    def mark(self, transaction_ids: Iterable[str]) -> None:
        self._delivered.update(transaction_ids)


Alerts = list[tuple[Transaction, Scored]]


def _made_already() -> None:
    """Nothing left to write: the scoring made its writes."""


@dataclass(frozen=True)
class Verdicts:
    scored: list[Scored]
    alerts: Alerts
    """The batch's alerts and reviews, delivered before or not (a replay re-emits its first
    decisions)."""
    repeats: frozenset[str] | None = None
    """The ids feature state had seen before (None: not known, any may be a repeat)."""
    writes: Callable[[], None] = _made_already
    """The stores' writes, made in one round trip when called, when asked for with
    ``write_later``; made already otherwise."""
    conflicts: tuple[int, ...] = ()
    """Positions, in the batch given, of repeated ids whose content differs from what was
    scored under them: not scored (with ``skip_conflicts``)."""

    def scored_transactions(self, given: Sequence[Transaction]) -> Sequence[Transaction]:
        """Those of ``given`` that were scored, in order: ``scored[i]`` answers the i-th."""
        if not self.conflicts:
            return given
        refused = set(self.conflicts)
        return [tx for position, tx in enumerate(given) if position not in refused]


def conflict_reason(transaction_id: str) -> str:
    """A conflicting repeat's dead-letter reason, naming the id (ids are not card data)."""
    return f"transaction_id: {transaction_id} was already scored with different content"


def score_batch(
    detector: FraudDetector,
    transactions: list[Transaction],
    observed: Sequence[WindowAggregates] | None = None,
    on_loaded: Callable[[], object] | None = None,
    *,
    write_later: bool = False,
    skip_conflicts: bool = False,
) -> Verdicts:
    """Score ``transactions`` in order and pick out their alerts; ``observed``, when given, is
    what feature state answered for them (recorded here otherwise), and ``on_loaded`` is called
    once the stores have read what the batch needs (`ScoringUnit.score`). The stores' writes
    (vectors, cooldowns) go in one round trip; with ``write_later`` they are returned to be
    made, not made.

    A repeated id with other content than it was scored with raises `ConflictingRepeatError`
    (nothing scored); with ``skip_conflicts`` the others are scored and the conflicting ones
    named in `Verdicts.conflicts`.

    On failure what the stores loaded and buffered is dropped: the batch is scored again whole,
    and a half-written batch must not reach the stores.
    """
    unit = ScoringUnit(detector)
    conflicts: tuple[int, ...] = ()
    if observed is None:
        observed = detector.state.observe(transactions) if transactions else []
    try:
        try:
            scored = unit.score(transactions, observed, on_loaded) if transactions else []
        except ConflictingRepeatError as error:
            if not skip_conflicts:
                raise
            conflicts = error.positions
            refused = set(conflicts)
            kept = [i for i in range(len(transactions)) if i not in refused]
            transactions = [transactions[i] for i in kept]
            observed = [observed[i] for i in kept]
            scored = unit.score(transactions, observed)
        writes = unit.writes()
        if not write_later:
            writes()
            writes = _made_already
    except BaseException:
        unit.discard()
        raise
    alerts = [
        (tx, result)
        for tx, result in zip(transactions, scored, strict=True)
        if result.decision is not Decision.PASS
    ]
    repeats = frozenset(
        tx.transaction_id
        for tx, aggregates in zip(transactions, observed, strict=True)
        if aggregates.duplicate
    )
    return Verdicts(scored, alerts, repeats, writes, conflicts)


def undelivered_alerts(
    marks: AlertMarks, alerts: Alerts, repeats: frozenset[str] | None = None
) -> Alerts:
    """Those of ``alerts`` that never reached the alerts topic; only those of ``repeats`` are
    asked about, when given."""
    asked = [
        tx.transaction_id for tx, _ in alerts if repeats is None or tx.transaction_id in repeats
    ]
    if not asked:
        return alerts
    delivered = set(asked) - set(marks.undelivered(asked))
    return [(tx, result) for tx, result in alerts if tx.transaction_id not in delivered]


def process_records(
    records: Sequence[Record],
    detector: FraudDetector,
    marks: AlertMarks,
    topics: Topics,
    *,
    max_record_bytes: int,
    raised_at: datetime,
) -> list[OutgoingRecord]:
    """A batch from its consumed records to the records it produces, its alerts then marked
    delivered: what a worker does between fetching and producing, with no broker."""
    decoded = decode_batch(records, Transaction, topics.dlq, max_record_bytes)
    verdicts = score_batch(detector, decoded.valid, skip_conflicts=True)
    alerts = undelivered_alerts(marks, verdicts.alerts)
    outgoing = outgoing_records(
        topics,
        verdicts.scored_transactions(decoded.valid),
        verdicts.scored,
        alerts,
        raised_at,
        decoded.dead + conflict_letters(decoded.valid, decoded.sources, verdicts, topics.dlq),
    )
    if alerts:
        marks.mark([tx.transaction_id for tx, _ in alerts])
    return outgoing


def conflict_letters(
    transactions: Sequence[Transaction],
    sources: Sequence[Record],
    verdicts: Verdicts,
    dlq_topic: str,
) -> list[OutgoingRecord]:
    """A dead letter for each conflicting repeat of ``verdicts``, from the record it came in."""
    return [
        dead_letter(
            sources[position], conflict_reason(transactions[position].transaction_id), dlq_topic
        )
        for position in verdicts.conflicts
    ]


def outgoing_records(
    topics: Topics,
    transactions: Sequence[Transaction],
    scored: Sequence[Scored],
    alerts: Sequence[tuple[Transaction, Scored]],
    raised_at: datetime,
    dead_letters: Sequence[OutgoingRecord],
) -> list[OutgoingRecord]:
    """What a scored batch produces: its scores, then ``alerts``, then its dead letters."""
    outgoing = [
        score_record(topics, tx, result) for tx, result in zip(transactions, scored, strict=True)
    ]
    outgoing += [alert_record(topics, tx, result, raised_at) for tx, result in alerts]
    outgoing += dead_letters
    return outgoing


def score_record(topics: Topics, tx: Transaction, scored: Scored) -> OutgoingRecord:
    return OutgoingRecord(
        topic=topics.scores,
        key=tx.card_id.encode(),
        value=orjson.dumps(scored.document()),
        headers=None,
    )


def alert_record(
    topics: Topics, tx: Transaction, scored: Scored, raised_at: datetime
) -> OutgoingRecord:
    alert = Alert(
        transaction=tx,
        score=scored.score,
        model_version=scored.model_version,
        threshold=scored.threshold,
        reasons=tuple(reason.to_contract() for reason in scored.reasons),
        raised_at=raised_at,
        decision=scored.decision,
    )
    return OutgoingRecord(
        topic=topics.alerts,
        key=tx.card_id.encode(),
        value=alert.model_dump_json().encode(),
        headers=None,
    )
