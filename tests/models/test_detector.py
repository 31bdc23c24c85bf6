"""The detector learns exactly what it scored, once per verdict, and replays harmlessly."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pytest

from models.alerting import AlertPolicy, AlertPolicyConfig, MemoryCooldownBook
from models.detector import DetectorPolicy, FraudDetector, LabelStatus
from models.features import FeatureSet, FeatureSpec
from models.idempotency import ConflictingRepeatError
from models.learners import OnlineLearner
from models.memory_state import InMemoryFeatureState
from models.pending import PendingVectors
from models.schemas import Decision
from models.state import DAY
from tests.builders import make_label, make_tx


def _detector(
    policy: DetectorPolicy | None = None, alerting: AlertPolicy | None = None
) -> FraudDetector:
    features = FeatureSet(FeatureSpec())
    return FraudDetector(
        features,
        InMemoryFeatureState(features.spec.windows),
        OnlineLearner("logistic"),
        policy,
        alerting,
    )


class RecordingLearner(OnlineLearner):
    """A real logistic learner that also remembers every vector it learned."""

    def __init__(self) -> None:
        super().__init__("logistic")
        self.seen: list[tuple[dict[str, float], bool]] = []

    def learn_kept(self, names: Sequence[str], values: Sequence[float], is_fraud: bool) -> None:
        self.seen.append((dict(zip(names, values, strict=True)), is_fraud))
        super().learn_kept(names, values, is_fraud)


def test_a_zero_amount_is_scored_and_learned_with_finite_features() -> None:
    detector = _detector()
    detector.score(make_tx(1, amount=20.0))
    scored = detector.score(make_tx(2, hours=1, amount=0.0))
    vector = detector.vector_of("t2")
    assert vector is not None
    assert vector["amount"] == 0.0
    assert vector["card_amount_to_avg_30d"] == 0.0
    assert all(math.isfinite(value) for value in vector.values())
    assert 0.0 <= scored.score <= 1.0
    assert detector.learn([make_label(2, True, hours=2)]).learned == 1


def test_learning_uses_the_vector_scored_not_one_recomputed_later() -> None:
    features = FeatureSet(FeatureSpec())
    learner = RecordingLearner()
    detector = FraudDetector(features, InMemoryFeatureState(features.spec.windows), learner)
    detector.score(make_tx(1, amount=50.0))
    scored = detector.vector_of("t1")
    # More activity on the same card changes its windows after scoring.
    detector.score_many([make_tx(i, hours=i, amount=500.0) for i in range(2, 6)])
    detector.learn([make_label(1, True)])
    assert learner.seen == [(scored, True)]
    assert scored is not None
    assert scored["card_tx_count_1d"] == 1.0


def test_labels_are_learned_once_and_corrections_learned_again() -> None:
    detector = _detector()
    detector.score_many([make_tx(1), make_tx(2, hours=1)])
    first = detector.learn([make_label(1, True), make_label(2, False), make_label(404, True)])
    assert (first.learned, first.repeated, first.corrected, first.unknown) == (2, 0, 0, ["t404"])
    replayed = detector.learn([make_label(1, True)])
    assert (replayed.learned, replayed.repeated) == (0, 1)
    corrected = detector.learn([make_label(1, False)])
    assert (corrected.learned, corrected.corrected) == (1, 1)
    assert detector.learner.labels_learned == 3


def test_fraud_labels_reach_terminal_risk_and_corrections_take_them_back() -> None:
    detector = _detector()
    detector.score(make_tx(1, terminal="p"))
    detector.learn([make_label(1, True)])
    later = make_tx(2, hours=8 * 24, terminal="p")
    detector.score(later)
    vector = detector.vector_of("t2")
    assert vector is not None
    assert vector["terminal_fraud_rate_7d"] == 1.0
    detector.learn([make_label(1, False)])
    detector.score(make_tx(3, hours=8 * 24 + 1, terminal="p"))
    vector = detector.vector_of("t3")
    assert vector is not None
    assert vector["terminal_fraud_rate_7d"] == 0.0


def test_a_replayed_transaction_gets_its_first_answer_again() -> None:
    detector = _detector()
    first = detector.score(make_tx(1, amount=300.0))
    detector.score(make_tx(2, hours=1))
    detector.learn([make_label(2, True)])
    again = detector.score(make_tx(1, amount=300.0))
    assert again == first._replace(replayed=True)
    assert isinstance(detector.pending, PendingVectors)
    assert len(detector.pending) == 2


def test_decision_follows_the_alert_policy_and_a_replay_does_not_alert_twice() -> None:
    always = _detector(alerting=AlertPolicy(AlertPolicyConfig(threshold=0.0)))
    # An untrained model scores 0.5: above a threshold of 0, not above one of 1.
    never = _detector(alerting=AlertPolicy(AlertPolicyConfig(threshold=1.0)))
    first = always.score(make_tx(1))
    assert (first.decision, first.threshold) == (Decision.ALERT, 0.0)
    assert always.score(make_tx(1)) == first._replace(
        replayed=True
    )  # the first answer, not a second alert
    assert always.score(make_tx(2, hours=1)).decision is Decision.PASS  # cooldown of a day
    assert never.score(make_tx(1)).decision is Decision.PASS


def test_a_replayed_alert_puts_back_a_cooldown_its_process_died_before_writing() -> None:
    """The answer was stored, the cooldown was not: the replay restores it, so the card's next
    transaction is judged as in one uninterrupted run."""
    uninterrupted = _detector(alerting=AlertPolicy(AlertPolicyConfig(threshold=0.0)))
    first = uninterrupted.score(make_tx(1))
    assert first.decision is Decision.ALERT
    assert uninterrupted.score(make_tx(2, hours=1)).decision is Decision.PASS

    replaying = _detector(alerting=AlertPolicy(AlertPolicyConfig(threshold=0.0)))
    replaying.score(make_tx(1))
    replaying.alerting.book = MemoryCooldownBook(cooldown_seconds=DAY)  # the mark was lost
    assert replaying.score(make_tx(1)) == first._replace(replayed=True)  # re-emitted...
    assert replaying.score(make_tx(2, hours=1)).decision is Decision.PASS  # ...and restored
    # A replay never moves a later cooldown back to its own alert.
    replaying.score(make_tx(3, hours=30))
    later = replaying.alerting.book.last("c1")
    replaying.score(make_tx(1))
    assert replaying.alerting.book.last("c1") == later


def test_unlabelled_transactions_mature_into_legitimate_labels_when_asked() -> None:
    detector = _detector(DetectorPolicy(implicit_legit_after_seconds=2 * DAY))
    detector.score(make_tx(1))
    detector.score(make_tx(2, hours=1))
    detector.learn([make_label(2, True)])
    detector.score(make_tx(3, hours=3 * 24))
    assert detector.learner.labels_learned == 2  # t2 as fraud, t1 as legitimate at maturity
    assert detector.learner.frauds_learned == 1
    # A chargeback after maturity still corrects the implicit verdict.
    assert detector.learn([make_label(1, True)]).corrected == 1


def test_awaiting_label_counts_unlabelled_vectors_through_labels_and_expiry() -> None:
    detector = _detector(DetectorPolicy(pending_ttl_seconds=DAY))
    pending = detector.pending
    assert isinstance(pending, PendingVectors)
    detector.score_many([make_tx(1), make_tx(2, hours=1), make_tx(3, hours=2)])
    assert pending.awaiting_label == 3
    detector.learn([make_label(1, True), make_label(1, True), make_label(2, False)])
    assert pending.awaiting_label == 1
    detector.learn([make_label(2, True)])  # a reversal does not count twice
    assert pending.awaiting_label == 1
    detector.score(make_tx(4, hours=48))  # 1 to 3 expire, 3 without a label
    assert (len(pending), pending.awaiting_label) == (1, 1)


def test_vectors_expire_after_their_ttl() -> None:
    detector = _detector(DetectorPolicy(pending_ttl_seconds=DAY))
    detector.score(make_tx(1))
    detector.score(make_tx(2, hours=48))
    assert detector.learn([make_label(1, True)]).unknown == ["t1"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("implicit_legit_after_seconds", 100 * DAY), ("reasons", -1)],
)
def test_policy_refuses_inconsistent_settings(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=field):
        DetectorPolicy(**{field: value})


def test_a_repeat_with_other_content_is_refused_before_anything_is_scored() -> None:
    detector = _detector()
    first = detector.score(make_tx(1, amount=300.0))
    learned_before = detector.learner.labels_learned
    with pytest.raises(ConflictingRepeatError) as caught:
        detector.score_many([make_tx(2, hours=1), make_tx(1, amount=301.0)])
    assert caught.value.positions == (1,)
    assert caught.value.transaction_ids == ("t1",)
    assert detector.vector_of("t2") is None  # nothing of the batch was scored
    # The same content again is still answered as a replay of the first answer.
    assert detector.score(make_tx(1, amount=300.0)) == first._replace(replayed=True)
    assert detector.learner.labels_learned == learned_before


def test_an_id_repeated_in_one_batch_with_other_content_is_refused() -> None:
    detector = _detector()
    with pytest.raises(ConflictingRepeatError) as caught:
        detector.score_many([make_tx(1), make_tx(2), make_tx(1, amount=99.0)])
    assert caught.value.positions == (2,)
    same = detector.score_many([make_tx(3), make_tx(3)])
    assert same[1] == same[0]._replace(replayed=True)


def test_a_queued_transaction_under_a_scored_id_with_other_content_is_refused() -> None:
    detector = _detector()
    detector.score(make_tx(1))
    detector.refuse_conflicting([make_tx(1), make_tx(2)])  # the same content: no complaint
    with pytest.raises(ConflictingRepeatError, match="t1"):
        detector.refuse_conflicting([make_tx(2), make_tx(1, card="c9")])


def test_verdict_flips_are_learned_up_to_the_policy_then_refused() -> None:
    detector = _detector(DetectorPolicy(max_corrections=1))
    detector.score(make_tx(1))
    flips = [make_label(1, index % 2 == 0) for index in range(1_000)]
    outcome = detector.learn(flips)
    assert (outcome.learned, outcome.corrected) == (2, 1)
    assert outcome.statuses[:3] == [LabelStatus.LEARNED, LabelStatus.CORRECTED, LabelStatus.REFUSED]
    # Alternating verdicts: the ones that agree with the learned verdict are repeats.
    assert outcome.repeated + len(outcome.refused) == 998
    assert set(outcome.refused) == {"t1"}
    assert detector.learner.labels_learned == 2
    assert detector.learn([make_label(1, True)]).refused == ["t1"]


def test_no_corrections_at_all_when_the_policy_allows_none() -> None:
    detector = _detector(DetectorPolicy(max_corrections=0))
    detector.score(make_tx(1))
    detector.learn([make_label(1, False)])
    outcome = detector.learn([make_label(1, True), make_label(1, False)])
    assert outcome.statuses == [LabelStatus.REFUSED, LabelStatus.REPEATED]
    assert detector.learner.labels_learned == 1
    with pytest.raises(ValueError, match="max_corrections"):
        DetectorPolicy(max_corrections=-1)


def test_a_batch_recorded_in_state_ahead_scores_as_one_the_detector_records_itself() -> None:
    """A stream worker records a batch in one step and scores it in another."""
    ahead, itself = _detector(), _detector()
    batches = [
        [make_tx(i, hours=i, amount=50.0 * i) for i in range(4)],
        [make_tx(2, hours=2, amount=100.0), make_tx(9, hours=9)],
    ]
    for batch in batches:
        recorded = ahead.state.observe(batch)
        scored = ahead.score_observed(batch, recorded)
        assert [s.document() for s in scored] == [s.document() for s in itself.score_many(batch)]
    assert ahead.watermark == itself.watermark
    conflicting = [make_tx(1, hours=1, amount=7.0)]
    recorded = ahead.state.observe(conflicting)
    with pytest.raises(ConflictingRepeatError):
        ahead.score_observed(conflicting, recorded)
