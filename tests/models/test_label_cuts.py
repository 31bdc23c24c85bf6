"""Supervised cut points: edges where the warm-up's labels say the fraud rate changes."""

from __future__ import annotations

import doctest
import random

from models import label_cuts as module
from models.label_cuts import MIN_PAYMENTS_PER_SIDE, label_cuts


def test_docstring_examples_run() -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0
    assert result.failed == 0


def test_a_threshold_rule_gets_a_cut_between_its_two_sides() -> None:
    rng = random.Random(0)
    amounts = [rng.uniform(0, 400) for _ in range(5_000)]
    frauds = [amount > 287.0 for amount in amounts]
    cuts = label_cuts(amounts, frauds, most=3)
    below = max(a for a, fraud in zip(amounts, frauds, strict=True) if not fraud)
    above = min(a for a, fraud in zip(amounts, frauds, strict=True) if fraud)
    assert any(below < cut < above for cut in cuts)


def test_no_more_cuts_than_asked_and_none_without_both_classes() -> None:
    rng = random.Random(1)
    values = [rng.uniform(0, 100) for _ in range(5_000)]
    # Fraud in five separate bands: a tree would split many times if allowed.
    banded = [int(value) % 20 == 0 for value in values]
    assert 0 < len(label_cuts(values, banded, most=2)) <= 2
    assert label_cuts(values, banded, most=0) == []
    assert label_cuts(values, [False] * len(values), most=3) == []
    assert label_cuts(values, [True] * len(values), most=3) == []


def test_a_lone_outlier_gets_no_bin_of_its_own() -> None:
    values = [float(value) for value in range(1_000)]
    frauds = [False] * 999 + [True]  # the single largest value
    for cut in label_cuts(values, frauds, most=3):
        above = sum(value > cut for value in values)
        assert MIN_PAYMENTS_PER_SIDE <= above <= len(values) - MIN_PAYMENTS_PER_SIDE
