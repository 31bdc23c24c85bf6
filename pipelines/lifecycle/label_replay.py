"""Learning again, at an embedded restart, the labels the saved state does not reflect.

A label is answered ``learned`` only once its row is in the offline store, but the serving
state is saved only now and then: a crash, or a stop before the next snapshot, loses what was
learned since. The saved state records the store's position when it was taken; at start-up the
rows after it are learned again, in the order they were first learned, from the vectors stored
with them (the vectors the transactions were scored with, never recomputed), so the model ends
as one that never stopped. A transaction scored after the snapshot has no kept vector in the
restored state: its entry is rebuilt from the row (its score, decision and threshold at
arrival; the reasons and the challengers' shadow scores are not stored), so the audit shows
its label and a correction finds the verdict it corrects.
"""

from __future__ import annotations

import logging
from array import array
from collections.abc import Sequence
from typing import Protocol

import pandas as pd

from models.detector import FraudDetector, LearnOutcome
from models.pending import PendingEntry
from models.schemas import Decision, Label, LabelSource
from models.scored import Scored
from pipelines.retrain.offline_store import feature_columns

logger = logging.getLogger(__name__)


class LabelJournal(Protocol):
    """The offline store as recovery reads it: its position, and the rows after one."""

    @property
    def position(self) -> int: ...

    def since(self, position: int) -> pd.DataFrame: ...


def _entries(rows: pd.DataFrame, names: Sequence[str]) -> list[PendingEntry]:
    values = rows[feature_columns(names)].to_numpy(dtype="float64")
    scored = zip(
        rows["transaction_id"],
        rows["score"],
        rows["model_version"],
        rows["decision"].fillna(Decision.PASS.value),
        rows["threshold"].fillna(float("nan")),
        strict=True,
    )
    return [
        PendingEntry(
            array("d", vector),
            terminal,
            int(event_time.timestamp()),
            Scored(transaction, float(score), version, Decision(decision), float(threshold), ()),
            None,
            card,
        )
        for vector, (
            transaction,
            score,
            version,
            decision,
            threshold,
        ), terminal, card, event_time in zip(
            values, scored, rows["terminal_id"], rows["card_id"], rows["event_time"], strict=True
        )
    ]


def _labels(rows: pd.DataFrame) -> list[Label]:
    # Built without validation: each was validated when it arrived, against the clock of then.
    return [
        Label.model_construct(
            transaction_id=transaction,
            is_fraud=bool(is_fraud),
            labelled_at=labelled_at.to_pydatetime(),
            source=LabelSource(source),
        )
        for transaction, is_fraud, labelled_at, source in zip(
            rows["transaction_id"],
            rows["is_fraud"],
            rows["label_time"],
            rows["label_source"],
            strict=True,
        )
    ]


def learn_since(detector: FraudDetector, journal: LabelJournal, position: int) -> LearnOutcome:
    """Learn the journal's labels after ``position``, in order, as they were first learned."""
    rows = journal.since(position)
    if rows.empty:
        return LearnOutcome()
    pending = detector.pending
    for entry in _entries(rows, detector.features.names):
        transaction = entry.scored.transaction_id
        if pending.get(transaction) is None:
            pending.put(transaction, entry)
    outcome = detector.learn(_labels(rows))
    if outcome.learned != len(rows):
        # Each row was learned once before: a row not learned again means the saved state
        # already held it, which a consistent snapshot and position rule out.
        logger.error(
            "learned %d of the %d labels after position %d again (%d repeated, %d unknown)",
            outcome.learned,
            len(rows),
            position,
            outcome.repeated,
            len(outcome.unknown),
        )
    return outcome
