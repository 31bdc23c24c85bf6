"""The online features, row by row, against an independent pandas rolling-window computation.

Tie rule under test: transactions with equal timestamps count in arrival order (a transaction
sees those that arrived before it in the same second, not those after), which is what pandas'
time-based rolling windows do on a stable-sorted frame; a label revealed exactly at a
transaction's timestamp is known when it is scored.
"""

from __future__ import annotations

from collections import deque
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from models.features import FeatureSet, FeatureSpec
from models.memory_state import InMemoryFeatureState
from models.schemas import Transaction
from models.state import DAY, FraudReport, WindowSpec, event_second

DELAY_DAYS = 7
WINDOWS = (1, 7, 30)


def _stream(rows: int, seed: int) -> pd.DataFrame:
    """Few cards and terminals, so windows fill up; some timestamps deliberately repeat."""
    rng = np.random.default_rng(seed)
    offsets = np.sort(rng.integers(0, 90 * DAY, size=rows))
    # Every fifth transaction reuses its predecessor's second: ties must follow arrival order.
    offsets[5::5] = offsets[4::5][: len(offsets[5::5])]
    start = pd.Timestamp("2018-04-01", tz="UTC")
    return pd.DataFrame(
        {
            "transaction_id": [f"t{i}" for i in range(rows)],
            "timestamp": start + pd.to_timedelta(offsets, unit="s"),
            "card_id": [f"c{value}" for value in rng.integers(0, 25, size=rows)],
            "terminal_id": [f"p{value}" for value in rng.integers(0, 15, size=rows)],
            "amount": np.round(rng.uniform(0.01, 400.0, size=rows), 2),
            "is_fraud": rng.random(rows) < 0.15,
        }
    )


def _online(frame: pd.DataFrame) -> pd.DataFrame:
    """Replay the frame through the in-memory state, revealing labels after the delay."""
    spec = FeatureSpec(windows=WindowSpec(WINDOWS, label_delay_seconds=DELAY_DAYS * DAY))
    features = FeatureSet(spec)
    state = InMemoryFeatureState(spec.windows)
    due: deque[tuple[int, FraudReport]] = deque()
    vectors = []
    rows = zip(
        frame["transaction_id"].tolist(),
        frame["timestamp"].dt.to_pydatetime().tolist(),
        frame["card_id"].tolist(),
        frame["terminal_id"].tolist(),
        frame["amount"].tolist(),
        frame["is_fraud"].tolist(),
        strict=True,
    )
    for transaction_id, timestamp, card_id, terminal_id, amount, is_fraud in rows:
        tx = Transaction(
            transaction_id=transaction_id,
            timestamp=timestamp,
            card_id=card_id,
            terminal_id=terminal_id,
            amount=amount,
            currency="EUR",
        )
        second = event_second(tx.timestamp)
        revealed = []
        while due and due[0][0] <= second:
            revealed.append(due.popleft()[1])
        state.record_frauds(revealed)
        [aggregates] = state.observe([tx])
        vectors.append(features.vector(tx, aggregates))
        if is_fraud:
            due.append((second + DELAY_DAYS * DAY, FraudReport(terminal_id, second)))
    return pd.DataFrame(vectors)


def _rolling(frame: pd.DataFrame, by: list[str], column: str, days: int, how: str) -> pd.Series:
    """``how`` of ``column`` over ``(t - days, t]`` per group, rows up to this one only."""
    result = pd.Series(np.nan, index=frame.index)
    for _, group in frame.groupby(by, sort=False):
        series = group.set_index("timestamp")[column]
        rolled = series.rolling(f"{days}D", closed="right").agg(how)
        result.loc[group.index] = rolled.to_numpy()
    return result


def _expected(frame: pd.DataFrame) -> pd.DataFrame:
    """The same features computed independently with pandas rolling windows."""
    frame = frame.assign(one=1.0, fraud=frame["is_fraud"].astype(float))
    out = pd.DataFrame(index=frame.index)
    out["amount"] = frame["amount"]
    out["is_weekend"] = (frame["timestamp"].dt.day_of_week >= 5).astype(float)
    out["is_night"] = (frame["timestamp"].dt.hour <= 6).astype(float)
    for days in WINDOWS:
        out[f"card_tx_count_{days}d"] = _rolling(frame, ["card_id"], "one", days, "sum")
    for days in WINDOWS:
        out[f"card_avg_amount_{days}d"] = _rolling(frame, ["card_id"], "amount", days, "mean")
    for days in WINDOWS:
        # (t - delay - n, t - delay] is (t - delay - n, t] minus (t - delay, t].
        outer = _rolling(frame, ["terminal_id"], "one", DELAY_DAYS + days, "sum")
        inner = _rolling(frame, ["terminal_id"], "one", DELAY_DAYS, "sum")
        out[f"terminal_tx_count_{days}d"] = outer - inner
    for days in WINDOWS:
        outer = _rolling(frame, ["terminal_id"], "fraud", DELAY_DAYS + days, "sum")
        inner = _rolling(frame, ["terminal_id"], "fraud", DELAY_DAYS, "sum")
        count = out[f"terminal_tx_count_{days}d"]
        out[f"terminal_fraud_rate_{days}d"] = ((outer - inner) / count.where(count > 0)).fillna(0.0)
    horizon = float(WINDOWS[-1] * DAY)
    gaps = frame.groupby("card_id", sort=False)["timestamp"].diff().dt.total_seconds()
    out["card_seconds_since_previous"] = gaps.fillna(horizon).clip(upper=horizon)
    count = out[f"card_tx_count_{WINDOWS[-1]}d"]
    total = _rolling(frame, ["card_id"], "amount", WINDOWS[-1], "sum")
    prior_mean = (total - frame["amount"]) / (count - 1).where(count > 1)
    out[f"card_amount_to_avg_{WINDOWS[-1]}d"] = (frame["amount"] / prior_mean).fillna(1.0)
    pair_count = _rolling(frame, ["card_id", "terminal_id"], "one", WINDOWS[-1], "sum")
    out["card_terminal_first_use"] = (pair_count == 1).astype(float)
    return out


@pytest.mark.parametrize("seed", [0, 1])
def test_online_features_equal_pandas_rolling_windows_row_by_row(seed: int) -> None:
    frame = _stream(3_000, seed)
    online = _online(frame)
    expected = _expected(frame)

    assert list(online.columns) == list(expected.columns)
    for name in expected.columns:
        mismatched = ~np.isclose(online[name], expected[name], rtol=1e-9, atol=1e-9)
        assert not mismatched.any(), (
            f"{name} differs at rows {list(frame.index[mismatched][:5])}: "
            f"online {list(online[name][mismatched][:5])}, "
            f"pandas {list(expected[name][mismatched][:5])}"
        )


def test_stream_has_ties_and_terminal_frauds_so_the_comparison_means_something() -> None:
    frame = _stream(3_000, 0)
    online = _online(frame)
    assert frame["timestamp"].duplicated().sum() > 100
    assert (online["terminal_fraud_rate_7d"] > 0).sum() > 100
    assert (online["card_terminal_first_use"] == 0).sum() > 100


def test_weekend_and_night_follow_the_configured_time_zone() -> None:
    spec = FeatureSpec(timezone="America/New_York")
    features = FeatureSet(spec)
    state = InMemoryFeatureState(spec.windows)
    # Monday 03:00 UTC is Sunday 23:00 in New York: weekend, not night.
    tx = Transaction(
        transaction_id="t",
        timestamp=datetime(2018, 4, 2, 3, tzinfo=UTC),
        card_id="c",
        terminal_id="p",
        amount=1.0,
        currency="USD",
    )
    vector = features.vector(tx, state.observe([tx])[0])
    assert (vector["is_weekend"], vector["is_night"]) == (1.0, 0.0)


def test_schema_version_changes_with_the_label_delay() -> None:
    week = FeatureSet(FeatureSpec(windows=WindowSpec(label_delay_seconds=7 * DAY)))
    day = FeatureSet(FeatureSpec(windows=WindowSpec(label_delay_seconds=DAY)))
    assert week.names == day.names
    assert week.schema_version != day.schema_version


def test_late_event_only_counts_history_before_it() -> None:
    spec = FeatureSpec()
    features = FeatureSet(spec)
    state = InMemoryFeatureState(spec.windows)
    start = datetime(2018, 4, 1, tzinfo=UTC)

    def tx(index: int, at: datetime, amount: float) -> Transaction:
        return Transaction(
            transaction_id=f"t{index}",
            timestamp=at,
            card_id="c",
            terminal_id="p",
            amount=amount,
            currency="EUR",
        )

    state.observe([tx(0, start, 10.0), tx(1, start + timedelta(hours=10), 30.0)])
    late = tx(2, start + timedelta(hours=5), 20.0)
    vector = features.vector(late, state.observe([late])[0])
    assert vector["card_tx_count_1d"] == 2.0  # itself and the one before it, not the later one
    assert vector["card_avg_amount_1d"] == 15.0
    assert vector["card_seconds_since_previous"] == 5 * 3600.0
    after = tx(3, start + timedelta(hours=11), 40.0)
    assert features.vector(after, state.observe([after])[0])["card_tx_count_1d"] == 4.0
