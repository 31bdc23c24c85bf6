"""The binned learner on top of trees it refits itself: interactions, exact reasons, replays
that do not depend on the machine's speed, and safe saving."""

from __future__ import annotations

import doctest
import math
import pickle
import random

import pytest

from models import boosted
from models.binned import BinnedLogisticRegression
from models.boosted import BoostedBinnedLogisticRegression
from models.learners import OnlineLearner
from models.metrics import average_precision
from models.safe_pickle import restricted_loads


def _vector(rng: random.Random) -> dict[str, float]:
    return {
        "amount": rng.uniform(0, 400),
        "night": float(rng.random() < 0.3),
        "noise": rng.random(),
    }


def _joint(x: dict[str, float]) -> bool:
    """Fraud is a large amount at night or a small one by day: no sum of a term per feature
    ranks that."""
    return x["amount"] > 300 if x["night"] == 1.0 else x["amount"] < 100


def _small_model(**changes: object) -> BoostedBinnedLogisticRegression:
    settings = {"warm_up": 500, "refit_every": 2_000, "install_after": 200, "legit_share": 0.5}
    return BoostedBinnedLogisticRegression(**{**settings, **changes})  # type: ignore[arg-type]


def test_docstring_examples_run() -> None:
    result = doctest.testmod(boosted)
    assert result.attempted > 0
    assert result.failed == 0


def test_a_joint_threshold_is_ranked_far_better_than_by_the_binned_layer_alone() -> None:
    rng = random.Random(2)
    trained = [_vector(rng) for _ in range(6_000)]
    held_out = [_vector(rng) for _ in range(3_000)]
    labels = [_joint(x) for x in held_out]
    with_trees, alone = _small_model(), BinnedLogisticRegression(warm_up=500)
    for x in trained:
        with_trees.learn_one(x, _joint(x))
        alone.learn_one(x, _joint(x))
    assert with_trees.trees_installed == 2
    ours = average_precision(labels, [with_trees.predict_proba_one(x)[True] for x in held_out])
    theirs = average_precision(labels, [alone.predict_proba_one(x)[True] for x in held_out])
    assert ours > 0.9
    assert ours > theirs + 0.1


def test_trees_are_installed_a_fixed_number_of_labels_after_their_refit_starts() -> None:
    model, rng = _small_model(), random.Random(3)
    for _ in range(2_199):
        x = _vector(rng)
        model.learn_one(x, _joint(x))
    assert model.basis is None
    x = _vector(rng)
    model.learn_one(x, _joint(x))
    assert model.basis is not None
    assert model.trees_installed == 1


def test_reasons_are_exact_shares_of_the_log_odds() -> None:
    model, rng = _small_model(), random.Random(4)
    for _ in range(5_000):
        x = _vector(rng)
        model.learn_one(x, _joint(x))
    basis = model.basis
    assert basis is not None
    vector = {"amount": 350.0, "night": 1.0, "noise": 0.4}
    probability, reasons = model.score_and_explain(vector, top=3)
    row = [vector[name] for name in basis.features]
    bias, binned_weight, trees_weight = model._stack
    log_odds = (
        bias + binned_weight * model.binned.log_odds(vector) + trees_weight * basis.margin(row)
    )
    assert math.log(probability / (1 - probability)) == pytest.approx(log_odds)
    binned_pushes = dict(zip(vector, model.binned.explain_log_odds(vector)[1], strict=True))
    shares = basis.contributions(row)
    means = model.binned.__getstate__()["_means"]
    at_mean = basis.contributions([means[name] for name in basis.features])
    expected = {
        name: binned_weight * binned_pushes[name] + trees_weight * (shares[index] - at_mean[index])
        for index, name in enumerate(basis.features)
    }
    assert {reason.feature for reason in reasons[:2]} == {"amount", "night"}
    for reason in reasons:
        assert reason.contribution == pytest.approx(expected[reason.feature])


def test_a_new_pattern_is_learned_between_refits() -> None:
    """A feature that meant nothing starts to mean fraud after the trees were fitted: the
    online layer learns it from its first labels, before any refit sees them."""
    model, rng = _small_model(refit_every=10_000, learning_rate=0.1), random.Random(5)
    for step in range(14_000):
        x = _vector(rng)
        new_pattern = step >= 10_500 and x["noise"] < 0.02
        if step == 10_500:
            before = model.predict_proba_one({"amount": 200.0, "night": 0.0, "noise": 0.01})[True]
        model.learn_one(x, _joint(x) or new_pattern)
    assert model.trees_installed == 1
    after = model.predict_proba_one({"amount": 200.0, "night": 0.0, "noise": 0.01})[True]
    middle = model.predict_proba_one({"amount": 200.0, "night": 0.0, "noise": 0.5})[True]
    assert after > 10 * before
    assert after > 5 * middle
    assert model.predict_proba_one({"amount": 350.0, "night": 1.0, "noise": 0.5})[True] > 0.5


def test_a_model_saved_during_a_refit_loads_safely_and_replays_the_same() -> None:
    model, rng = _small_model(install_after=500), random.Random(6)
    stream = [_vector(rng) for _ in range(3_000)]
    for x in stream[:2_100]:
        model.learn_one(x, _joint(x))
    assert model._fit is not None
    copy = restricted_loads(pickle.dumps(model))
    assert isinstance(copy, BoostedBinnedLogisticRegression)
    for x in stream[2_100:]:
        model.learn_one(x, _joint(x))
        copy.learn_one(x, _joint(x))
    assert copy.trees_installed == model.trees_installed == 1
    probes = stream[:50]
    assert [copy.score_and_explain(x, 3) for x in probes] == [
        model.score_and_explain(x, 3) for x in probes
    ]


def test_learning_a_kept_vector_equals_learning_its_dict() -> None:
    params = {"warm_up": 100, "refit_every": 500, "install_after": 0, "legit_share": 1.0}
    from_dict, from_kept = OnlineLearner("boosted", params), OnlineLearner("boosted", params)
    rng = random.Random(7)
    names = ("amount", "night", "noise")
    for _ in range(1_200):
        x = _vector(rng)
        from_dict.learn(x, _joint(x))
        from_kept.learn_kept(names, [x[name] for name in names], _joint(x))
    probe = {"amount": 320.0, "night": 1.0, "noise": 0.2}
    assert from_kept.score_and_explain(probe) == from_dict.score_and_explain(probe)


def test_a_log_scaled_feature_reaches_the_binned_layer_centred_on_its_scale() -> None:
    model, rng = _small_model(log_scaled=("amount",)), random.Random(7)
    for _ in range(5_000):
        x = _vector(rng)
        model.learn_one(x, _joint(x))
    assert model.binned.log_scaled == ("amount",)
    assert model.trees_installed >= 1
    centre = model.binned.centres()["amount"]
    assert centre == pytest.approx(math.expm1(model.binned.__getstate__()["_means"]["amount"]))
    assert centre < 0.9 * sum(_vector(random.Random(seed))["amount"] for seed in range(400)) / 400
    state = pickle.loads(pickle.dumps(_small_model())).__getstate__()
    del state["log_scaled"]
    old = BoostedBinnedLogisticRegression.__new__(BoostedBinnedLogisticRegression)
    old.__setstate__(state)
    assert old.log_scaled == ()
