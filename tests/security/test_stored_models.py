"""Where models are stored (the registry on disk, the model published in Redis), a gadget signed
with the deployment's key and recorded as a model is refused when loaded, and builds nothing."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis

from models.detector import FraudDetector, ServingModels
from models.features import FeatureSet, FeatureSpec
from models.learners import OnlineLearner
from models.memory_state import InMemoryFeatureState
from models.model_record import NewModel
from pipelines.lifecycle.model_channel import ModelChannel, ModelFollower
from pipelines.lifecycle.model_lifecycle import ModelLifecycle, import_artefact
from pipelines.lifecycle.registry import ModelRegistry, TamperedArtefactError
from pipelines.lifecycle.registry_index import FileIndex
from tests.security.gadgets import file_gadgets, signed

KEY = b"a-deployment-key-of-at-least-32-bytes"


def _left_in(loot: Path) -> list[str]:
    time.sleep(0.3)  # time for a spawned process to have acted, had one been spawned
    return sorted(path.name for path in loot.iterdir())


def _lifecycle(directory: Path) -> ModelLifecycle:
    features = FeatureSet(FeatureSpec())
    detector = FraudDetector(
        features, InMemoryFeatureState(features.spec.windows), OnlineLearner("logistic")
    )
    registry = ModelRegistry(directory, FileIndex(directory / "index.json"), KEY)
    return ModelLifecycle(detector, registry, KEY)


def test_a_registered_gadget_is_refused_when_promoted_and_logged(tmp_path: Path) -> None:
    loot, models = tmp_path / "loot", tmp_path / "models"
    loot.mkdir()
    models.mkdir()
    lifecycle = _lifecycle(models)
    lifecycle.snapshot("start")
    champion = lifecycle.registry.champion()
    schema = lifecycle.detector.features.schema_version
    planted = []
    for payload in file_gadgets(loot).values():
        # Someone who can write the data directory and holds the key records it properly.
        record = lifecycle.registry.register(
            signed(payload, KEY),
            NewModel(
                kind="online",
                learner="logistic",
                params={},
                feature_schema=schema,
                labels_learned=0,
                frauds_learned=0,
                code_version="0.1.0",
                seed=0,
                reason="planted",
            ),
        )
        planted.append(record.version)
    for version in planted:
        with pytest.raises(TamperedArtefactError, match="refused to load"):
            lifecycle.promote(version)
    assert _left_in(loot) == []
    assert lifecycle.registry.champion() == champion
    refused = {
        e["version"] for e in lifecycle.registry.events(limit=1_000) if e["event"] == "refused"
    }
    assert refused == set(planted)


def test_an_imported_gadget_is_refused_before_it_is_registered(tmp_path: Path) -> None:
    loot, models = tmp_path / "loot", tmp_path / "models"
    loot.mkdir()
    models.mkdir()
    registry = ModelRegistry(models, FileIndex(models / "index.json"), KEY)
    schema = FeatureSet(FeatureSpec()).schema_version
    for payload in file_gadgets(loot).values():
        with pytest.raises(TamperedArtefactError, match="refused to load"):
            import_artefact(registry, KEY, schema, signed(payload, KEY), schema)
    assert _left_in(loot) == []
    assert registry.records() == []


def test_a_gadget_published_in_redis_is_refused_by_every_scorer(
    tmp_path: Path, redis_url: str
) -> None:
    loot = tmp_path / "loot"
    loot.mkdir()
    with redis.Redis.from_url(redis_url) as client:
        channel = ModelChannel(client, prefix="security:", secret_key=KEY)
        channel.publish(ServingModels(OnlineLearner("logistic")))
        follower = ModelFollower(channel, poll_seconds=0)
        served = follower.newer(force=True)
        assert served is not None
        for name, payload in file_gadgets(loot).items():
            client.set("security:model:snapshot", signed(payload, KEY))
            client.set("security:model:version", f"planted {name}")
            assert follower.newer(force=True) is None, name  # refused: the scorer keeps its own
            client.set("security:model:quality", signed(payload, KEY))
            with pytest.raises(ValueError, match="refused to load"):
                channel.quality()
        client.delete("security:model:snapshot", "security:model:version", "security:model:quality")
    assert _left_in(loot) == []
