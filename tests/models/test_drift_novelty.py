"""Card-day novelty: profiles against a pandas group-by, the count and p-value against a
direct computation, and the mechanism on synthetic card-days."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import poisson
from sklearn.ensemble import IsolationForest

from models.drift_novelty import (
    card_day_profiles,
    novelty,
    profile_columns,
    profiled_features,
)

NAMES = ["amount", "is_night", "card_seconds_since_previous"]


def _payments(rng: np.random.Generator, cards: int, days: int) -> tuple[np.ndarray, np.ndarray]:
    """Ordinary payments: a few a card-day, some at night, amounts of tens of euros."""
    per_card_day = rng.poisson(1.5, cards * days) + 1
    n = int(per_card_day.sum())
    rows = np.column_stack(
        [
            rng.gamma(2.0, 20.0, n).round(2),
            (rng.random(n) < 0.2).astype(float),
            rng.exponential(30_000.0, n).round(),
        ]
    )
    return rows, np.repeat(np.arange(cards * days, dtype=np.int64), per_card_day)


def _tested(rng: np.random.Generator, cards: int, first_key: int) -> tuple[np.ndarray, np.ndarray]:
    """Cards tested: seven payments of one or two euros each, all at night, minutes apart."""
    n = cards * 7
    rows = np.column_stack(
        [rng.uniform(1.0, 2.0, n).round(2), np.ones(n), rng.integers(60, 600, n).astype(float)]
    )
    return rows, np.repeat(np.arange(first_key, first_key + cards, dtype=np.int64), 7)


def test_profiles_are_each_card_days_count_minimum_and_sum() -> None:
    rng = np.random.default_rng(0)
    rows, cards = _payments(rng, 50, 2)
    shuffled = rng.permutation(len(cards))
    profiles = card_day_profiles(rows[shuffled], cards[shuffled])

    frame = pd.DataFrame(rows, columns=NAMES).assign(card=cards)
    grouped = frame.groupby("card")
    expected = pd.concat(
        [grouped.size().rename("transactions")]
        + [
            grouped[name].agg(["min", "sum"]).set_axis([f"{name}_min", f"{name}_sum"], axis=1)
            for name in NAMES
        ],
        axis=1,
    )
    assert list(expected.columns) == profile_columns(NAMES)
    np.testing.assert_allclose(profiles, expected.to_numpy(dtype=float))
    assert card_day_profiles(np.empty((0, 3)), np.empty(0, dtype=np.int64)).shape == (0, 7)


def test_window_aggregates_are_left_out_of_the_profile() -> None:
    names = ["amount", "card_tx_count_1d", "card_avg_amount_30d", "terminal_tx_count_7d"]
    assert profiled_features([*names, "card_amount_to_avg_30d"]) == (
        "amount",
        "card_amount_to_avg_30d",
    )


def test_the_count_and_its_surprise_match_a_direct_computation() -> None:
    rng = np.random.default_rng(1)
    reference = card_day_profiles(*_payments(rng, 1_000, 4))
    rows, cards = _payments(rng, 1_000, 1)
    tested_rows, tested_cards = _tested(rng, 4, 10_000)
    recent = card_day_profiles(
        np.vstack([rows, tested_rows]), np.concatenate([cards, tested_cards])
    )
    found = novelty(reference, recent, quantile_tail=1e-3, trees=100, seed=3)

    ordered = reference[np.lexsort(reference.T[::-1])]
    scaled = np.sign(ordered) * np.log1p(np.abs(ordered))
    forest = IsolationForest(n_estimators=100, random_state=3).fit(scaled)
    threshold = np.quantile(-forest.score_samples(scaled), 1 - 1e-3)
    today = -forest.score_samples(np.sign(recent) * np.log1p(np.abs(recent)))
    novel = int((today > threshold).sum())
    assert (found.card_days, found.novel) == (len(recent), novel)
    assert found.expected == pytest.approx(1e-3 * len(recent))
    assert found.surprise == pytest.approx(-np.log10(poisson.sf(novel - 1, found.expected)))


def test_a_few_cards_unlike_any_of_the_reference_are_surprising_and_ordinary_days_not() -> None:
    rng = np.random.default_rng(2)
    reference = card_day_profiles(*_payments(rng, 1_500, 7))
    quiet = [card_day_profiles(*_payments(rng, 1_500, 1)) for _ in range(3)]
    rows, cards = _payments(rng, 1_500, 1)
    tested_rows, tested_cards = _tested(rng, 5, 10_000)
    tested = card_day_profiles(
        np.vstack([rows, tested_rows]), np.concatenate([cards, tested_cards])
    )
    assert all(novelty(reference, day).surprise < 2.0 for day in quiet)
    found = novelty(reference, tested)
    assert found.novel >= 4
    assert found.surprise > 2.0
    # The same inputs give the same answer, whatever order the card-days come in.
    shuffled = reference[rng.permutation(len(reference))]
    assert novelty(shuffled, tested) == found
    assert novelty(reference[:0], tested).surprise == 0.0
