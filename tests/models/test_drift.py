"""`DriftMonitor`: its windows in event time, its bounded memory and its alarm's events."""

from __future__ import annotations

import math
from array import array

import numpy as np
import pandas as pd
import pytest

from models.drift import DriftEventKind, DriftMonitor, DriftPolicy, watched_features
from models.state import DAY

NAMES = ("amount", "is_weekend", "is_night", "gap")


def _feed(monitor: DriftMonitor, day: int, rows: np.ndarray, cards: list[str]) -> None:
    # Spread over the day: the day is reported an hour (the lateness allowed) past its end.
    step = DAY // len(rows)
    for index, (row, card) in enumerate(zip(rows, cards, strict=True)):
        second = day * DAY + index * step
        monitor.observe(second, array("d", row.tolist()), card, float(row[0]) / 100)


def _quiet_day(rng: np.random.Generator, n: int = 400) -> tuple[np.ndarray, list[str]]:
    rows = np.column_stack(
        [
            rng.gamma(2.0, 20.0, n).round(2),
            np.zeros(n),
            rng.integers(0, 2, n),
            rng.exponential(20_000.0, n).round(),
        ]
    )
    return rows, [f"c{card}" for card in rng.integers(0, 300, n)]


def _crowded_day(rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    rows, cards = _quiet_day(rng)
    crowd = np.tile([1.5, 0.0, 1.0, 60.0], (60, 1))
    return np.vstack([rows, crowd]), cards + [f"new{i // 3}" for i in range(60)]


def test_the_report_compares_the_day_just_ended_with_the_reference_before_the_gap() -> None:
    rng = np.random.default_rng(0)
    policy = DriftPolicy(reference_days=3, gap_days=2, ways=2)
    monitor = DriftMonitor(NAMES, policy, watched=watched_features(NAMES))
    days = {day: _quiet_day(rng) for day in range(100, 108)}
    for day, (rows, cards) in days.items():
        _feed(monitor, day, rows, cards)
    report = monitor.report
    assert report is not None
    # Day 107 is still open; 106 has been reported, against 101..103 (104 and 105: the gap).
    assert (report.day, report.reference_first_day, report.reference_last_day) == (106, 101, 103)
    assert report.transactions == 400
    assert [f.name for f in report.features] == ["amount", "is_night", "gap"]
    # Days 103 and older are no longer needed by a window still to come.
    assert monitor.days_kept == policy.reference_days + policy.gap_days + 1

    reference = pd.DataFrame(np.vstack([days[d][0] for d in (101, 102, 103)]), columns=NAMES)
    recent = pd.DataFrame(days[106][0], columns=NAMES)
    for feature in report.features:
        edges = np.unique(np.quantile(reference[feature.name], policy.quantiles))
        bins = [-np.inf, *edges, np.inf]
        p = pd.cut(reference[feature.name], bins, right=False).value_counts(sort=False)
        q = pd.cut(recent[feature.name], bins, right=False).value_counts(sort=False)
        p_share, q_share = (p / p.sum()).clip(lower=1e-4), (q / q.sum()).clip(lower=1e-4)
        assert feature.psi == pytest.approx(
            float(((q_share - p_share) * np.log(q_share / p_share)).sum())
        )


def test_a_day_keeps_at_most_its_sample_of_vectors() -> None:
    rng = np.random.default_rng(1)
    monitor = DriftMonitor(NAMES, DriftPolicy(reference_days=1, gap_days=0, rows_per_day=50))
    for day in range(3):
        _feed(monitor, day, *_quiet_day(rng, 1_000))
    report = monitor.report
    assert report is not None
    assert report.transactions == 1_000
    # The sample is uniform over the day: its amounts match the day's, not the first 50 rows'.
    assert all(math.isfinite(f.psi) for f in report.features)
    assert all(len(day.scores) == 50 for day in monitor._days.values())


def test_the_alarm_is_raised_by_a_crowded_cell_and_cleared_when_it_goes() -> None:
    rng = np.random.default_rng(2)
    policy = DriftPolicy(reference_days=3, gap_days=0, ways=2, min_cards=5, novelty_surprise=None)
    monitor = DriftMonitor(NAMES, policy, watched=watched_features(NAMES))
    for day in range(5):
        _feed(monitor, day, *_quiet_day(rng))
    _feed(monitor, 5, *_crowded_day(rng))
    _feed(monitor, 6, *_quiet_day(rng))
    assert monitor.report is not None
    assert monitor.report.day == 5
    assert monitor.report.alarm
    # The reference of day 6 holds day 5's crowd: the quiet day after is quiet again.
    _feed(monitor, 7, *_quiet_day(rng))
    report = monitor.report
    assert report is not None
    assert report.day == 6
    assert not report.alarm
    events = monitor.take_events()
    assert [(event.kind, event.day) for event in events] == [
        (DriftEventKind.RAISED, 5),
        (DriftEventKind.CLEARED, 6),
    ]
    assert "20 cards" in events[0].reason
    assert monitor.take_events() == []


def test_no_report_before_the_warm_up_or_without_a_full_reference() -> None:
    rng = np.random.default_rng(3)
    monitor = DriftMonitor(NAMES, DriftPolicy(reference_days=2, gap_days=0, warmup_days=4))
    # The first reference window may start on day 4: day 6 is the first one reported.
    for day in range(7):
        _feed(monitor, day, *_quiet_day(rng, 50))
    assert monitor.report is None
    _feed(monitor, 7, *_quiet_day(rng, 50))
    assert monitor.report is not None
    assert (monitor.report.day, monitor.report.reference_first_day) == (6, 4)


def test_the_watched_features_leave_out_label_derived_and_calendar_ones() -> None:
    names = ("amount", "is_weekend", "terminal_fraud_rate_1d", "card_tx_count_7d")
    assert watched_features(names) == ("amount", "card_tx_count_7d")


def test_a_day_is_reported_only_once_event_time_is_past_its_end_and_the_lateness() -> None:
    rng = np.random.default_rng(4)
    monitor = DriftMonitor(NAMES, DriftPolicy(reference_days=1, gap_days=0))
    for day in range(2):
        _feed(monitor, day, *_quiet_day(rng, 100))
    rows, _ = _quiet_day(rng, 3)
    late = array("d", rows[0].tolist())
    monitor.observe(2 * DAY + 3_599, late, "late", 0.0)
    assert monitor.report is None
    # Still counted in day 1, which has not been reported yet.
    monitor.observe(2 * DAY - 1, late, "late", 0.0)
    monitor.observe(2 * DAY + 3_600, late, "late", 0.0)
    assert monitor.report is not None
    assert (monitor.report.day, monitor.report.transactions) == (1, 101)


def _testing_day(rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """A quiet day and five cards each paying a euro seven times at night, minutes apart."""
    rows, cards = _quiet_day(rng)
    tested = np.tile([1.0, 0.0, 1.0, 120.0], (35, 1))
    return np.vstack([rows, tested]), cards + [f"tested{i // 7}" for i in range(35)]


def test_a_few_cards_unlike_the_reference_raise_the_alarm_by_their_novelty() -> None:
    rng = np.random.default_rng(3)
    # Cells explain but never alarm here: the novelty alone decides.
    policy = DriftPolicy(reference_days=3, gap_days=0, ways=2, alarm_surprise=None)
    monitor = DriftMonitor(NAMES, policy, watched=watched_features(NAMES))
    for day in range(5):
        _feed(monitor, day, *_quiet_day(rng))
    quiet = monitor.report
    assert quiet is not None
    assert quiet.novelty is not None
    assert not quiet.alarm
    assert quiet.novelty.card_days > 0
    assert quiet.novelty.surprise <= 2.0
    _feed(monitor, 5, *_testing_day(rng))
    _feed(monitor, 6, *_quiet_day(rng))
    report = monitor.report
    assert report is not None
    assert report.novelty is not None
    assert report.day == 5
    assert report.novelty.novel >= 3
    assert report.novelty.surprise > 2.0
    assert report.alarm
    raised = monitor.take_events()[-1]
    assert raised.kind is DriftEventKind.RAISED
    assert f"{report.novelty.novel} novel card-days of {report.novelty.card_days}" in raised.reason
