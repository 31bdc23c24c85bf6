"""The composition root of the embedded service: settings in, wired runtime out."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from models.alerting import AlertPolicy, AlertPolicyConfig, CooldownBook
from models.detector import DetectorPolicy, FraudDetector
from models.drift import DriftMonitor, DriftPolicy, watched_features
from models.event_time import EventTimeBounds
from models.features import FeatureSet, FeatureSpec
from models.learners import OnlineLearner
from models.memory_state import InMemoryFeatureState
from models.pending import PendingStore
from models.state import FeatureState, WindowSpec
from pipelines.lifecycle.model_lifecycle import LifecyclePolicy, ModelLifecycle
from pipelines.lifecycle.registry import ModelRegistry
from pipelines.lifecycle.registry_index import FileIndex
from pipelines.rules.book import RuleBook, rules_at_start
from pipelines.rules.storage import RULES_FILE, FileRuleStorage
from pipelines.runtime.alert_log import AlertLog
from pipelines.runtime.embedded import EmbeddedRuntime
from pipelines.runtime.simulated_feed import FeedConfig, FeedTarget, SimulatedFeed
from pipelines.telemetry import Telemetry
from service.retraining import offline_store, serving_jobs
from service.settings import Settings
from service.signing import embedded_key


def seconds(value: timedelta) -> int:
    return int(value.total_seconds())


def event_time_bounds(settings: Settings) -> EventTimeBounds:
    """The event times live input may carry, around the service's clock."""
    return EventTimeBounds(settings.max_clock_skew, settings.min_event_time)


def build_detector(
    settings: Settings,
    learner: OnlineLearner | None = None,
    *,
    state: FeatureState | None = None,
    pending: PendingStore | None = None,
    cooldowns: CooldownBook | None = None,
) -> FraudDetector:
    """The detector every role scores with, built from the settings in this one place.

    Embedded mode keeps state, pending vectors and cooldowns in memory (the defaults); the
    distributed roles pass their Redis stores. Implicit legitimate labels come from the
    in-memory pending vectors' maturity queue, so they are an embedded-mode feature.
    """
    windows = WindowSpec(label_delay_seconds=seconds(settings.label_delay))
    implicit = settings.implicit_legit_after if pending is None else None
    detector = FraudDetector(
        FeatureSet(FeatureSpec(windows=windows)),
        state or InMemoryFeatureState(windows, max_cards=settings.max_cards),
        learner or OnlineLearner(settings.learner, settings.learner_params, seed=settings.seed),
        DetectorPolicy(
            reasons=settings.reasons,
            pending_ttl_seconds=seconds(settings.pending_ttl),
            max_pending=settings.max_pending,
            max_corrections=settings.max_label_corrections,
            implicit_legit_after_seconds=None if implicit is None else seconds(implicit),
            quality_window=settings.quality_window,
            quality_k=settings.quality_k,
        ),
        AlertPolicy(
            AlertPolicyConfig(
                threshold=settings.alert_threshold,
                daily_budget=settings.alert_budget,
                cooldown_seconds=seconds(settings.alert_cooldown),
            ),
            cooldowns,
        ),
        pending,
    )
    if settings.drift_watch:
        names = detector.features.names
        detector.drift = DriftMonitor(
            names, drift_policy(settings), watched=watched_features(names)
        )
    return detector


def drift_policy(settings: Settings) -> DriftPolicy:
    return DriftPolicy(
        reference_days=settings.drift_reference_days,
        gap_days=settings.drift_gap_days,
        warmup_days=(
            settings.drift_warmup_days
            if settings.drift_warmup_days is not None
            else WindowSpec().windows_days[-1] + settings.label_delay.days
        ),
        ways=settings.drift_cell_features,
        min_cards=settings.drift_min_cards,
        alarm_surprise=settings.drift_alarm_surprise,
        novelty_surprise=settings.drift_novelty_surprise,
        rows_per_day=settings.drift_rows_per_day,
        seed=settings.seed,
    )


def lifecycle_policy(settings: Settings) -> LifecyclePolicy:
    return LifecyclePolicy(
        snapshot_every_labels=settings.snapshot_every_labels,
        snapshot_every_seconds=settings.snapshot_every.total_seconds(),
        keep_versions=settings.keep_versions,
        auto_promote=settings.auto_promote,
        promote_margin=settings.promote_margin,
        promote_min_labels=settings.promote_min_labels,
    )


def build_runtime(settings: Settings) -> EmbeddedRuntime:
    """The embedded runtime, resumed from the last snapshot under the data directory if any.

    Models live in ``<data dir>/models`` (artefacts and a JSON index); the rest of what
    serving holds is saved beside them as ``state.snapshot`` at every snapshot, and the labels
    acknowledged after it are learned again from the offline store at start-up; the rule sets
    are kept signed in ``rules.json`` beside them. With ``simulate_rate`` set, the simulated
    traffic comes with it.
    """
    detector = build_detector(settings)
    models = settings.data_dir / "models"
    models.mkdir(parents=True, exist_ok=True)
    key = embedded_key(settings)
    offline = offline_store(settings, detector.features.names)
    lifecycle = ModelLifecycle(
        detector,
        ModelRegistry(models, FileIndex(models / "index.json"), key),
        key,
        state_path=settings.data_dir / "state.snapshot",
        policy=lifecycle_policy(settings),
        labels=offline,
    )
    # Resumes the saved state, then learns the labels acknowledged after it: before the
    # server listens, so it is never ready without them.
    resumed = lifecycle.resume()
    if detector.drift is not None:
        monitor = detector.drift
        # The feature state resumed is warm already; the windows only need days scored anew
        # (the monitor's samples are not kept in the snapshot). The comparisons run in a
        # background task, off the event loop that serves requests.
        policy = replace(monitor.policy, warmup_days=0) if resumed else monitor.policy
        detector.drift = DriftMonitor(
            monitor.features, policy, watched=monitor.names, deferred=True
        )
    if not resumed:
        for spec in settings.challengers:
            lifecycle.add_challenger(OnlineLearner(spec.learner, spec.params, seed=settings.seed))
    runtime = EmbeddedRuntime(
        detector,
        AlertLog(capacity=settings.alert_log_size),
        queue_size=settings.queue_size,
        telemetry=Telemetry(),
        lifecycle=lifecycle,
    )
    runtime.resumed = resumed
    runtime.rules = RuleBook(
        FileRuleStorage(settings.data_dir / RULES_FILE),
        key,
        detector.rule_fields(),
        keep=settings.rules_history,
        on_change=detector.apply_rules,
    )
    detector.apply_rules(rules_at_start(runtime.rules))
    runtime.event_time = event_time_bounds(settings)
    runtime.offline = offline
    runtime.jobs = serving_jobs(settings, offline, lifecycle)
    runtime.feed = build_feed(settings, runtime)
    return runtime


def build_feed(settings: Settings, runtime: FeedTarget) -> SimulatedFeed | None:
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
