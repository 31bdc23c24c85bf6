"""The statistics of the drift alarm, on plain arrays: no state, no time, no I/O.

Two measures compare a recent window of scored transactions with a reference window:

- the population stability index (PSI) of each feature and of the score, over quantile bins of
  the reference window: how far each one's marginal distribution moved;
- the surprise of cells: every combination of ``ways`` binned features makes cells, and a cell
  holding far more distinct cards in the recent window than the reference window's share of
  cards predicts is surprising. A new pattern too small to move any marginal (a few dozen
  transactions among thousands) can still crowd a cell that was nearly empty. Cards are counted
  once per cell, not transactions, so one busy card does not make a cell look new; the upper
  tail is Poisson, and the p-value is corrected for the number of cells tested (Bonferroni).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.special import gammainc

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]

_CARD_SPACE = 1 << 32

PSI_FLOOR = 1e-4
"""Share given to an empty bin, so a bin empty on one side gives a large, finite PSI."""


def quantile_edges(values: npt.ArrayLike, quantiles: Sequence[float]) -> Floats:
    """The distinct inner bin edges of ``values`` at ``quantiles`` (fewer when values repeat).

    >>> quantile_edges([0.0, 0.0, 0.0, 1.0, 2.0], [0.25, 0.5, 0.75])
    array([0., 1.])
    """
    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        return np.empty(0)
    return np.unique(np.quantile(data, quantiles))


def bin_index(values: npt.ArrayLike, edges: Floats) -> Ints:
    """Each value's bin: 0 below the first edge, ``len(edges)`` at or above the last.

    >>> bin_index([0.0, 1.0, 1.5, 2.0], np.array([1.0, 2.0])).tolist()
    [0, 1, 1, 2]
    """
    return np.searchsorted(edges, np.asarray(values, dtype=np.float64), side="right").astype(
        np.int64
    )


def psi(reference: npt.ArrayLike, recent: npt.ArrayLike) -> float:
    """Population stability index of two histograms over the same bins.

    ``sum((recent share - reference share) * ln(recent share / reference share))``, shares
    floored at `PSI_FLOOR`; 0 for identical shares, NaN when either side is empty. The usual
    reading: below 0.1 stable, 0.1 to 0.25 a moderate shift, above 0.25 a large one.

    >>> round(psi([50, 50], [50, 50]), 6), round(psi([90, 10], [50, 50]), 3)
    (0.0, 0.879)
    """
    ref = np.asarray(reference, dtype=np.float64)
    rec = np.asarray(recent, dtype=np.float64)
    if ref.sum() <= 0 or rec.sum() <= 0:
        return float("nan")
    p = np.maximum(ref / ref.sum(), PSI_FLOOR)
    q = np.maximum(rec / rec.sum(), PSI_FLOOR)
    return float(np.sum((q - p) * np.log(q / p)))


def poisson_upper_log10(observed: Floats, expected: Floats) -> Floats:
    """``-log10 P(X >= observed)`` for X Poisson with mean ``expected`` (0 where observed is 0).

    >>> poisson_upper_log10(np.array([0.0, 1.0]), np.array([1.0, 1.0])).round(4).tolist()
    [0.0, 0.1992]
    """
    tail = np.ones_like(observed, dtype=np.float64)
    positive = observed > 0
    # P(X >= k) is the regularised lower incomplete gamma function P(k, mean).
    tail[positive] = gammainc(observed[positive], expected[positive])
    # 0 - x rather than -x: a certain tail gives 0.0, not -0.0.
    return 0.0 - np.log10(np.maximum(tail, np.finfo(np.float64).tiny))


@dataclass(frozen=True)
class Cell:
    """One cell of binned features and how surprising its recent count of cards is."""

    features: tuple[str, ...]
    bins: tuple[int, ...]
    """Each feature's bin: 0 is below the reference's first quantile edge."""
    lower: tuple[float, ...]
    """Each feature's lower bin edge (-inf for the first bin)."""
    upper: tuple[float, ...]
    """Each feature's upper bin edge, excluded (inf for the last bin)."""
    cards: int
    """Distinct cards in the cell over the recent window."""
    expected: float
    """Cards the reference window's share predicts for the recent window's card count."""
    surprise: float
    """``-log10`` of the Bonferroni-corrected p-value: above 0 is beyond chance at p = 0.1
    over all cells together, above 2 at p = 0.001."""


def cell_surprises(
    names: Sequence[str],
    edges: Sequence[Floats],
    reference: Ints,
    reference_cards: Ints,
    recent: Ints,
    recent_cards: Ints,
    *,
    ways: int,
    min_cards: int,
    top: int,
) -> list[Cell]:
    """The ``top`` most surprising cells, most surprising first.

    ``reference`` and ``recent`` hold the bin of each feature (columns, in ``names`` order)
    for each transaction (rows); ``*_cards`` the card of each row as an integer key. A cell's
    expected card count is ``(reference cards in it + 1) / reference cards in all cells *
    recent cards in all cells``, counted per combination of features (each card once per cell;
    the reference window's rows may span several days, each card-day counts once). Cells with
    fewer than ``min_cards`` recent cards are not reported.
    """
    sizes = [len(edge) + 1 for edge in edges]
    combos = list(itertools.combinations(range(len(names)), ways))
    n_cells = sum(int(np.prod([sizes[i] for i in combo])) for combo in combos)
    if n_cells == 0 or recent.shape[0] == 0 or reference.shape[0] == 0:
        return []
    correction = np.log10(n_cells)
    ref_total = _distinct(reference_cards)
    recent_total = _distinct(recent_cards)
    found: list[tuple[float, tuple[int, ...], tuple[int, ...], int, float]] = []
    for combo in combos:
        width = int(np.prod([sizes[i] for i in combo]))
        ref_counts = _cards_per_cell(reference, reference_cards, combo, sizes, width)
        recent_counts = _cards_per_cell(recent, recent_cards, combo, sizes, width)
        expected = (ref_counts + 1.0) / ref_total * recent_total
        surprise = poisson_upper_log10(recent_counts, expected) - correction
        surprise[recent_counts < min_cards] = -np.inf
        for flat in np.argsort(surprise)[::-1][:top]:
            if not np.isfinite(surprise[flat]):
                break
            bins = np.unravel_index(int(flat), [sizes[i] for i in combo])
            found.append(
                (
                    float(surprise[flat]),
                    combo,
                    tuple(int(b) for b in bins),
                    int(recent_counts[flat]),
                    float(expected[flat]),
                )
            )
    found.sort(key=lambda item: item[0], reverse=True)
    return [_cell(names, edges, *item) for item in found[:top]]


def _distinct(cards: Ints) -> float:
    return float(max(len(np.unique(cards)), 1))


def _cards_per_cell(
    bins: Ints, cards: Ints, combo: tuple[int, ...], sizes: Sequence[int], width: int
) -> Floats:
    """Distinct cards in each cell of ``combo`` (flat, C order of the features' bins)."""
    flat = np.zeros(bins.shape[0], dtype=np.int64)
    for i in combo:
        flat = flat * sizes[i] + bins[:, i]
    # One key per (cell, card): a card counts once in a cell however often it paid there.
    # Cards are kept on 32 bits: two cards colliding in one cell only undercount it by one.
    keys = np.unique(flat * _CARD_SPACE + (cards & (_CARD_SPACE - 1)))
    return np.bincount(keys // _CARD_SPACE, minlength=width).astype(np.float64)


def _cell(
    names: Sequence[str],
    edges: Sequence[Floats],
    surprise: float,
    combo: tuple[int, ...],
    bins: tuple[int, ...],
    cards: int,
    expected: float,
) -> Cell:
    lower = tuple(
        float(edges[i][b - 1]) if b > 0 else -np.inf for i, b in zip(combo, bins, strict=True)
    )
    upper = tuple(
        float(edges[i][b]) if b < len(edges[i]) else np.inf
        for i, b in zip(combo, bins, strict=True)
    )
    return Cell(tuple(names[i] for i in combo), bins, lower, upper, cards, expected, surprise)
