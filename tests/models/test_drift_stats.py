"""The drift statistics against independent computations (pandas, scipy.stats)."""

from __future__ import annotations

import itertools
import math
from typing import cast

import numpy as np
import pandas as pd
import pytest
from scipy.stats import poisson

from models.drift_stats import (
    bin_index,
    cell_surprises,
    poisson_upper_log10,
    psi,
    quantile_edges,
)


def test_psi_equals_the_textbook_sum_over_bins() -> None:
    reference, recent = [120, 300, 80, 0], [100, 250, 150, 20]
    p = [max(count / sum(reference), 1e-4) for count in reference]
    q = [max(count / sum(recent), 1e-4) for count in recent]
    expected = sum((b - a) * math.log(b / a) for a, b in zip(p, q, strict=True))
    assert psi(reference, recent) == pytest.approx(expected)
    assert psi(reference, reference) == 0.0
    assert math.isnan(psi([0, 0], [1, 2]))


def test_poisson_tail_equals_scipy() -> None:
    observed = np.array([0.0, 1.0, 3.0, 10.0, 40.0])
    expected = np.array([2.0, 0.5, 3.0, 1.5, 4.0])
    want = -np.log10(poisson.sf(observed - 1, expected))
    assert poisson_upper_log10(observed, expected) == pytest.approx(want, rel=1e-9)


def test_bins_follow_the_reference_quantiles() -> None:
    values = np.arange(100, dtype=np.float64)
    edges = quantile_edges(values, [0.25, 0.5, 0.75])
    assert edges.tolist() == pytest.approx(np.quantile(values, [0.25, 0.5, 0.75]).tolist())
    counts = np.bincount(bin_index(values, edges))
    assert counts.tolist() == [25, 25, 25, 25]


def test_cell_surprises_equal_a_pandas_count_of_distinct_cards() -> None:
    rng = np.random.default_rng(3)
    names = ["a", "b", "c"]
    reference = rng.integers(0, 3, size=(2_000, 3))
    reference_cards = rng.integers(0, 1_200, size=2_000)
    recent = rng.integers(0, 3, size=(500, 3))
    recent_cards = rng.integers(0, 300, size=500)
    # A crowd of new cards in one cell of (a, c), each paying there several times.
    crowd = np.repeat(np.arange(1_000, 1_040), 4)
    crowded = np.column_stack(
        [np.full(len(crowd), 2), rng.integers(0, 3, size=len(crowd)), np.zeros(len(crowd), int)]
    )
    recent = np.vstack([recent, crowded])
    recent_cards = np.concatenate([recent_cards, crowd])
    edges = [np.array([1.0, 2.0])] * 3

    cells = cell_surprises(
        names,
        edges,
        reference,
        reference_cards,
        recent,
        recent_cards,
        ways=2,
        min_cards=3,
        top=3,
    )

    ref = pd.DataFrame(reference, columns=names).assign(card=reference_cards)
    rec = pd.DataFrame(recent, columns=names).assign(card=recent_cards)
    n_cells = 3 * 9
    scored = []
    for x, y in itertools.combinations(names, 2):
        ref_cards = ref.groupby([x, y])["card"].nunique()
        rec_cards = rec.groupby([x, y])["card"].nunique()
        for key, cards in rec_cards.items():
            i, j = cast(tuple[int, int], key)
            mean = (ref_cards.get((i, j), 0) + 1) / ref["card"].nunique() * rec["card"].nunique()
            surprise = -np.log10(poisson.sf(cards - 1, mean)) - np.log10(n_cells)
            scored.append((surprise, (x, y), (i, j), cards, mean))
    scored.sort(reverse=True)
    best = scored[0]
    assert cells[0].features == best[1]
    assert cells[0].bins == best[2]
    assert cells[0].cards == best[3]
    assert cells[0].expected == pytest.approx(best[4])
    assert cells[0].surprise == pytest.approx(best[0])
    # The crowd's cells come first, past chance.
    assert cells[0].bins[-1] == 0
    assert cells[0].surprise > 0
    edges_of = dict(zip(names, edges, strict=True))
    for feature, bin_, low, high in zip(
        cells[0].features, cells[0].bins, cells[0].lower, cells[0].upper, strict=True
    ):
        bounds = [-np.inf, *edges_of[feature], np.inf]
        assert (low, high) == (bounds[bin_], bounds[bin_ + 1])
    assert [cell.surprise for cell in cells] == pytest.approx([s[0] for s in scored[:3]])
