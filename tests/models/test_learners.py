"""Every named learner builds, scores, learns, pickles, and passes river's own checks."""

from __future__ import annotations

import math
import pickle
import random

import pytest
from river import checks

from models.explain import ReasonCode, strongest
from models.learners import RECIPES, LearnerError, OnlineLearner


def _train(learner: OnlineLearner, rows: int = 600, seed: int = 0) -> None:
    """Fraud is a large amount; the other feature is noise."""
    rng = random.Random(seed)
    for _ in range(rows):
        amount = rng.uniform(1, 400)
        learner.learn({"amount": amount, "noise": rng.random()}, is_fraud=amount > 220)


@pytest.mark.parametrize("name", list(RECIPES))
def test_river_conformance_checks_pass(name: str) -> None:
    checks.check_estimator(OnlineLearner(name).model)


@pytest.mark.parametrize("name", list(RECIPES))
def test_learner_scores_probabilities_and_learns_the_pattern(name: str) -> None:
    learner = OnlineLearner(name)
    assert learner.score({"amount": 10.0, "noise": 0.5}) == pytest.approx(
        learner.score({"amount": 390.0, "noise": 0.5})
    )
    _train(learner)
    low = learner.score({"amount": 20.0, "noise": 0.5})
    high = learner.score({"amount": 380.0, "noise": 0.5})
    assert 0.0 <= low < high <= 1.0
    assert learner.labels_learned == 600


@pytest.mark.parametrize("name", list(RECIPES))
def test_learner_survives_pickling_with_identical_scores(name: str) -> None:
    learner = OnlineLearner(name, seed=3)
    _train(learner, rows=200)
    copy = pickle.loads(pickle.dumps(learner))
    vector = {"amount": 250.0, "noise": 0.1}
    assert copy.score_and_explain(vector) == learner.score_and_explain(vector)


@pytest.mark.parametrize("name", list(RECIPES))
def test_reasons_name_the_feature_that_drives_fraud(name: str) -> None:
    learner = OnlineLearner(name)
    _train(learner, rows=2_000)
    score, reasons = learner.score_and_explain({"amount": 390.0, "noise": 0.5})
    assert score == learner.score({"amount": 390.0, "noise": 0.5})
    assert reasons, "a high score must come with a reason"
    assert reasons[0].feature == "amount"
    assert reasons[0].value == 390.0
    assert all(reason.contribution > 0 for reason in reasons)


@pytest.mark.parametrize("name", list(RECIPES))
def test_asking_for_no_reasons_changes_no_score(name: str) -> None:
    learner = OnlineLearner(name)
    _train(learner, rows=300)
    vector = {"amount": 300.0, "noise": 0.2}
    score, reasons = learner.score_and_explain(vector, top=0)
    assert reasons == ()
    assert score == learner.score_and_explain(vector, top=3)[0]


def test_linear_contributions_are_exact_shares_of_the_log_odds() -> None:
    learner = OnlineLearner("logistic")
    _train(learner)
    vector = {"amount": 300.0, "noise": 0.9}
    score, reasons = learner.score_and_explain(vector, top=2)
    model = learner.model["model"]
    scaled = learner.model["scale"].transform_one(vector)
    log_odds = math.log(score / (1 - score))
    pushes = {name: model.weights[name] * value for name, value in scaled.items()}
    assert log_odds == pytest.approx(model.intercept + sum(pushes.values()))
    for reason in reasons:
        assert reason.contribution == pytest.approx(pushes[reason.feature])


def test_linear_one_pass_score_equals_rivers_own_prediction() -> None:
    learner = OnlineLearner("logistic")
    _train(learner, rows=1_000)
    rng = random.Random(7)
    for _ in range(200):
        vector = {"amount": rng.uniform(1, 400), "noise": rng.random()}
        river_score = learner.model.predict_proba_one(vector)[True]
        assert learner.score(vector) == pytest.approx(river_score, rel=1e-12, abs=1e-15)


def test_class_weight_raises_fraud_scores() -> None:
    plain, weighted = OnlineLearner("logistic"), OnlineLearner("logistic", {"positive_weight": 20})
    _train(plain)
    _train(weighted)
    vector = {"amount": 230.0, "noise": 0.5}
    assert weighted.score(vector) > plain.score(vector)


def test_unknown_learner_is_refused_with_the_choices() -> None:
    with pytest.raises(LearnerError, match="choose one of: logistic, binned, forest"):
        OnlineLearner("svm")


@pytest.mark.parametrize("name", list(RECIPES))
def test_unknown_parameter_is_refused(name: str) -> None:
    with pytest.raises(LearnerError, match="bogus"):
        OnlineLearner(name, {"bogus": 1})


def test_linear_learning_step_by_step_equals_the_pipelines_own() -> None:
    stepwise, reference = OnlineLearner("logistic"), OnlineLearner("logistic")
    rng = random.Random(11)
    for _ in range(500):
        vector = {"amount": rng.uniform(1, 400), "noise": rng.random(), "count": rng.randint(0, 9)}
        is_fraud = vector["amount"] > 300
        stepwise.learn(vector, is_fraud)
        reference.model.learn_one(vector, is_fraud)
    assert stepwise.model["model"].weights == reference.model["model"].weights
    assert stepwise.model["model"].intercept == reference.model["model"].intercept
    assert stepwise.model["scale"].counts == reference.model["scale"].counts
    assert stepwise.model["scale"].means == reference.model["scale"].means
    assert stepwise.model["scale"].vars == reference.model["scale"].vars
    assert stepwise.labels_learned == 500


def test_equal_pushes_keep_the_order_of_the_features() -> None:
    names = ["a", "b", "c", "d", "e", "f"]
    pushes = [0.5, 2.0, 0.5, -1.0, 2.0, 0.5]
    features = {name: float(index) for index, name in enumerate(names)}
    order = sorted(range(len(pushes)), key=pushes.__getitem__, reverse=True)
    for top in range(len(names) + 2):
        expected = tuple(
            ReasonCode(names[i], features[names[i]], pushes[i])
            for i in order[:top]
            if pushes[i] > 0
        )
        assert strongest(names, pushes, features, top) == expected
    assert [reason.feature for reason in strongest(names, pushes, features, 4)] == [
        "b",
        "e",
        "a",
        "c",
    ]
    assert strongest(names, [0.0, -1.0, 0.0, 0.0, -0.5, 0.0], features, 3) == ()


@pytest.mark.parametrize("name", ["logistic", "hoeffding"])
def test_learning_a_kept_vector_equals_learning_its_dict(name: str) -> None:
    from_dict, from_kept = OnlineLearner(name), OnlineLearner(name)
    rng = random.Random(5)
    names = ("amount", "noise", "count")
    for _ in range(300):
        values = (rng.uniform(1, 400), rng.random(), float(rng.randint(0, 9)))
        is_fraud = values[0] > 300
        from_dict.learn(dict(zip(names, values, strict=True)), is_fraud)
        from_kept.learn_kept(names, values, is_fraud)
    probe = {"amount": 320.0, "noise": 0.2, "count": 3.0}
    assert from_kept.score(probe) == from_dict.score(probe)
    assert (from_kept.labels_learned, from_kept.frauds_learned) == (
        from_dict.labels_learned,
        from_dict.frauds_learned,
    )


@pytest.mark.parametrize("name", ["logistic", "hoeffding"])
def test_a_kept_vector_of_another_length_is_refused_before_learning(name: str) -> None:
    learner = OnlineLearner(name)
    learner.learn_kept(("amount", "noise"), (120.0, 0.5), is_fraud=False)
    before = pickle.dumps(learner.model)
    with pytest.raises(ValueError, match="3 values for 2 features"):
        learner.learn_kept(("amount", "noise"), (300.0, 0.1, 7.0), is_fraud=True)
    assert pickle.dumps(learner.model) == before
    assert learner.labels_learned == 1
