"""Prequential replay: score every transaction before its label, reveal labels after a delay.

This is how the service lives in production, compressed: transactions arrive in event time,
each is scored by the model as it stands, and its label becomes known ``delay`` later; only
then may the learner or terminal risk use it. A label whose reveal time equals a transaction's
timestamp is applied before that transaction is scored.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from datetime import timedelta

from models.detector import FraudDetector
from models.feedback import Investigators
from models.pending import PendingEntry
from models.schemas import Label, LabelSource, Transaction
from models.state import event_second


def revealed_label(tx: Transaction, is_fraud: bool, delay: timedelta) -> Label:
    """The label a data set knows for ``tx``, as if a chargeback reported it ``delay`` later."""
    return Label(
        transaction_id=tx.transaction_id,
        is_fraud=is_fraud,
        labelled_at=tx.timestamp + delay,
        source=LabelSource.CHARGEBACK,
    )


def replay(
    transactions: Sequence[Transaction],
    is_fraud: Sequence[bool],
    detector: FraudDetector,
    label_delay_seconds: int,
    progress: Callable[[int], None] | None = None,
    progress_every: int = 10_000,
    investigators: Investigators | None = None,
    on_learned: Callable[[PendingEntry, Label], None] | None = None,
) -> list[float]:
    """Score ``transactions`` (sorted by time) in order; return each one's score at arrival.

    With ``investigators``, the cards they check each day get analyst labels on their
    feedback delay as well (`models.feedback`); the chargeback that follows repeats them.
    ``on_learned`` sees each label learned with its entry, as `FraudDetector.learn` gives them.

    Examples
    --------
    >>> from datetime import datetime, timedelta, UTC
    >>> from models.features import FeatureSet, FeatureSpec
    >>> from models.learners import OnlineLearner
    >>> from models.memory_state import InMemoryFeatureState
    >>> features = FeatureSet(FeatureSpec())
    >>> detector = FraudDetector(features, InMemoryFeatureState(features.spec.windows),
    ...                          OnlineLearner("logistic"))
    >>> start = datetime(2018, 4, 1, tzinfo=UTC)
    >>> txs = [Transaction(transaction_id=str(i), timestamp=start + timedelta(hours=i),
    ...                    card_id="c", terminal_id="p", amount=10.0 + i, currency="EUR")
    ...        for i in range(3)]
    >>> len(replay(txs, [False, False, True], detector, label_delay_seconds=3600))
    3
    >>> detector.learner.labels_learned  # the last label is never revealed before the end
    2
    """
    if len(transactions) != len(is_fraud):
        raise ValueError("transactions and is_fraud must have the same length")
    delay = timedelta(seconds=label_delay_seconds)
    due: deque[tuple[int, Label]] = deque()
    checked: deque[tuple[int, Label]] = deque()
    scores: list[float] = []
    for index, (tx, fraud) in enumerate(zip(transactions, is_fraud, strict=True), start=1):
        second = event_second(tx.timestamp)
        early, late = _due(checked, second), _due(due, second)
        if early and late:
            detector.learn(
                sorted(early + late, key=lambda label: label.labelled_at), on_learned=on_learned
            )
        elif early or late:
            detector.learn(early or late, on_learned=on_learned)
        score = detector.score(tx).score
        scores.append(score)
        due.append((second + label_delay_seconds, revealed_label(tx, fraud, delay)))
        if investigators is not None:
            checked.extend(investigators.observe(second, tx, fraud, score))
        if progress is not None and index % progress_every == 0:
            progress(index)
    if progress is not None:
        progress(len(transactions))
    return scores


def _due(queue: deque[tuple[int, Label]], second: int) -> list[Label]:
    """The labels at the head of ``queue`` (in reveal order) known by ``second``."""
    revealed: list[Label] = []
    while queue and queue[0][0] <= second:
        revealed.append(queue.popleft()[1])
    return revealed
