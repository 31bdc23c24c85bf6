from __future__ import annotations

import doctest
import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from models import metrics
from models.metrics import (
    BudgetRecall,
    ThresholdAlerts,
    alert_precision,
    average_precision,
    card_precision_at_k,
    daily_card_precision_at_k,
    recall_at_budget,
    roc_auc,
    threshold_alert_metrics,
)
from models.period_metrics import evaluate_scores

DAY1 = "2018-08-08"
DAY2 = "2018-08-09"


@dataclass(frozen=True)
class Tx:
    """One scored transaction; its label is revealed a week later unless ``known`` says when."""

    at: str
    card: str
    score: float
    fraud: bool = False
    known: str | None = None


def frame_of(transactions: Sequence[Tx]) -> pd.DataFrame:
    timestamp = pd.to_datetime([tx.at for tx in transactions], utc=True)
    week_later = timestamp + pd.Timedelta(days=7)
    known = [
        week_later[i] if tx.known is None else pd.Timestamp(tx.known, tz="UTC")
        for i, tx in enumerate(transactions)
    ]
    return pd.DataFrame(
        {
            "timestamp": timestamp,
            "card_id": [tx.card for tx in transactions],
            "score": [tx.score for tx in transactions],
            "is_fraud": [tx.fraud for tx in transactions],
            "label_known_at": pd.to_datetime(known, utc=True),
        }
    )


def random_frame(rows: int, *, days: int, cards: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    start = pd.Timestamp(DAY1, tz="UTC")
    timestamp = start + pd.to_timedelta(np.sort(rng.uniform(0, days * 86_400, rows)), unit="s")
    fraud = rng.random(rows) < 0.05
    return pd.DataFrame(
        {
            "timestamp": timestamp,
            "card_id": [f"C{card:04d}" for card in rng.integers(0, cards, rows)],
            "score": np.clip(rng.normal(0.3 + 0.3 * fraud, 0.2), 0.0, 1.0),
            "is_fraud": fraud,
            "label_known_at": timestamp + pd.Timedelta(days=7),
        }
    )


def test_docstring_examples_run() -> None:
    # pytest is not configured with --doctest-modules, so the examples are run here.
    result = doctest.testmod(metrics, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0


# --- AP and ROC AUC ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_average_precision_and_roc_auc_equal_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y_true = rng.random(2_000) < 0.1
    scores = rng.random(2_000) + 0.2 * y_true

    assert average_precision(y_true, scores) == pytest.approx(
        average_precision_score(y_true, scores)
    )
    assert roc_auc(y_true, scores) == pytest.approx(roc_auc_score(y_true, scores))


@pytest.mark.parametrize("label", [True, False])
def test_single_class_gives_nan_without_warning(label: bool) -> None:
    y_true = [label] * 5
    scores = [0.1, 0.2, 0.3, 0.4, 0.5]

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isnan(average_precision(y_true, scores))
        assert math.isnan(roc_auc(y_true, scores))


def test_mismatched_lengths_raise() -> None:
    with pytest.raises(ValueError, match="shape"):
        average_precision([True, False], [0.5])


def test_perfect_scorer_has_ap_one() -> None:
    frame = random_frame(5_000, days=10, cards=300)
    frame["score"] = frame["is_fraud"].astype(float)

    assert evaluate_scores(frame).overall.average_precision == 1.0


def test_constant_scorer_has_ap_equal_to_fraud_rate() -> None:
    frame = random_frame(5_000, days=10, cards=300)
    frame["score"] = 0.5

    result = evaluate_scores(frame).overall

    assert result.average_precision == pytest.approx(frame["is_fraud"].mean())
    assert result.roc_auc == pytest.approx(0.5)


# --- Card Precision@k -------------------------------------------------------------------------


def test_known_compromised_card_is_left_out_of_the_ranking() -> None:
    frame = frame_of(
        [
            # "old" has the top score but its fraud was labelled the day before.
            Tx(f"{DAY1} 09:00", "old", 0.99, fraud=True, known="2018-08-07 12:00"),
            Tx(f"{DAY1} 10:00", "a", 0.80, fraud=True),
            Tx(f"{DAY1} 11:00", "b", 0.70),
            Tx(f"{DAY1} 12:00", "c", 0.10, fraud=True),
        ]
    )

    # Without the exclusion the top two would be "old" and "a": 2/2.
    assert card_precision_at_k(frame, k=2) == 0.5


def test_label_revealed_at_midnight_does_not_count_as_known_that_day() -> None:
    frame = frame_of(
        [
            Tx(f"{DAY1} 09:00", "x", 0.9, fraud=True, known=f"{DAY1} 00:00"),
            Tx(f"{DAY1} 10:00", "y", 0.1),
        ]
    )

    assert card_precision_at_k(frame, k=1) == 1.0


def test_card_is_ranked_by_its_highest_score_of_the_day() -> None:
    frame = frame_of(
        [
            Tx(f"{DAY1} 08:00", "a", 0.10, fraud=True),
            Tx(f"{DAY1} 20:00", "a", 0.95),
            Tx(f"{DAY1} 09:00", "b", 0.60),
            Tx(f"{DAY1} 10:00", "c", 0.50, fraud=True),
        ]
    )

    # "a" ranks first by its max (0.95) and had a fraud that day, though not that transaction.
    assert card_precision_at_k(frame, k=1) == 1.0
    assert card_precision_at_k(frame, k=2) == 0.5


def test_fewer_eligible_cards_than_k_still_divides_by_k() -> None:
    frame = frame_of(
        [
            Tx(f"{DAY1} 08:00", "a", 0.9, fraud=True),
            Tx(f"{DAY1} 09:00", "b", 0.8, fraud=True),
            Tx(f"{DAY1} 10:00", "c", 0.1),
        ]
    )

    assert card_precision_at_k(frame, k=10) == pytest.approx(0.2)
    assert alert_precision(frame, k=10) == pytest.approx(2 / 3)


def test_daily_values_are_averaged_over_days() -> None:
    frame = frame_of(
        [
            Tx(f"{DAY1} 08:00", "a", 0.9, fraud=True),
            Tx(f"{DAY1} 09:00", "b", 0.8, fraud=True),
            Tx(f"{DAY2} 08:00", "c", 0.9, fraud=True),
            Tx(f"{DAY2} 09:00", "d", 0.8),
        ]
    )

    daily = daily_card_precision_at_k(frame, k=2)

    assert list(daily.index) == [pd.Timestamp(DAY1, tz="UTC"), pd.Timestamp(DAY2, tz="UTC")]
    assert list(daily) == [1.0, 0.5]
    assert card_precision_at_k(frame, k=2) == 0.75


def test_a_card_stays_excluded_once_known() -> None:
    frame = frame_of(
        [
            Tx(f"{DAY1} 08:00", "a", 0.9, fraud=True, known=f"{DAY1} 09:00"),
            Tx(f"{DAY2} 08:00", "a", 0.9),
            Tx(f"{DAY2} 09:00", "b", 0.5, fraud=True),
        ]
    )

    assert list(daily_card_precision_at_k(frame, k=1)) == [1.0, 1.0]


def test_ties_do_not_depend_on_row_order() -> None:
    frame = random_frame(3_000, days=5, cards=200)
    frame["score"] = frame["score"].round(1)
    shuffled = frame.sample(frac=1.0, random_state=7)

    assert card_precision_at_k(shuffled, k=20) == card_precision_at_k(frame, k=20)
    assert recall_at_budget(shuffled, k=20) == recall_at_budget(frame, k=20)


def test_k_must_be_positive() -> None:
    frame = frame_of([Tx(f"{DAY1} 08:00", "a", 0.9)])

    with pytest.raises(ValueError, match="k must be at least 1"):
        card_precision_at_k(frame, k=0)


# --- alerting ---------------------------------------------------------------------------------


def test_recall_and_precision_at_budget_by_hand() -> None:
    frame = frame_of(
        [
            Tx(f"{DAY1} 08:00", "a", 0.9, fraud=True),
            Tx(f"{DAY1} 09:00", "a", 0.2, fraud=True),
            Tx(f"{DAY1} 10:00", "b", 0.8),
            Tx(f"{DAY1} 11:00", "c", 0.3, fraud=True),
            Tx(f"{DAY2} 08:00", "d", 0.7, fraud=True),
            Tx(f"{DAY2} 09:00", "e", 0.6),
            Tx(f"{DAY2} 10:00", "f", 0.5),
        ]
    )

    # k=2 flags a, b on day 1 and d, e on day 2.
    # Frauds: a x2, c, d -> caught a x2, d = 3 of 4; compromised card-days a, c, d -> 2 of 3.
    assert recall_at_budget(frame, k=2) == BudgetRecall(transaction_recall=0.75, card_recall=2 / 3)
    assert alert_precision(frame, k=2) == 0.5


def test_frauds_of_known_compromised_cards_count_as_missed() -> None:
    frame = frame_of(
        [
            Tx(f"{DAY1} 08:00", "a", 0.9, fraud=True, known=f"{DAY1} 09:00"),
            Tx(f"{DAY2} 08:00", "a", 0.9, fraud=True),
            Tx(f"{DAY2} 09:00", "b", 0.1),
        ]
    )

    assert recall_at_budget(frame, k=1) == BudgetRecall(transaction_recall=0.5, card_recall=0.5)


def test_threshold_alerts_leave_out_scores_equal_to_the_threshold_as_the_service_does() -> None:
    frame = frame_of(
        [
            Tx(f"{DAY1} 08:00", "a", 0.5, fraud=True),
            Tx(f"{DAY1} 09:00", "b", 0.7),
            Tx(f"{DAY1} 10:00", "c", 0.4, fraud=True),
            Tx(f"{DAY1} 11:00", "d", 0.1),
        ]
    )

    assert threshold_alert_metrics(frame, 0.5) == ThresholdAlerts(
        precision=0.0, recall=0.0, alerts=1
    )
    assert threshold_alert_metrics(frame, 0.45) == ThresholdAlerts(
        precision=0.5, recall=0.5, alerts=2
    )


def test_threshold_above_every_score_gives_undefined_precision() -> None:
    frame = frame_of([Tx(f"{DAY1} 08:00", "a", 0.5, fraud=True)])

    result = threshold_alert_metrics(frame, 0.9)

    assert result.alerts == 0
    assert math.isnan(result.precision)
    assert result.recall == 0.0


# --- evaluate_scores --------------------------------------------------------------------------


def test_weeks_start_at_the_first_day_and_the_last_is_shorter() -> None:
    start = pd.Timestamp("2018-08-08 00:00", tz="UTC")
    frame = frame_of(
        [
            Tx(str(start + pd.Timedelta(days=day, hours=10)), f"c{day}", 0.5, fraud=day % 2 == 0)
            for day in range(17)
        ]
    )

    result = evaluate_scores(frame, k=5)

    assert [(week.start.date(), week.end.date()) for week in result.weekly] == [
        (datetime(2018, 8, 8).date(), datetime(2018, 8, 15).date()),
        (datetime(2018, 8, 15).date(), datetime(2018, 8, 22).date()),
        (datetime(2018, 8, 22).date(), datetime(2018, 8, 25).date()),
    ]
    assert [week.transactions for week in result.weekly] == [7, 7, 3]
    assert [week.frauds for week in result.weekly] == [4, 3, 2]
    assert result.overall.transactions == 17
    assert result.overall.start == datetime(2018, 8, 8, tzinfo=UTC)
    assert result.overall.end == datetime(2018, 8, 25, tzinfo=UTC)


def test_weekly_means_and_overall_agree_with_the_building_blocks() -> None:
    frame = random_frame(20_000, days=16, cards=500)

    result = evaluate_scores(frame, k=30)

    assert result.overall.card_precision_at_k == pytest.approx(card_precision_at_k(frame, k=30))
    assert result.overall.alert_precision == pytest.approx(alert_precision(frame, k=30))
    budget = recall_at_budget(frame, k=30)
    assert result.overall.transaction_recall == pytest.approx(budget.transaction_recall)
    assert result.overall.card_recall == pytest.approx(budget.card_recall)
    assert result.overall.average_precision == pytest.approx(
        average_precision(frame["is_fraud"], frame["score"])
    )
    # 16 days: two full weeks and a partial one, shown but left out of the means.
    assert [week.partial for week in result.weekly] == [False, False, True]
    assert result.mean_weekly_average_precision == pytest.approx(
        np.mean([week.average_precision for week in result.weekly[:2]])
    )
    assert result.mean_weekly_card_precision_at_k == pytest.approx(
        np.mean([week.card_precision_at_k for week in result.weekly[:2]])
    )
    assert sum(week.transactions for week in result.weekly) == len(frame)
    assert any("left out of the weekly means" in warning for warning in result.warnings)


def test_start_and_end_select_the_period_and_only_its_frauds_are_knowledge() -> None:
    frame = frame_of(
        [
            Tx("2018-08-01 10:00", "a", 0.2, fraud=True, known="2018-08-03 00:00"),
            Tx(f"{DAY1} 10:00", "a", 0.9, fraud=True),
            Tx(f"{DAY1} 11:00", "b", 0.8),
            Tx(f"{DAY2} 11:00", "b", 0.8),
        ]
    )

    result = evaluate_scores(
        frame,
        k=1,
        start=datetime(2018, 8, 8, tzinfo=UTC),
        end=datetime(2018, 8, 9, tzinfo=UTC),
    )

    assert result.overall.transactions == 2
    # "a"'s fraud before the period does not shut it out: it was reissued, as a bank would.
    assert result.overall.card_precision_at_k == 1.0
    assert len(result.weekly) == 1
    assert result.weekly[0].end == datetime(2018, 8, 9, tzinfo=UTC)


def test_period_without_fraud_gives_nan_figures_and_json_nulls() -> None:
    frame = frame_of([Tx(f"{DAY1} 08:00", "a", 0.9), Tx(f"{DAY1} 09:00", "b", 0.1)])

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = evaluate_scores(frame, k=1)

    assert math.isnan(result.overall.average_precision)
    assert math.isnan(result.mean_weekly_average_precision)
    assert result.mean_weekly_card_precision_at_k == 0.0
    document = result.to_dict()
    overall = document["overall"]
    assert isinstance(overall, dict)
    assert overall["average_precision"] is None
    assert overall["start"] == "2018-08-08T00:00:00+00:00"
    json.dumps(document, allow_nan=False)


def test_missing_columns_are_named() -> None:
    frame = frame_of([Tx(f"{DAY1} 08:00", "a", 0.9)]).drop(columns=["card_id", "label_known_at"])

    with pytest.raises(ValueError, match="card_id, label_known_at"):
        evaluate_scores(frame)


def test_empty_period_raises() -> None:
    frame = frame_of([Tx(f"{DAY1} 08:00", "a", 0.9)])

    with pytest.raises(ValueError, match="no rows in the period"):
        evaluate_scores(frame, start=datetime(2018, 9, 1, tzinfo=UTC))


def test_naive_timestamps_are_refused() -> None:
    frame = frame_of([Tx(f"{DAY1} 08:00", "a", 0.9)])
    frame["timestamp"] = frame["timestamp"].dt.tz_localize(None)

    with pytest.raises(ValueError, match="'timestamp' must be tz-aware"):
        evaluate_scores(frame)


def test_naive_period_bounds_are_refused() -> None:
    frame = frame_of([Tx(f"{DAY1} 08:00", "a", 0.9)])

    with pytest.raises(ValueError, match="start must be timezone-aware"):
        evaluate_scores(frame, start=datetime(2018, 8, 8))


def test_other_time_zones_are_read_in_utc() -> None:
    # 01:00 in Paris on Aug 9 is 23:00 UTC on Aug 8: one UTC day, one week.
    frame = frame_of([Tx(f"{DAY1} 10:00", "a", 0.9, fraud=True), Tx(f"{DAY1} 23:00", "b", 0.1)])
    frame["timestamp"] = frame["timestamp"].dt.tz_convert("Europe/Paris")

    result = evaluate_scores(frame, k=1)

    assert len(daily_card_precision_at_k(frame, k=1)) == 1
    assert result.overall.end == datetime(2018, 8, 9, tzinfo=UTC)


def test_input_frame_is_not_modified() -> None:
    frame = random_frame(1_000, days=3, cards=50)
    before = frame.copy()

    evaluate_scores(frame, k=10)

    pd.testing.assert_frame_equal(frame, before)


def test_week_of_a_partial_start_is_clipped_to_the_period() -> None:
    frame = frame_of([Tx(f"{DAY1} 08:00", "a", 0.9), Tx(f"{DAY1} 18:00", "b", 0.1)])
    start = datetime(2018, 8, 8, 12, tzinfo=UTC)

    result = evaluate_scores(frame, start=start)

    assert result.weekly[0].start == start
    assert result.weekly[0].end == start.replace(hour=0) + timedelta(days=1)
    assert result.overall.transactions == 1


def test_each_fraud_scenario_gets_its_own_average_precision_per_week() -> None:
    frame = random_frame(6_000, days=14, cards=300, seed=3)
    rng = np.random.default_rng(4)
    # Scenario 1 frauds are scored high, scenario 2 frauds like legitimate rows.
    scenario = np.where(frame["is_fraud"], rng.integers(1, 3, len(frame)), 0)
    frame["scenario"] = scenario
    frame["score"] = frame["score"].clip(upper=0.98)
    frame.loc[scenario == 1, "score"] = 0.99
    frame.loc[scenario == 2, "score"] = rng.uniform(0, 1, int((scenario == 2).sum()))

    result = evaluate_scores(frame, k=10)

    for period in (result.overall, *result.weekly):
        assert set(period.scenario_average_precision) == {1, 2}
        assert period.scenario_average_precision[1] == 1.0
        assert period.scenario_average_precision[2] < 0.5
    first = result.weekly[0]
    rows = frame.loc[frame["timestamp"] < first.end]
    keep = rows["scenario"].isin([0, 2])
    assert first.scenario_average_precision[2] == pytest.approx(
        average_precision(rows.loc[keep, "scenario"] == 2, rows.loc[keep, "score"])
    )
    assert result.to_dict()["overall"]["scenario_average_precision"]["1"] == 1.0  # type: ignore[index]


def test_a_frame_without_scenarios_has_none_and_a_wrong_column_is_refused() -> None:
    frame = random_frame(2_000, days=7, cards=100)
    assert evaluate_scores(frame, k=5).overall.scenario_average_precision == {}
    with pytest.raises(ValueError, match="scenario"):
        evaluate_scores(frame.assign(scenario=1), k=5)


def test_a_budget_large_for_the_cards_is_warned_with_what_a_perfect_scorer_reaches() -> None:
    frame = random_frame(7_000, days=7, cards=1_000)
    small, large = evaluate_scores(frame, k=5), evaluate_scores(frame, k=200)
    assert small.warnings == ()
    [warning] = large.warnings
    assert "k = 200" in warning
    assert f"{large.cards_per_day:,.0f} cards active a day" in warning
    perfect = evaluate_scores(frame.assign(score=frame["is_fraud"].astype(float)), k=200)
    assert perfect.mean_weekly_card_precision_at_k == pytest.approx(
        large.attainable_card_precision_at_k
    )
    assert large.attainable_card_precision_at_k < 1.0
