"""The blend of the online and batch scores: never worse, where it was chosen, than either."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

from models import blend as blend_module
from models.blend import BLEND_WEIGHTS, best_weight, blend
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

    weight = best_weight(is_fraud, online, batch)

    assert weight in BLEND_WEIGHTS
    chosen = average_precision(is_fraud, blend(online, batch, weight))
    assert chosen >= max(average_precision(is_fraud, online), average_precision(is_fraud, batch))
    assert 0.0 < weight < 1.0


def test_a_weight_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        blend([0.5], [0.5], 1.5)
