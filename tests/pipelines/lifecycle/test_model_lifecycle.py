"""The promotion policy: a clearly better challenger is shown better on matured labels and
promoted; a merely different one is not."""

from __future__ import annotations

from pathlib import Path

from models.detector import CHAMPION, FraudDetector
from models.features import FeatureSet, FeatureSpec
from models.learners import OnlineLearner
from models.memory_state import InMemoryFeatureState
from models.replay import replay
from models.simulator import SimulationConfig, simulate
from models.state import DAY
from pipelines.lifecycle.model_lifecycle import LifecyclePolicy, ModelLifecycle
from pipelines.lifecycle.registry import ModelRegistry
from pipelines.lifecycle.registry_index import FileIndex
from pipelines.offline.datasets import dataset_from_frame

KEY = b"a-test-secret"


def _lifecycle(tmp_path: Path, champion: OnlineLearner, policy: LifecyclePolicy) -> ModelLifecycle:
    features = FeatureSet(FeatureSpec())
    detector = FraudDetector(features, InMemoryFeatureState(features.spec.windows), champion)
    registry = ModelRegistry(tmp_path, FileIndex(tmp_path / "index.json"), KEY)
    lifecycle = ModelLifecycle(detector, registry, KEY, policy=policy)
    lifecycle.resume()
    return lifecycle


def test_a_clearly_better_challenger_is_shown_better_and_promoted(tmp_path: Path) -> None:
    # A champion that barely learns (a learning rate a thousand times too small) against the
    # default learner, both judged on the same labels, revealed a week late.
    policy = LifecyclePolicy(auto_promote=True, promote_min_labels=2_000, promote_margin=0.05)
    lifecycle = _lifecycle(tmp_path, OnlineLearner("logistic", {"learning_rate": 1e-5}), policy)
    challenger = lifecycle.add_challenger(OnlineLearner("logistic"))
    data = dataset_from_frame(simulate(SimulationConfig(customers=800, terminals=500, days=45)))
    detector = lifecycle.detector
    replay(data.transactions, data.is_fraud, detector, 7 * DAY)

    threshold = detector.alerting.threshold
    champion = detector.quality[CHAMPION].figures(threshold)
    contender = detector.quality[challenger].figures(threshold)
    assert champion.matured == contender.matured >= 2_000
    assert contender.average_precision > champion.average_precision + 0.05
    assert contender.card_precision_at_k > champion.card_precision_at_k

    assert lifecycle.promote_if_better() == challenger
    assert detector.challengers == {}
    assert detector.learner.params["learning_rate"] == 0.01
    assert detector.quality[CHAMPION].figures(threshold) == contender  # its record came along
    registry = lifecycle.registry
    champion_version = registry.champion()
    assert champion_version is not None
    assert registry.record(champion_version).parent == challenger
    assert detector.model_version == f"{champion_version}+0"
    [event] = [event for event in registry.events() if event["event"] == "auto-promoted"]
    assert event["version"] == challenger
    assert "rolling AP" in event["detail"]


def test_no_promotion_without_enough_matured_labels_or_a_real_margin(tmp_path: Path) -> None:
    policy = LifecyclePolicy(auto_promote=True, promote_min_labels=2_000, promote_margin=0.05)
    lifecycle = _lifecycle(tmp_path, OnlineLearner("logistic"), policy)
    twin = lifecycle.add_challenger(OnlineLearner("logistic", {"learning_rate": 0.011}))
    data = dataset_from_frame(simulate(SimulationConfig(customers=800, terminals=500, days=45)))
    replay(data.transactions[:3_000], data.is_fraud[:3_000], lifecycle.detector, 7 * DAY)
    assert lifecycle.promote_if_better() is None  # too few matured labels yet
    replay(data.transactions[3_000:], data.is_fraud[3_000:], lifecycle.detector, 7 * DAY)
    assert lifecycle.promote_if_better() is None  # a near twin is no clear gain
    assert twin in lifecycle.detector.challengers
