"""The restricted unpickler loads everything the service saves: every learner recipe trained,
the batch models, the published models and a real saved embedded state."""

from __future__ import annotations

import io
import pickle
from datetime import UTC
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from models.alerting import AlertPolicy, AlertPolicyConfig
from models.batch_model import ALGORITHMS, BatchSpec, train_batch
from models.detector import DetectorPolicy, FraudDetector
from models.features import FeatureSet, FeatureSpec
from models.learners import RECIPES, OnlineLearner
from models.memory_state import InMemoryFeatureState
from models.pending import PendingVectors
from models.replay import replay
from models.safe_pickle import RestrictedUnpickler, restricted_loads
from models.schemas import Transaction
from models.simulator import SimulationConfig, simulate
from pipelines.lifecycle.model_lifecycle import ModelLifecycle
from pipelines.lifecycle.registry import ModelRegistry
from pipelines.lifecycle.registry_index import FileIndex

KEY = b"a-key-of-at-least-thirty-two-bytes"


class _Tracing(RestrictedUnpickler):
    """The restricted unpickler, noting every global it was asked for."""

    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file)
        self.asked: set[str] = set()

    def find_class(self, module: str, name: str) -> Any:
        self.asked.add(f"{module}.{name}")
        return super().find_class(module, name)


def _round_trip(value: object) -> tuple[Any, set[str]]:
    blob = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    unpickler = _Tracing(io.BytesIO(blob))
    again = unpickler.load()
    assert type(again) is type(value)
    return again, unpickler.asked


@pytest.fixture(scope="module")
def stream() -> tuple[list[Transaction], list[bool]]:
    frame = simulate(SimulationConfig(customers=100, terminals=200, days=20, seed=1))
    columns = zip(
        frame["TRANSACTION_ID"].tolist(),
        frame["TX_DATETIME"].dt.tz_localize(UTC).tolist(),
        frame["CUSTOMER_ID"].tolist(),
        frame["TERMINAL_ID"].tolist(),
        frame["TX_AMOUNT"].tolist(),
        strict=True,
    )
    transactions = [
        Transaction(
            transaction_id=str(tx_id),
            timestamp=moment.to_pydatetime(),
            card_id=f"c{customer}",
            terminal_id=f"p{terminal}",
            amount=float(amount),
            currency="EUR",
        )
        for tx_id, moment, customer, terminal, amount in columns
    ]
    return transactions, frame.TX_FRAUD.astype(bool).tolist()


def _trained(name: str, stream: tuple[list[Transaction], list[bool]]) -> FraudDetector:
    features = FeatureSet(FeatureSpec())
    detector = FraudDetector(
        features,
        InMemoryFeatureState(features.spec.windows),
        # Fewer trees than the recipe's ten: the same classes, a shorter test.
        OnlineLearner(name, {"n_models": 3} if name == "forest" else None, seed=3),
        DetectorPolicy(implicit_legit_after_seconds=3 * 86_400),
        AlertPolicy(AlertPolicyConfig(threshold=0.3, daily_budget=5, cooldown_seconds=3_600)),
    )
    detector.add_challenger("shadow", OnlineLearner("logistic"))
    replay(*stream, detector, label_delay_seconds=86_400)
    return detector


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_trained_recipe_and_its_serving_state_load(
    name: str, stream: tuple[list[Transaction], list[bool]]
) -> None:
    detector = _trained(name, stream)
    vectors = [{"amount": amount, "card_tx_count_1d": 3.0} for amount in (5.0, 80.0, 900.0)]
    learner, asked = _round_trip(detector.learner)
    assert [learner.score(v) for v in vectors] == [detector.learner.score(v) for v in vectors]
    assert learner.labels_learned == detector.learner.labels_learned > 0
    if name in {"forest", "hoeffding"}:
        assert any("Branch" in global_ for global_ in asked), "the trees never split"
    serving, _ = _round_trip(detector.serving())
    assert serving.challengers.keys() == {"shadow"}
    saved, _ = _round_trip(detector.export_state("m000001"))
    assert isinstance(detector.pending, PendingVectors)
    assert len(saved.pending) == len(detector.pending) > 0
    quality = {slot: rolling.figures(0.5) for slot, rolling in detector.quality.items()}
    assert _round_trip(quality)[0] == quality


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_the_batch_models_load(algorithm: str) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2_000, 3))
    y = x[:, 0] + 0.3 * rng.normal(size=2_000) > 1.5
    params = {"max_iter": 20} if algorithm == "hgb" else {}  # fewer boosting rounds: quicker
    spec = BatchSpec(algorithm, params, min_labels=10)  # type: ignore[arg-type]
    model = train_batch(x, y, ["a", "b", "c"], spec)
    again, asked = _round_trip(model)
    assert np.array_equal(again.predict_many(x), model.predict_many(x))
    if algorithm == "logistic":  # plain weights: no scikit-learn class to trust
        assert not any(name.startswith("sklearn") for name in asked), asked


def test_a_real_saved_embedded_state_resumes(
    tmp_path: Path, stream: tuple[list[Transaction], list[bool]]
) -> None:
    detector = _trained("logistic", stream)
    models = tmp_path / "models"
    models.mkdir()
    state = tmp_path / "state.snapshot"
    saving = ModelLifecycle(
        detector,
        ModelRegistry(models, FileIndex(models / "index.json"), KEY),
        KEY,
        state_path=state,
    )
    saving.snapshot("test")
    fresh = _trained_nothing()
    resuming = ModelLifecycle(
        fresh, ModelRegistry(models, FileIndex(models / "index.json"), KEY), KEY, state_path=state
    )
    assert resuming.resume()
    assert fresh.challengers.keys() == detector.challengers.keys()
    assert isinstance(fresh.pending, PendingVectors)
    assert isinstance(detector.pending, PendingVectors)
    assert len(fresh.pending) == len(detector.pending) > 0
    again = stream[0][-1].model_copy(update={"transaction_id": "again"})
    assert fresh.score(again).score == detector.score(again).score


def _trained_nothing() -> FraudDetector:
    features = FeatureSet(FeatureSpec())
    return FraudDetector(
        features, InMemoryFeatureState(features.spec.windows), OnlineLearner("logistic")
    )


def test_plain_data_loads() -> None:
    value = {"a": [1, 2.5, "x", (True, None)], "b": frozenset({3}), "c": range(3)}
    assert restricted_loads(pickle.dumps(value)) == value
