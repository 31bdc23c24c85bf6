"""The runtime's metrics, read from its own registry without HTTP."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from models.detector import DetectorPolicy, FraudDetector
from models.features import FeatureSet, FeatureSpec
from models.learners import OnlineLearner
from models.memory_state import InMemoryFeatureState
from pipelines.runtime.alert_log import AlertLog
from pipelines.runtime.embedded import EmbeddedRuntime
from pipelines.telemetry import LATENCY_BUCKETS, Telemetry
from tests.builders import make_tx

HOUR = 3_600


def runtime(policy: DetectorPolicy | None = None) -> EmbeddedRuntime:
    features = FeatureSet(FeatureSpec())
    detector = FraudDetector(
        features, InMemoryFeatureState(features.spec.windows), OnlineLearner("logistic"), policy
    )
    return EmbeddedRuntime(detector, AlertLog(), telemetry=Telemetry())


def samples(telemetry: Telemetry) -> dict[str, float]:
    """Unlabelled samples by name (enough for the series these tests read)."""
    text = generate_latest(telemetry.registry).decode()
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.labels
    }


def test_consumer_lag_is_the_queue_backlog_read_at_scrape_time() -> None:
    subject = runtime()  # not started: nothing consumes the queue
    subject.enqueue([make_tx(index) for index in range(3)])
    assert samples(subject.telemetry)["fraudstream_consumer_lag"] == 3


def test_implicit_legitimate_labels_are_counted_as_learned() -> None:
    policy = DetectorPolicy(implicit_legit_after_seconds=HOUR, pending_ttl_seconds=10 * HOUR)
    subject = runtime(policy)
    subject.score([make_tx(1)])
    subject.score([make_tx(2, hours=2)])  # event time moves past the first one's maturity
    assert subject.detector.learner.labels_learned == 1
    assert samples(subject.telemetry)["fraudstream_labels_learned_total"] == 1


def test_one_latency_observation_per_call_per_transaction() -> None:
    subject = runtime()
    subject.score([make_tx(index, card=f"c{index}") for index in range(10)])
    series = samples(subject.telemetry)
    assert series["fraudstream_scoring_latency_seconds_count"] == 1
    assert series["fraudstream_transactions_scored_total"] == 10
    # Divided by the batch: a river score is far below the top bucket.
    assert series["fraudstream_scoring_latency_seconds_sum"] < LATENCY_BUCKETS[-1]
