"""The binned logistic learner: nonlinear per feature, exact reasons, frozen edges."""

from __future__ import annotations

import doctest
import math
import pickle
import random

import pytest

from models import binned
from models.binned import BinnedLogisticRegression
from models.binned_records import UNSEEN
from models.learners import OnlineLearner
from models.safe_pickle import restricted_loads


def _two_sided(model: BinnedLogisticRegression, rows: int, seed: int = 0) -> None:
    """Fraud at both ends of the amount range; ``noise`` carries nothing."""
    rng = random.Random(seed)
    for _ in range(rows):
        amount = rng.uniform(0, 400)
        model.learn_one({"amount": amount, "noise": rng.random()}, amount < 20 or amount > 380)


def test_docstring_examples_run() -> None:
    result = doctest.testmod(binned)
    assert result.attempted > 0
    assert result.failed == 0


def test_both_ends_of_a_feature_are_ranked_above_its_middle() -> None:
    model = BinnedLogisticRegression(learning_rate=0.1, warm_up=1_000)
    _two_sided(model, 20_000)
    score = {a: model.predict_proba_one({"amount": a, "noise": 0.5})[True] for a in (3, 200, 397)}
    assert score[3] > 5 * score[200]
    assert score[397] > 5 * score[200]


def test_a_new_pattern_is_learned_without_forgetting_the_old_one() -> None:
    """Large amounts were fraud; then tiny ones become fraud too. A weight on the amount alone
    must give one up; the bins keep both."""
    rng = random.Random(3)
    model = OnlineLearner("binned", {"warm_up": 2_000, "learning_rate": 0.1})
    for step in range(40_000):
        amount = rng.uniform(0, 400)
        new_pattern = step >= 10_000 and amount < 20
        model.learn({"amount": amount}, amount > 380 or new_pattern)
    middle = model.score({"amount": 200.0})
    assert model.score({"amount": 390.0}) > 5 * middle
    assert model.score({"amount": 5.0}) > 5 * middle


def test_edges_are_set_by_the_warm_up_and_then_frozen() -> None:
    model = BinnedLogisticRegression(warm_up=100, quantiles=(0.25, 0.5, 0.75))
    for value in range(100):
        model.learn_one({"amount": float(value), "flag": float(value % 2)}, value > 90)
    edges = model.edges
    assert edges["amount"] == pytest.approx([24.75, 49.5, 74.25])
    assert edges["flag"] == [0.0, 0.5, 1.0]
    for value in range(1_000, 2_000):
        model.learn_one({"amount": float(value), "late": 1.0}, False)
    assert model.edges == edges
    assert "late" not in model.edges
    assert {name for name in model.weights if "#" in name} <= {
        f"{feature}#{index}" for feature in ("amount", "flag") for index in range(4)
    }


def test_reasons_are_exact_shares_of_the_log_odds() -> None:
    model = BinnedLogisticRegression(learning_rate=0.1, warm_up=500)
    _two_sided(model, 5_000)
    vector = {"amount": 395.0, "noise": 0.3}
    probability, reasons = model.score_and_explain(vector, top=2)
    saved = model.__getstate__()
    weights, means, edges = saved["_weights"], saved["_means"], saved["_edges"]

    def term(name: str, value: float) -> float:
        scaled = (value - means[name]) / math.sqrt(saved["_variances"][name])
        index = sum(edge <= value for edge in edges[name])
        return float(weights.get(name, 0.0) * scaled + weights.get(f"{name}#{index}", 0.0))

    pushes = {name: term(name, value) - term(name, means[name]) for name, value in vector.items()}
    average = model.intercept + sum(term(name, means[name]) for name in vector)
    assert math.log(probability / (1 - probability)) == pytest.approx(
        average + sum(pushes.values())
    )
    assert reasons[0].feature == "amount"
    for reason in reasons:
        assert reason.contribution == pytest.approx(pushes[reason.feature])


def test_reasons_follow_the_means_when_they_move_into_another_bin() -> None:
    model = BinnedLogisticRegression(warm_up=500, crosses=[("amount", "noise")])
    _two_sided(model, 1_000)
    probe = {"amount": 395.0, "noise": 0.3}
    model.score_and_explain(probe, top=2)
    average_bin = model._features["amount"].average_bin
    # Payments far above the old mean drag it across several of the amount's edges.
    for _ in range(3_000):
        model.learn_one({"amount": 390.0, "noise": 0.5}, False)
    assert not model._placed
    model.score_and_explain(probe, top=2)
    assert model._features["amount"].average_bin != average_bin
    reread = pickle.loads(pickle.dumps(model))
    assert not reread._placed
    assert model.explain_log_odds(probe) == reread.explain_log_odds(probe)


def test_learning_a_kept_vector_equals_learning_its_dict_and_survives_pickling() -> None:
    from_dict, from_kept = (
        OnlineLearner("binned", {"warm_up": 50}),
        OnlineLearner("binned", {"warm_up": 50}),
    )
    rng = random.Random(5)
    names = ("amount", "noise")
    for _ in range(400):
        values = (rng.uniform(0, 400), rng.random())
        from_dict.learn(dict(zip(names, values, strict=True)), values[0] > 300)
        from_kept.learn_kept(names, values, values[0] > 300)
    probe = {"amount": 320.0, "noise": 0.2}
    assert from_kept.score_and_explain(probe) == from_dict.score_and_explain(probe)
    copy = pickle.loads(pickle.dumps(from_kept))
    assert copy.score_and_explain(probe) == from_kept.score_and_explain(probe)


def test_unseen_features_are_ignored_when_scoring() -> None:
    model = BinnedLogisticRegression(warm_up=10)
    _two_sided(model, 100)
    known = model.predict_proba_one({"amount": 390.0, "noise": 0.5})[True]
    assert model.predict_proba_one({"amount": 390.0, "noise": 0.5, "new": 7.0})[True] == known


def test_a_vector_without_a_crossed_feature_is_scored_and_explained() -> None:
    model = BinnedLogisticRegression(warm_up=50, crosses=[("amount", "noise")])
    _two_sided(model, 500)
    assert any("&" in name for name in model.weights)
    probability, reasons = model.score_and_explain({"amount": 395.0}, top=2)
    assert 0.0 < probability < 1.0
    assert [reason.feature for reason in reasons] == ["amount"]


def test_a_vectors_order_of_features_does_not_change_its_reasons() -> None:
    model = BinnedLogisticRegression(warm_up=50, crosses=[("amount", "noise")])
    rng = random.Random(3)
    for _ in range(500):
        amount = rng.uniform(0, 400)
        model.learn_one(
            {"amount": amount, "noise": rng.random(), "other": rng.random()}, amount > 380
        )
    vector = {"amount": 395.0, "noise": 0.9, "other": 0.5}
    reordered = {"other": 0.5, "noise": 0.9, "amount": 395.0}
    _, pushes = model.explain_log_odds(vector)
    _, reordered_pushes = model.explain_log_odds(reordered)
    assert reordered_pushes == pushes[::-1]
    assert model.explain_log_odds(vector)[1] == pushes


def test_an_adaptive_step_divides_by_the_weights_own_summed_squares() -> None:
    """Two labels before the warm-up ends: the intercept and each standardised weight move by
    the learning rate times the gradient over the root of the floor plus its squares."""
    model = BinnedLogisticRegression(learning_rate=0.5, warm_up=100, adaptive=True)
    model.learn_one({"amount": 10.0}, True)
    first = -0.5  # the log loss's gradient at log-odds 0 for a fraud
    assert model.intercept == pytest.approx(-0.5 * first / math.sqrt(0.01 + first**2))
    log_odds = model.intercept  # the amount's weight is still 0: its variance was 0 so far
    model.learn_one({"amount": 30.0}, False)
    second = 1 / (1 + math.exp(-log_odds))
    squares = first**2 + second**2
    assert model.intercept == pytest.approx(log_odds - 0.5 * second / math.sqrt(0.01 + squares))
    scaled = (30.0 - 20.0) / 10.0  # the running mean and standard deviation of 10 and 30
    assert model.weights["amount"] == pytest.approx(
        -0.5 * second * scaled / math.sqrt(0.01 + (second * scaled) ** 2)
    )


@pytest.mark.parametrize("adaptive", [True, False])
def test_a_bins_weight_steps_by_its_gradient_and_penalty(adaptive: bool) -> None:
    """After the warm-up, a constant amount has no standardised value, only its bin: the
    log-odds is the intercept plus that bin's weight, and each label steps the weight by the
    gradient plus the penalty (over the root of its squares when adaptive)."""
    rate, penalty, floor = 0.5, 0.1, 0.01
    model = BinnedLogisticRegression(learning_rate=rate, l2=penalty, warm_up=5, adaptive=adaptive)
    for index in range(5):
        model.learn_one({"amount": 10.0}, index % 2 == 0)
    assert model.edges == {"amount": [10.0]}
    squares = 0.0
    for _ in range(2):
        old = model.weights.get("amount#1", 0.0)
        gradient = 1 / (1 + math.exp(-(model.intercept + old))) - 1  # a fraud
        model.learn_one({"amount": 10.0}, True)
        step = gradient + penalty * old
        squares += step * step
        moved = rate * step / math.sqrt(floor + squares) if adaptive else rate * step
        assert model.weights["amount#1"] == pytest.approx(old - moved)
    assert old != 0.0  # the second step had a penalty to add


def _rise_of_a_new_pattern(model: BinnedLogisticRegression) -> tuple[float, float]:
    """Large amounts are fraud for 30,000 labels; then tiny amounts turn fraud, 15 of them among
    1,500 payments. Returns how far a tiny amount's log-odds rose over those, and how many times
    a large amount's score then still is a middling one's."""
    rng = random.Random(11)
    for _ in range(30_000):
        amount = rng.uniform(0, 400)
        model.learn_one({"amount": amount}, amount > 380)

    def log_odds(amount: float) -> float:
        probability = model.predict_proba_one({"amount": amount})[True]
        return math.log(probability / (1 - probability))

    before = log_odds(1.0)
    for step in range(1_500):
        fraud = step % 100 == 0
        amount = rng.uniform(0, 2) if fraud else rng.uniform(0, 400)
        model.learn_one({"amount": amount}, fraud or amount > 380)
    return log_odds(1.0) - before, math.exp(log_odds(390.0) - log_odds(200.0))


def test_adaptive_steps_learn_a_new_pattern_from_its_first_frauds_and_keep_the_old() -> None:
    """The tiny amounts' bin has had only legitimate payments' small gradients, so its first
    frauds move it far; plain steps at the rate that suits them barely move it."""
    adaptive_rise, adaptive_odds = _rise_of_a_new_pattern(
        BinnedLogisticRegression(learning_rate=0.5, adaptive=True)
    )
    plain_rise, plain_odds = _rise_of_a_new_pattern(BinnedLogisticRegression(learning_rate=0.01))
    assert adaptive_rise > 3 * plain_rise > 0
    assert adaptive_odds > 5
    assert plain_odds > 5


def test_a_model_saved_before_adaptive_steps_and_label_cuts_learns_as_it_did() -> None:
    saved, fresh = BinnedLogisticRegression(warm_up=50), BinnedLogisticRegression(warm_up=50)
    _two_sided(saved, 200)
    _two_sided(fresh, 200)
    state = pickle.loads(pickle.dumps(saved)).__getstate__()
    for added in (
        "adaptive",
        "_squares",
        "_intercept_squares",
        "label_cuts",
        "_warming_labels",
        "warm_up_frauds",
        "_frauds_seen",
    ):
        del state[added]
    old = BinnedLogisticRegression.__new__(BinnedLogisticRegression)
    old.__setstate__(state)
    _two_sided(old, 300, seed=1)
    _two_sided(fresh, 300, seed=1)
    assert old.weights == fresh.weights
    assert old.intercept == fresh.intercept


def test_an_adaptive_model_loads_safely_and_goes_on_learning_the_same() -> None:
    model = BinnedLogisticRegression(learning_rate=0.5, warm_up=50, adaptive=True)
    _two_sided(model, 500)
    copy = restricted_loads(pickle.dumps(model))
    assert isinstance(copy, BinnedLogisticRegression)
    _two_sided(model, 300, seed=2)
    _two_sided(copy, 300, seed=2)
    probe = {"amount": 390.0, "noise": 0.5}
    assert copy.predict_proba_one(probe) == model.predict_proba_one(probe)
    assert copy.__getstate__()["_squares"] == model.__getstate__()["_squares"]


def _amount_rule(model: BinnedLogisticRegression, rows: int) -> None:
    """Every amount above 310 is fraud: a threshold the median edge does not land on."""
    rng = random.Random(4)
    for _ in range(rows):
        amount = rng.uniform(0, 400)
        model.learn_one({"amount": amount}, amount > 310)


def test_label_cuts_add_an_edge_where_the_fraud_starts() -> None:
    median = (0.5,)
    plain = BinnedLogisticRegression(learning_rate=0.5, warm_up=2_000, quantiles=median)
    cut = BinnedLogisticRegression(learning_rate=0.5, warm_up=2_000, quantiles=median, label_cuts=3)
    for model in (plain, cut):
        _amount_rule(model, 20_000)
    assert len(plain.edges["amount"]) == 1
    assert any(305 < edge < 315 for edge in cut.edges["amount"])

    def gap(model: BinnedLogisticRegression) -> float:
        """How far the rule's frauds stand above the legitimate amounts just below it."""
        fraud = model.log_odds({"amount": 330.0})
        legitimate = model.log_odds({"amount": 300.0})
        return fraud - legitimate

    assert gap(cut) > 1.5 * gap(plain) > 0


def test_a_model_saved_while_warming_without_labels_freezes_on_quantiles() -> None:
    model = BinnedLogisticRegression(warm_up=100, quantiles=(0.5,), label_cuts=3)
    for value in range(50):
        model.learn_one({"amount": float(value)}, value > 45)
    state = pickle.loads(pickle.dumps(model)).__getstate__()
    del state["_warming_labels"]  # saved before the labels were kept
    old = BinnedLogisticRegression.__new__(BinnedLogisticRegression)
    old.__setstate__(state)
    for value in range(50, 100):
        old.learn_one({"amount": float(value)}, value > 95)
    assert old.edges["amount"] == [49.5]


@pytest.mark.parametrize("wrong", [-1, 2.5, "3", True])
@pytest.mark.parametrize("name", ["label_cuts", "warm_up_frauds"])
def test_counts_must_be_whole_numbers_not_below_zero(name: str, wrong: object) -> None:
    with pytest.raises(ValueError, match=name):
        BinnedLogisticRegression(**{name: wrong})  # type: ignore[arg-type]


def _rare_large_frauds(model: BinnedLogisticRegression, rows: int, every: int) -> None:
    """Amounts from 0 to 400; every ``every``-th payment above 310 is fraud, the rest
    legitimate: a slow start of the fraud that sits above the rule."""
    rng = random.Random(5)
    large = 0
    for _ in range(rows):
        amount = rng.uniform(0, 400)
        if amount > 310:
            large += 1
        model.learn_one({"amount": amount}, amount > 310 and large % every == 0)


def test_the_warm_up_waits_for_its_frauds_before_setting_edges() -> None:
    model = BinnedLogisticRegression(warm_up=1_000, quantiles=(0.5,), warm_up_frauds=40)
    _rare_large_frauds(model, 1_000, every=10)  # about 22 frauds
    assert model.edges == {}
    _rare_large_frauds(model, 1_000, every=10)
    assert model._frauds_seen >= 40
    assert list(model.edges) == ["amount"]


def test_the_warm_up_ends_at_its_limit_without_the_frauds() -> None:
    model = BinnedLogisticRegression(warm_up=100, quantiles=(0.5,), warm_up_frauds=1_000)
    _rare_large_frauds(model, 100 * binned.WARM_UP_LIMIT - 1, every=10)
    assert model.edges == {}
    _rare_large_frauds(model, 1, every=10)
    assert list(model.edges) == ["amount"]


def test_waiting_for_frauds_puts_the_cut_nearer_where_the_fraud_starts() -> None:
    """A fifth of the amounts above 310 are fraud: a hundred values hold a handful of frauds,
    and the cut nearest the rule lands wherever they happen to fall."""

    def miss(warm_up_frauds: int, seed: int) -> float:
        model = BinnedLogisticRegression(
            warm_up=100, quantiles=(0.5,), label_cuts=3, warm_up_frauds=warm_up_frauds
        )
        rng = random.Random(seed)
        while not model.edges:
            amount = rng.uniform(0, 400)
            model.learn_one({"amount": amount}, amount > 310 and rng.random() < 0.2)
        return min(abs(edge - 310) for edge in model.edges["amount"])

    seeds = range(8)
    assert sum(miss(40, seed) for seed in seeds) < sum(miss(0, seed) for seed in seeds) / 4


def _gaps(model: BinnedLogisticRegression, rows: int, seed: int = 0) -> None:
    """Seconds since the card's previous payment: hours as a rule, the 30-day cap now and then;
    a fraud rate that rises with the amount and falls a little with the gap."""
    rng = random.Random(seed)
    for _ in range(rows):
        gap = 2_592_000.0 if rng.random() < 0.002 else rng.expovariate(1 / 20_000)
        amount = rng.uniform(0, 400)
        fraud = rng.random() < (0.6 if amount > 350 else 0.02) * (1.5 if gap < 2_000 else 1.0)
        model.learn_one({"amount": amount, "gap": gap}, fraud)


def test_a_long_tailed_feature_on_a_log_scale_does_not_veto_the_others() -> None:
    plain = BinnedLogisticRegression(learning_rate=0.5, warm_up=2_000, adaptive=True)
    logged = BinnedLogisticRegression(
        learning_rate=0.5, warm_up=2_000, adaptive=True, log_scaled=("gap",)
    )
    _gaps(plain, 30_000)
    _gaps(logged, 30_000)
    first_in_a_month = {"amount": 380.0, "gap": 2_592_000.0}
    _, (_, plain_push) = plain.explain_log_odds(first_in_a_month)
    _, (_, logged_push) = logged.explain_log_odds(first_in_a_month)
    # About 25 standard deviations out on the plain scale, 4 on the log scale.
    assert abs(plain_push) > 3 * abs(logged_push)
    assert logged.predict_proba_one(first_in_a_month)[True] > 0.3
    assert logged.centres()["gap"] == pytest.approx(
        math.expm1(logged.__getstate__()["_means"]["gap"])
    )


def test_pushes_on_a_log_scale_still_sum_to_the_log_odds() -> None:
    model = BinnedLogisticRegression(
        learning_rate=0.5,
        warm_up=2_000,
        adaptive=True,
        crosses=[("amount", "gap")],
        log_scaled=("gap",),
    )
    _gaps(model, 10_000)
    centres = model.centres()
    for vector in ({"amount": 380.0, "gap": 2_592_000.0}, {"amount": 12.0, "gap": 90.0}):
        log_odds, pushes = model.explain_log_odds(vector)
        assert log_odds == pytest.approx(model.log_odds(centres) + sum(pushes))


def test_a_model_saved_before_log_scales_learns_as_it_did() -> None:
    saved, fresh = BinnedLogisticRegression(warm_up=50), BinnedLogisticRegression(warm_up=50)
    _gaps(saved, 200)
    _gaps(fresh, 200)
    state = pickle.loads(pickle.dumps(saved)).__getstate__()
    del state["log_scaled"]
    old = BinnedLogisticRegression.__new__(BinnedLogisticRegression)
    old.__setstate__(state)
    _gaps(old, 300, seed=1)
    _gaps(fresh, 300, seed=1)
    assert old.weights == fresh.weights
    assert old.log_odds({"amount": 5.0, "gap": 2_592_000.0}) == fresh.log_odds(
        {"amount": 5.0, "gap": 2_592_000.0}
    )


def test_the_default_recipe_puts_the_seconds_since_the_previous_payment_on_a_log_scale() -> None:
    model = OnlineLearner("binned").model
    assert isinstance(model, BinnedLogisticRegression)
    assert model.log_scaled == ("card_seconds_since_previous",)
    restored = restricted_loads(pickle.dumps(model))
    assert isinstance(restored, BinnedLogisticRegression)
    assert restored.log_scaled == model.log_scaled


def test_a_feature_first_met_when_scoring_counts_once_it_is_learned() -> None:
    """A vector's plan marks a name never learned as unseen; learning the name gives it a
    record, and the next score of the same order of names uses it."""
    model = BinnedLogisticRegression(warm_up=50)
    _two_sided(model, 200)
    probe = {"amount": 200.0, "noise": 0.5, "late": 9.0}
    unseen = model.score_and_explain(probe, top=3)
    assert unseen == model.score_and_explain({"amount": 200.0, "noise": 0.5}, top=3)
    rng = random.Random(4)
    for _ in range(300):
        late = rng.uniform(0, 10)
        model.learn_one({"amount": 200.0, "noise": rng.random(), "late": late}, late > 8)
    probability, reasons = model.score_and_explain(probe, top=3)
    assert probability > unseen[0]
    assert reasons[0].feature == "late"
    assert UNSEEN.count == 0
    assert UNSEEN.scale is None


def test_a_saved_model_is_plain_tables_by_weight_name() -> None:
    """What a snapshot holds is readable names and numbers, the layout every saved model has
    had: no record of the running model is pickled."""
    model = BinnedLogisticRegression(warm_up=50, crosses=[("amount", "noise")], adaptive=True)
    _two_sided(model, 500)
    state = model.__getstate__()
    assert not {"_features", "_crosses", "_plan", "_placed"} & set(state)
    assert state["_weights"]["amount#0"] == model.weights["amount#0"]
    assert set(state["_squares"]) == set(state["_weights"])
    [(first, second, cells)] = state["_cross_names"]
    assert (first, second) == ("amount", "noise")
    assert cells[1][2] == "amount&noise#1,2"
    assert all(
        type(value) in (int, float, bool, str, tuple, list, dict, type(None))
        for value in state.values()
    )
