"""The composition root of the embedded service: settings in, wired runtime out."""

from __future__ import annotations

from datetime import timedelta

from models.alerting import AlertPolicy, AlertPolicyConfig
from models.detector import DetectorPolicy, FraudDetector
from models.features import FeatureSet, FeatureSpec
from models.learners import OnlineLearner
from models.memory_state import InMemoryFeatureState
from models.state import WindowSpec
from pipelines.alert_log import AlertLog
from pipelines.runtime import EmbeddedRuntime
from pipelines.simulated_feed import FeedConfig, SimulatedFeed
from pipelines.telemetry import Telemetry
from service.settings import Settings


def seconds(value: timedelta) -> int:
    return int(value.total_seconds())


def build_runtime(settings: Settings) -> EmbeddedRuntime:
    """In-memory state, the configured learner and alert policy, an alert log, metrics."""
    windows = WindowSpec(label_delay_seconds=seconds(settings.label_delay))
    features = FeatureSet(FeatureSpec(windows=windows))
    implicit = settings.implicit_legit_after
    detector = FraudDetector(
        features,
        InMemoryFeatureState(windows),
        OnlineLearner(settings.learner, settings.learner_params, seed=settings.seed),
        DetectorPolicy(
            reasons=settings.reasons,
            pending_ttl_seconds=seconds(settings.pending_ttl),
            implicit_legit_after_seconds=None if implicit is None else seconds(implicit),
        ),
        AlertPolicy(
            AlertPolicyConfig(
                threshold=settings.alert_threshold,
                daily_budget=settings.alert_budget,
                cooldown_seconds=seconds(settings.alert_cooldown),
            )
        ),
    )
    return EmbeddedRuntime(
        detector,
        AlertLog(capacity=settings.alert_log_size),
        queue_size=settings.queue_size,
        telemetry=Telemetry(),
    )


def build_feed(settings: Settings, runtime: EmbeddedRuntime) -> SimulatedFeed | None:
    """The simulated traffic, when ``simulate_rate`` asks for it."""
    if settings.simulate_rate <= 0:
        return None
    config = FeedConfig(
        rate=settings.simulate_rate,
        customers=settings.simulate_customers,
        terminals=settings.simulate_terminals,
        history_days=settings.simulate_history_days,
        seed=settings.seed,
    )
    return SimulatedFeed(runtime, config, seconds(settings.label_delay))
