"""The blend of the online and batch scores: never worse, where it was chosen, than either."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

from models import blend as blend_module
from models.blend import BLENDS, EITHER, RecentBlend, best_blend, blend
from models.metrics import average_precision


def test_docstring_examples_run() -> None:
    result = doctest.testmod(blend_module)
    assert result.attempted > 0
    assert result.failed == 0


@pytest.mark.parametrize("seed", range(5))
def test_the_chosen_blend_is_at_least_as_good_as_the_better_model(seed: int) -> None:
    rng = np.random.default_rng(seed)
    is_fraud = rng.random(3_000) < 0.05
    # Each model sees a different half of the signal.
    kind = rng.integers(0, 2, 3_000)
    online = 1 / (1 + np.exp(-(rng.normal(-3, 1, 3_000) + 2.5 * is_fraud * (kind == 0))))
    batch = 1 / (1 + np.exp(-(rng.normal(-3, 1, 3_000) + 2.5 * is_fraud * (kind == 1) + 0.5)))

    chosen = best_blend(is_fraud, online, batch)

    assert chosen in BLENDS
    served = average_precision(is_fraud, blend(online, batch, chosen))
    assert served >= max(average_precision(is_fraud, online), average_precision(is_fraud, batch))
    assert chosen not in (0.0, 1.0)


def test_a_weight_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        blend([0.5], [0.5], 1.5)


def _labels(
    rng: np.random.Generator, count: int, online_signal: float, batch_signal: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels scored by two parts that separate the frauds with the given strengths."""
    is_fraud = rng.random(count) < 0.05
    online = 1 / (1 + np.exp(-(rng.normal(-3, 1, count) + online_signal * is_fraud)))
    batch = 1 / (1 + np.exp(-(rng.normal(-3, 1, count) + batch_signal * is_fraud)))
    return online, batch, is_fraud


def test_the_recent_blend_picks_the_online_part_when_it_ranks_the_recent_labels_better() -> None:
    online, batch, is_fraud = _labels(np.random.default_rng(0), 2_000, 4.0, 0.5)
    recent = RecentBlend(window_seconds=1_000, every_seconds=100, min_frauds=10, chosen=1.0)

    recent.add(np.arange(2_000) // 4, online, batch, is_fraud)

    assert recent.choose(500) == 0.0
    assert recent.chosen == 0.0


def test_the_recent_blend_picks_the_batch_part_when_it_ranks_the_recent_labels_better() -> None:
    online, batch, is_fraud = _labels(np.random.default_rng(1), 2_000, 0.5, 4.0)
    recent = RecentBlend(window_seconds=1_000, every_seconds=100, min_frauds=10, chosen=0.0)

    recent.add(np.arange(2_000) // 4, online, batch, is_fraud)

    assert recent.choose(500) == 1.0


def test_the_recent_blend_follows_the_newest_labels_once_the_old_leave_the_window() -> None:
    rng = np.random.default_rng(2)
    recent = RecentBlend(window_seconds=1_000, every_seconds=500, min_frauds=10)
    # The batch part ranks the older labels; then a pattern only the online part knows.
    recent.add(np.arange(0, 1_000), *_labels(rng, 1_000, 0.0, 4.0))
    assert recent.choose(1_000) == 1.0
    recent.add(np.arange(1_000, 1_500), *_labels(rng, 500, 4.0, 0.0))

    assert not recent.due(1_499)
    assert recent.due(1_500)
    # The window holds both patterns, each ranked by one part: either part's suspicion.
    assert recent.choose(1_500) == EITHER
    recent.add(np.arange(1_500, 2_000), *_labels(rng, 500, 4.0, 0.0))
    assert recent.choose(2_500) == 0.0  # the old labels have left the window
    assert recent.labels == 500


def test_the_recent_blend_is_kept_while_the_window_holds_too_few_frauds() -> None:
    online, batch, is_fraud = _labels(np.random.default_rng(3), 200, 4.0, 0.0)
    frauds = int(is_fraud.sum())
    recent = RecentBlend(window_seconds=1_000, min_frauds=frauds + 1, chosen=0.75)

    recent.add(np.zeros(200), online, batch, is_fraud)

    assert recent.choose(10) == 0.75
    only_legit = RecentBlend(window_seconds=1_000, min_frauds=0, chosen=0.5)
    only_legit.add([1, 2], [0.1, 0.2], [0.3, 0.4], [False, False])
    assert only_legit.choose(10) == 0.5


@pytest.mark.parametrize(
    ("window", "every", "chosen", "message"),
    [(0, 10, 0.5, "positive"), (10, 0, 0.5, "positive"), (10, 10, 2.0, "one of")],
)
def test_a_recent_blend_with_a_bad_setting_is_refused(
    window: int, every: int, chosen: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        RecentBlend(window_seconds=window, every_seconds=every, chosen=chosen)


def test_either_keeps_a_pattern_only_one_part_knows_at_the_top() -> None:
    """Half the frauds only the online learner ranks high (a new pattern), half only the batch
    model: any mean of the log-odds halves each, either keeps both above the legitimate."""
    rng = np.random.default_rng(7)
    count = 4_000
    is_fraud = rng.random(count) < 0.05
    new = is_fraud & (rng.random(count) < 0.5)
    old = is_fraud & ~new
    online = 1 / (1 + np.exp(-(rng.normal(-4, 1, count) + 4.0 * new)))
    batch = 1 / (1 + np.exp(-(rng.normal(-4, 1, count) + 4.0 * old)))

    assert best_blend(is_fraud, online, batch) == EITHER
    either = average_precision(is_fraud, blend(online, batch, EITHER))
    halfway = average_precision(is_fraud, blend(online, batch, 0.5))
    assert either > halfway + 0.1


def test_a_blend_that_is_neither_a_weight_nor_either_is_refused() -> None:
    with pytest.raises(ValueError, match="either"):
        blend([0.5], [0.5], "both")  # type: ignore[arg-type]


def test_the_window_keeps_at_most_its_newest_labels() -> None:
    recent = RecentBlend(max_labels=3, min_frauds=1, chosen=1.0)
    recent.add([0, 1], online=[0.9, 0.1], batch=[0.1, 0.9], is_fraud=[1, 0])
    recent.add([2, 3], online=[0.2, 0.8], batch=[0.8, 0.2], is_fraud=[0, 1])
    assert recent.labels == 3
    assert recent._seconds.tolist() == [1, 2, 3]
    # On the three kept, the online part ranks the fraud first: it is chosen.
    assert recent.choose(3) == 0.0
    with pytest.raises(ValueError, match="positive"):
        RecentBlend(max_labels=0)
