"""Both runtimes implement the one interface the service serves from, member by member."""

from __future__ import annotations

import inspect
from collections.abc import Iterator

import pytest
import redis

from models.detector import FraudDetector
from models.features import FeatureSet, FeatureSpec
from models.learners import OnlineLearner
from models.memory_state import InMemoryFeatureState
from pipelines.lifecycle.model_channel import ModelChannel, ModelFollower
from pipelines.runtime.alert_log import AlertLog
from pipelines.runtime.cluster import ClusterRuntime
from pipelines.runtime.embedded import EmbeddedRuntime
from pipelines.runtime.protocol import Runtime
from pipelines.stream.kafka_clients import KafkaSettings
from pipelines.stream.topics import Topics

MEMBERS = sorted(name for name in vars(Runtime) if not name.startswith("_"))


def _detector() -> FraudDetector:
    features = FeatureSet(FeatureSpec())
    return FraudDetector(
        features, InMemoryFeatureState(features.spec.windows), OnlineLearner("logistic")
    )


def _typed(embedded: EmbeddedRuntime, cluster: ClusterRuntime) -> tuple[Runtime, Runtime]:
    """mypy --strict checks this assignment: each class matches the Protocol's types."""
    return embedded, cluster


@pytest.fixture
def runtimes() -> Iterator[tuple[Runtime, Runtime]]:
    # Built, never started: nothing here connects to Redis or Kafka.
    client = redis.Redis.from_url("redis://127.0.0.1:9/0")
    follower = ModelFollower(ModelChannel(client, prefix="test:", secret_key=b"k" * 32))
    cluster = ClusterRuntime(
        _detector(),
        AlertLog(),
        kafka=KafkaSettings("127.0.0.1:9"),
        topics=Topics(),
        client=client,
        follower=follower,
    )
    yield _typed(EmbeddedRuntime(_detector(), AlertLog()), cluster)
    client.close()


def test_the_protocol_names_what_the_service_uses() -> None:
    assert {"ready", "score_request", "accept", "take_labels", "local_jobs"} <= set(MEMBERS)
    assert "submit" not in MEMBERS  # the embedded queue's `enqueue` is no part of it


def test_both_runtimes_are_runtimes(runtimes: tuple[Runtime, Runtime]) -> None:
    for runtime in runtimes:
        assert isinstance(runtime, Runtime)
        assert not runtime.ready  # not started


@pytest.mark.parametrize("name", MEMBERS)
def test_each_member_has_the_protocols_shape_in_both(
    runtimes: tuple[Runtime, Runtime], name: str
) -> None:
    declared = vars(Runtime)[name]
    for runtime in runtimes:
        implemented = inspect.getattr_static(type(runtime), name, None)
        if isinstance(declared, property):
            # A property, or a plain attribute set in __init__.
            assert implemented is None or isinstance(implemented, property), name
            assert hasattr(runtime, name), name
            continue
        is_async = inspect.iscoroutinefunction(declared)
        assert inspect.iscoroutinefunction(implemented) == is_async, name
        expected = list(inspect.signature(declared).parameters)
        assert list(inspect.signature(implemented).parameters) == expected, name


def test_only_the_embedded_runtime_keeps_the_models_clock_and_runs_jobs_here(
    runtimes: tuple[Runtime, Runtime],
) -> None:
    embedded, cluster = runtimes
    assert embedded.local_jobs is None  # none configured in this bare runtime
    assert cluster.local_jobs is None
    for runtime in runtimes:
        loops = runtime.background_tasks()
        try:
            assert "quality-sampler" in loops
            assert "model-lifecycle" not in loops  # neither holds a ModelLifecycle here
        finally:
            for loop in loops.values():
                loop.close()


def test_the_threshold_in_force_is_the_one_the_dashboard_draws(
    runtimes: tuple[Runtime, Runtime],
) -> None:
    embedded, _ = runtimes  # the cluster's dashboard reads Redis, which this fixture lacks
    assert embedded.alert_threshold() == embedded.dashboard().threshold == 0.5
