"""Investigators in a replay: the day's riskiest cards, checked, their verdicts known early."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from models.detector import FraudDetector
from models.features import FeatureSet, FeatureSpec
from models.feedback import DAY_SECONDS, FeedbackPolicy, Investigators
from models.learners import OnlineLearner
from models.memory_state import InMemoryFeatureState
from models.replay import replay
from models.schemas import Label, LabelSource, Transaction
from models.state import event_second

START = datetime(2018, 4, 2, tzinfo=UTC)


def _tx(number: int, card: str, hours: float) -> Transaction:
    return Transaction(
        transaction_id=f"t{number}",
        timestamp=START + timedelta(hours=hours),
        card_id=card,
        terminal_id="p",
        amount=10.0,
        currency="EUR",
    )


def test_the_days_riskiest_cards_are_checked_and_all_their_transactions_labelled() -> None:
    investigators = Investigators(FeedbackPolicy(cards_per_day=2, delay_seconds=3_600))
    day = [
        (_tx(1, "a", 1), False, 0.9),
        (_tx(2, "b", 2), True, 0.2),
        (_tx(3, "b", 3), True, 0.8),
        (_tx(4, "c", 4), False, 0.5),
        (_tx(5, "a", 5), True, 0.1),
    ]
    for tx, fraud, score in day:
        assert investigators.observe(event_second(tx.timestamp), tx, fraud, score) == []
    tomorrow = _tx(6, "c", 25)
    found = investigators.observe(event_second(tomorrow.timestamp), tomorrow, False, 0.0)

    known = event_second(START) // DAY_SECONDS * DAY_SECONDS + DAY_SECONDS + 3_600
    assert {second for second, _ in found} == {known}
    labels = {label.transaction_id: label for _, label in found}
    assert set(labels) == {"t1", "t5", "t2", "t3"}  # cards a (0.9) and b (0.8), not c (0.5)
    assert {tid: label.is_fraud for tid, label in labels.items()} == {
        "t1": False,
        "t5": True,
        "t2": True,
        "t3": True,
    }
    assert {label.source for label in labels.values()} == {LabelSource.ANALYST}
    assert {label.labelled_at for label in labels.values()} == {datetime.fromtimestamp(known, UTC)}


def test_a_card_found_compromised_is_not_checked_again() -> None:
    investigators = Investigators(FeedbackPolicy(cards_per_day=1, delay_seconds=0))
    investigators.observe(0, _tx(1, "a", 0), True, 0.9)
    investigators.observe(DAY_SECONDS, _tx(2, "a", 24), True, 0.9)
    investigators.observe(DAY_SECONDS, _tx(3, "b", 24), False, 0.3)
    found = investigators.close_day()
    assert [label.transaction_id for _, label in found] == ["t3"]


def test_a_legitimate_card_checked_once_may_be_checked_again() -> None:
    investigators = Investigators(FeedbackPolicy(cards_per_day=1, delay_seconds=0))
    investigators.observe(0, _tx(1, "a", 0), False, 0.9)
    investigators.observe(DAY_SECONDS, _tx(2, "a", 24), False, 0.9)
    investigators.observe(DAY_SECONDS, _tx(3, "b", 24), False, 0.3)
    assert [label.transaction_id for _, label in investigators.close_day()] == ["t2"]


@pytest.mark.parametrize(("cards", "delay"), [(0, 0), (5, -1)])
def test_a_policy_out_of_range_is_refused(cards: int, delay: int) -> None:
    with pytest.raises(ValueError, match="must"):
        FeedbackPolicy(cards_per_day=cards, delay_seconds=delay)


class _Recording(Investigators):
    """Investigators that also keep every label they gave."""

    found: list[Label]

    def __init__(self, policy: FeedbackPolicy) -> None:
        super().__init__(policy)
        self.found = []

    def observe(
        self, second: int, tx: Transaction, is_fraud: bool, score: float
    ) -> list[tuple[int, Label]]:
        labels = super().observe(second, tx, is_fraud, score)
        self.found += [label for _, label in labels]
        return labels


def _detector() -> FraudDetector:
    features = FeatureSet(FeatureSpec())
    return FraudDetector(
        features, InMemoryFeatureState(features.spec.windows), OnlineLearner("logistic")
    )


def test_in_a_replay_verdicts_are_learned_days_before_the_chargebacks_which_repeat_them() -> None:
    transactions = [_tx(i, f"card-{i % 3}", hours=6 * i) for i in range(16)]  # four days
    is_fraud = [i % 3 == 0 for i in range(16)]
    week = 7 * DAY_SECONDS

    plain = _detector()
    replay(transactions, is_fraud, plain, week)
    assert plain.learner.labels_learned == 0  # no chargeback is due within four days

    checked = _detector()
    investigators = _Recording(FeedbackPolicy(cards_per_day=1, delay_seconds=0))
    replay(transactions, is_fraud, checked, week, investigators=investigators)
    # Each of the first three days' riskiest card is checked and learned once its day is over;
    # the fourth day is still open when the replay ends.
    assert {label.source for label in investigators.found} == {LabelSource.ANALYST}
    assert checked.learner.labels_learned == len(investigators.found) > 0

    # The same replay run on, past every chargeback: none is learned twice.
    later = [*transactions, _tx(99, "card-9", hours=24 * 12)]
    again = _detector()
    replay(
        later, [*is_fraud, False], again, week, investigators=Investigators(FeedbackPolicy(1, 0))
    )
    assert again.learner.labels_learned == len(transactions)
