from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import pytest

from models.simulator import (
    HANDBOOK_COLUMNS,
    SECONDS_PER_DAY,
    FraudScenario,
    SimulationConfig,
    simulate,
)

SMALL = SimulationConfig(customers=50, terminals=100, days=10, seed=3)
# The published density of terminals and customers: fraud counts per day are fixed, not
# proportional, so a smaller world would have a much higher fraud rate.
MEDIUM = SimulationConfig(customers=2000, terminals=10000, days=30, seed=7)


@pytest.fixture(scope="module")
def medium() -> pd.DataFrame:
    return simulate(MEDIUM)


@pytest.fixture(scope="module")
def drifting() -> pd.DataFrame:
    return simulate(SimulationConfig(customers=500, terminals=1000, days=30, new_pattern_day=20))


def test_same_seed_gives_the_same_frame() -> None:
    pd.testing.assert_frame_equal(simulate(SMALL), simulate(SMALL))


def test_another_seed_gives_another_frame() -> None:
    other = SimulationConfig(customers=50, terminals=100, days=10, seed=4)
    assert not simulate(SMALL).equals(simulate(other))


def test_columns_and_dtypes(medium: pd.DataFrame) -> None:
    assert tuple(medium.columns) == HANDBOOK_COLUMNS
    assert medium.dtypes.astype(str).to_dict() == {
        "TRANSACTION_ID": "int64",
        "TX_DATETIME": "datetime64[ns]",
        "CUSTOMER_ID": "int64",
        "TERMINAL_ID": "int64",
        "TX_AMOUNT": "float64",
        "TX_TIME_SECONDS": "int64",
        "TX_TIME_DAYS": "int64",
        "TX_FRAUD": "int8",
        "TX_FRAUD_SCENARIO": "int8",
    }


def test_rows_are_numbered_in_time_order(medium: pd.DataFrame) -> None:
    assert medium["TRANSACTION_ID"].tolist() == list(range(len(medium)))
    assert medium["TX_DATETIME"].is_monotonic_increasing


def test_time_columns_agree(medium: pd.DataFrame) -> None:
    start = pd.Timestamp(MEDIUM.start_date)
    elapsed = (medium["TX_DATETIME"] - start).dt.total_seconds().astype("int64")
    assert elapsed.equals(medium["TX_TIME_SECONDS"])
    assert medium["TX_TIME_DAYS"].equals(medium["TX_TIME_SECONDS"] // SECONDS_PER_DAY)
    assert medium["TX_TIME_DAYS"].between(0, MEDIUM.days - 1).all()


def test_start_date_is_the_first_midnight() -> None:
    frame = simulate(
        SimulationConfig(customers=20, terminals=50, days=2, start_date=date(2020, 2, 29))
    )
    assert frame["TX_DATETIME"].min() >= pd.Timestamp("2020-02-29")
    assert frame["TX_DATETIME"].max() < pd.Timestamp("2020-03-02")


def test_amounts_are_positive_cents(medium: pd.DataFrame) -> None:
    amounts = medium["TX_AMOUNT"]
    assert (amounts > 0).all()
    assert np.allclose(amounts, amounts.round(2))


def test_volume_and_fraud_rate_are_plausible(medium: pd.DataFrame) -> None:
    # Rates per day are uniform in [0, 4], so a customer averages two payments a day.
    per_customer_day = len(medium) / (MEDIUM.customers * MEDIUM.days)
    assert 1.7 < per_customer_day < 2.3
    assert 0.003 < medium["TX_FRAUD"].mean() < 0.03


def test_fraud_flag_matches_scenario(medium: pd.DataFrame) -> None:
    assert medium["TX_FRAUD"].equals((medium["TX_FRAUD_SCENARIO"] > 0).astype("int8"))
    assert set(medium["TX_FRAUD_SCENARIO"].unique()) <= {0, 1, 2, 3}


def test_every_large_amount_is_fraud(medium: pd.DataFrame) -> None:
    large = medium[medium["TX_AMOUNT"] > 220]
    assert len(large) > 0
    assert (large["TX_FRAUD"] == 1).all()


def test_compromised_terminals_defraud_for_a_while(medium: pd.DataFrame) -> None:
    frauds = medium[medium["TX_FRAUD_SCENARIO"] == FraudScenario.COMPROMISED_TERMINAL]
    assert len(frauds) > 0
    # A terminal stays compromised for 28 days, so its frauds come in runs, not one-offs.
    per_terminal = frauds.groupby("TERMINAL_ID").size()
    assert per_terminal.max() > 1


def test_compromised_customers_have_inflated_frauds(medium: pd.DataFrame) -> None:
    frauds = medium[medium["TX_FRAUD_SCENARIO"] == FraudScenario.COMPROMISED_CUSTOMER]
    assert len(frauds) > 0
    fraud_mean = frauds.groupby("CUSTOMER_ID")["TX_AMOUNT"].mean()
    usual_mean = medium[medium["TX_FRAUD"] == 0].groupby("CUSTOMER_ID")["TX_AMOUNT"].mean()
    assert (fraud_mean > usual_mean.reindex(fraud_mean.index)).mean() > 0.8


def test_progress_counts_the_days() -> None:
    seen: list[int] = []
    simulate(SMALL, progress=seen.append)
    assert seen == list(range(1, SMALL.days + 1))


def test_customer_without_terminals_buys_nothing() -> None:
    frame = simulate(SimulationConfig(customers=200, terminals=5, days=5, radius=1.0))
    assert frame["CUSTOMER_ID"].nunique() < 20


def test_card_testing_only_from_its_day_and_at_night(drifting: pd.DataFrame) -> None:
    testing = drifting[drifting["TX_FRAUD_SCENARIO"] == FraudScenario.CARD_TESTING]
    assert len(testing) > 0
    assert (testing["TX_TIME_DAYS"] >= 20).all()
    assert (testing["TX_DATETIME"].dt.hour < 5).all()
    assert testing["TX_AMOUNT"].between(1, 5).all()
    assert (testing["TX_FRAUD"] == 1).all()


def test_card_testing_adds_to_the_unmodified_process(drifting: pd.DataFrame) -> None:
    plain = simulate(SimulationConfig(customers=500, terminals=1000, days=30))
    usual = drifting[drifting["TX_FRAUD_SCENARIO"] != FraudScenario.CARD_TESTING]
    columns = ["TX_DATETIME", "CUSTOMER_ID", "TERMINAL_ID", "TX_AMOUNT", "TX_FRAUD_SCENARIO"]
    pd.testing.assert_frame_equal(
        usual[columns].reset_index(drop=True), plain[columns].reset_index(drop=True)
    )


def test_card_testing_is_deterministic() -> None:
    config = SimulationConfig(customers=50, terminals=100, days=10, new_pattern_day=5)
    pd.testing.assert_frame_equal(simulate(config), simulate(config))


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"customers": 0}, "customers"),
        ({"terminals": -1}, "terminals"),
        ({"days": 0}, "days"),
        ({"radius": 0.0}, "radius"),
        ({"radius": float("nan")}, "radius"),
        ({"seed": -1}, "seed"),
        ({"new_pattern_day": 10}, "new_pattern_day"),
        ({"new_pattern_day": -1}, "new_pattern_day"),
    ],
)
def test_invalid_config_is_refused(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        replace(SimulationConfig(days=10), **changes)
