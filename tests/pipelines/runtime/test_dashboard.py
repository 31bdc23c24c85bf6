"""The dashboard's figures: histogram bins and alert rates as pure functions, then the runtime
that feeds them (recent scores, quality samples, the observed window), all without a server."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from models.alerting import AlertPolicy, AlertPolicyConfig, exceeds
from models.detector import FraudDetector
from models.features import FeatureSet, FeatureSpec
from models.learners import OnlineLearner
from models.memory_state import InMemoryFeatureState
from models.rules.ruleset import Rule, RuleSet
from models.schemas import Decision
from pipelines.runtime.alert_log import AlertLog
from pipelines.runtime.dashboard import (
    QualityPoint,
    alert_rate,
    challenger_history,
    score_histogram,
)
from pipelines.runtime.embedded import EmbeddedRuntime
from tests.builders import make_label, make_tx

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def ago(**delta: float) -> datetime:
    return NOW - timedelta(**delta)


def test_histogram_bins_split_zero_to_one_evenly_and_keep_one_in_the_last_bin() -> None:
    bins = score_histogram([0.0, 0.049, 0.05, 0.5, 0.999, 1.0], bins=20, threshold=0.5)
    assert len(bins) == 20
    assert (bins[0].lower, bins[0].upper) == (0.0, 0.05)
    assert (bins[-1].lower, bins[-1].upper) == (0.95, 1.0)
    assert [bins[0].count, bins[1].count, bins[10].count, bins[-1].count] == [2, 1, 1, 2]
    assert sum(b.count for b in bins) == 6


def test_histogram_clamps_rounding_errors_at_either_end_and_refuses_no_bins() -> None:
    bins = score_histogram([-1e-12, 1.0 + 1e-12], bins=4, threshold=0.5)
    assert [b.count for b in bins] == [1, 0, 0, 1]
    with pytest.raises(ValueError, match="bins"):
        score_histogram([0.5], bins=0, threshold=0.5)


def test_histogram_counts_as_alerting_only_the_scores_strictly_above_the_threshold() -> None:
    # A threshold on a bin's lower edge: a score exactly at it shares the bin with ones that
    # alert, and does not alert itself (the service alerts strictly above).
    on_edge = score_histogram([0.19, 0.2, 0.2, 0.21, 0.26, 0.9], bins=20, threshold=0.2)
    assert [(b.count, b.above_threshold) for b in on_edge[3:6]] == [(1, 0), (3, 1), (1, 1)]
    assert on_edge[-2].above_threshold == on_edge[-2].count == 1
    assert sum(b.above_threshold for b in on_edge) == 3
    # A threshold inside a bin (an alert budget moves it anywhere) splits that bin too.
    inside = score_histogram([0.2, 0.22, 0.23, 0.231, 0.24], bins=20, threshold=0.23)
    assert (inside[4].count, inside[4].above_threshold) == (5, 2)
    # Each bin's alerting scores are those the service would alert on, no more, no fewer.
    scores = [index / 997 for index in range(998)]
    for threshold in (0.0, 0.05, 0.2, 0.2345, 0.95, 1.0):
        counted = sum(b.above_threshold for b in score_histogram(scores, threshold=threshold))
        assert counted == sum(exceeds(score, threshold) for score in scores), threshold


def test_alert_rate_counts_whole_minutes_oldest_first_and_excludes_the_window_edges() -> None:
    raised = [ago(minutes=3), ago(minutes=2, seconds=59), ago(seconds=1), NOW, ago(minutes=4)]
    rate = alert_rate(raised, now=NOW, minutes=3, observed_since=ago(hours=1))
    assert [minute.start for minute in rate.minutes] == [
        ago(minutes=3),
        ago(minutes=2),
        ago(minutes=1),
    ]
    # The window is [now - 3 min, now): its start is in, ``now`` itself and older ones are out.
    assert [minute.alerts for minute in rate.minutes] == [2, 0, 1]
    assert rate.per_minute == 1.0


def test_minutes_before_the_service_observed_them_are_unknown_not_quiet() -> None:
    started = ago(seconds=90)
    rate = alert_rate([ago(seconds=30)] * 3, now=NOW, minutes=5, observed_since=started)
    assert [minute.alerts for minute in rate.minutes] == [None, None, None, 0, 3]
    assert rate.per_minute == 2.0  # three alerts in the minute and a half observed
    assert rate.observed_minutes == 1.5


def test_no_rate_before_anything_was_observed() -> None:
    rate = alert_rate([], now=NOW, minutes=2, observed_since=NOW)
    assert [minute.alerts for minute in rate.minutes] == [None, None]
    assert (rate.per_minute, rate.observed_minutes) == (None, 0.0)
    with pytest.raises(ValueError, match="minutes"):
        alert_rate([], now=NOW, minutes=0, observed_since=NOW)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def runtime(clock: Clock, *, score_window: int = 5_000, alert_log: int = 10_000) -> EmbeddedRuntime:
    features = FeatureSet(FeatureSpec())
    detector = FraudDetector(
        features,
        InMemoryFeatureState(features.spec.windows),
        OnlineLearner("logistic"),
        alerting=AlertPolicy(AlertPolicyConfig(threshold=0.0, cooldown_seconds=0)),
    )
    return EmbeddedRuntime(
        detector, AlertLog(capacity=alert_log), score_window=score_window, clock=clock
    )


def test_the_runtime_keeps_the_last_scores_for_the_distribution() -> None:
    subject = runtime(Clock(), score_window=3)
    first = subject.score([make_tx(0), make_tx(1)])
    last = subject.score([make_tx(2, card="c2"), make_tx(3, card="c3")])
    assert list(subject.board.recent_scores) == [first[1].score, last[0].score, last[1].score]
    snapshot = subject.dashboard(bins=10)
    assert snapshot.scores == 3
    assert sum(b.count for b in snapshot.histogram) == 3
    assert snapshot.transactions_scored == 4
    assert snapshot.threshold == 0.0


def test_quality_samples_carry_the_clock_and_the_rolling_ap() -> None:
    clock = Clock()
    subject = runtime(clock)
    subject.sample_quality()
    subject.score([make_tx(index, card=f"c{index}") for index in range(4)])
    subject.learn([make_label(index, is_fraud=index % 2 == 0) for index in range(4)])
    clock.now = ago(seconds=-5)
    subject.sample_quality()
    before, after = subject.dashboard().quality
    assert before.at == NOW
    assert math.isnan(before.rolling_average_precision)  # no label had matured
    assert after.at == ago(seconds=-5)
    assert after.rolling_average_precision == subject.model_status().rolling_average_precision


def test_quality_samples_carry_each_challenger_while_it_shadows() -> None:
    clock = Clock()
    subject = runtime(clock)
    subject.sample_quality()
    subject.detector.add_challenger("m000002", OnlineLearner("hoeffding"))
    subject.score([make_tx(index, card=f"c{index}") for index in range(4)])
    subject.learn([make_label(index, is_fraud=index % 2 == 0) for index in range(4)])
    clock.now = ago(seconds=-5)
    subject.sample_quality()
    subject.detector.retire_challenger("m000002")
    clock.now = ago(seconds=-10)
    subject.sample_quality()
    points = subject.dashboard().quality
    assert [set(point.challengers) for point in points] == [set(), {"m000002"}, set()]
    shadowed = points[1].challengers["m000002"]
    assert not math.isnan(shadowed)  # four labels matured for it too
    assert challenger_history(points, "m000002") == [(ago(seconds=-5), shadowed)]
    assert challenger_history(points, "m000009") == []


def test_a_challengers_history_skips_the_samples_taken_before_and_after_it_shadowed() -> None:
    points = [
        QualityPoint(ago(seconds=15), 0.5),
        QualityPoint(ago(seconds=10), 0.5, {"a": 0.1}),
        QualityPoint(ago(seconds=5), 0.6, {"a": 0.2, "b": math.nan}),
        QualityPoint(NOW, 0.6, {"b": 0.3}),
    ]
    assert challenger_history(points, "a") == [(ago(seconds=10), 0.1), (ago(seconds=5), 0.2)]
    [(first_at, first), second] = challenger_history(points, "b")
    assert first_at == ago(seconds=5)
    assert math.isnan(first)  # shadowing, but no label had matured for it yet
    assert second == (NOW, 0.3)


@pytest.mark.anyio
async def test_the_alert_rate_is_observed_from_the_start_or_the_oldest_alert_kept() -> None:
    clock = Clock()
    subject = runtime(clock, alert_log=2)
    clock.now = ago(minutes=3)
    await subject.start()
    try:
        subject.score([make_tx(0)])
        clock.now = ago(minutes=1, seconds=30)
        subject.score([make_tx(1, card="c2")])
        clock.now = NOW
        rate = subject.dashboard(minutes=5).alert_rate
        assert [minute.alerts for minute in rate.minutes] == [None, None, 1, 1, 0]
        # A third alert pushes the first out of the log: the rate starts at the oldest kept.
        subject.score([make_tx(2, card="c3")])
        clock.now = ago(seconds=-1)
        rate = subject.dashboard(minutes=5).alert_rate
        assert subject.alerts.complete_since == ago(minutes=1, seconds=30)
        assert [minute.alerts for minute in rate.minutes] == [None, None, None, 1, 1]
    finally:
        await subject.stop()


def test_reviews_reach_the_alert_log_but_count_in_no_alert_figure() -> None:
    subject = runtime(Clock())
    subject.board.start()
    fields = subject.detector.rule_fields()
    rules = (
        Rule.parse("quiet", 'terminal_id == "p-quiet" -> allow', fields),
        Rule.parse("web", 'channel == "ecommerce" -> review', fields),
    )
    subject.detector.apply_rules(RuleSet(rules, 1))
    # A threshold the fresh model never passes: every decision here is a rule's.
    subject.detector.alerting = AlertPolicy(AlertPolicyConfig(threshold=0.99))
    web = make_tx(0).model_copy(update={"channel": "ecommerce"})
    quiet = make_tx(1, terminal="p-quiet")
    scored = subject.score([web, quiet, make_tx(2)])
    assert [result.decision for result in scored] == [
        Decision.REVIEW,
        Decision.PASS,
        Decision.PASS,
    ]
    [review] = subject.alerts.recent(since=NOW - timedelta(days=1), limit=10)
    assert review.decision is Decision.REVIEW
    assert review.reasons[0].feature == "rule:web"
    assert (subject.alerts.published, subject.alerts.raised) == (1, 0)
    assert subject.telemetry.alerts == 0
    snapshot = subject.dashboard()
    assert snapshot.alerts_raised == 0
    assert sum(minute.alerts or 0 for minute in snapshot.alert_rate.minutes) == 0
    assert subject.detector.rule_decisions == {("web", "review"): 1, ("quiet", "allow"): 1}
