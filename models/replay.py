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
) -> list[float]:
    """Score ``transactions`` (sorted by time) in order; return each one's score at arrival.

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
    scores: list[float] = []
    for index, (tx, fraud) in enumerate(zip(transactions, is_fraud, strict=True), start=1):
        second = event_second(tx.timestamp)
        revealed: list[Label] = []
        while due and due[0][0] <= second:
            revealed.append(due.popleft()[1])
        if revealed:
            detector.learn(revealed)
        scores.append(detector.score(tx).score)
        due.append((second + label_delay_seconds, revealed_label(tx, fraud, delay)))
        if progress is not None and index % progress_every == 0:
            progress(index)
    if progress is not None:
        progress(len(transactions))
    return scores
