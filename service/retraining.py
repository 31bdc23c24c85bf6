"""Wiring of the batch retrain job: settings in, `RetrainJobs` out, for the process that owns
the serving models (``serve``, or the learner in distributed mode, which apply a result to the
models they serve) or for the command line on its own (which registers the model and moves the
registry's champion pointer)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from models.blend import blend_name
from models.blended_learner import BlendedLearner
from models.features import FeatureSet, FeatureSpec
from models.learners import OnlineLearner
from models.model_record import NewModel
from models.snapshots import dump_snapshot
from models.state import WindowSpec, event_second
from pipelines.lifecycle.model_lifecycle import ModelLifecycle
from pipelines.lifecycle.registry import ModelRegistry, code_version
from pipelines.lifecycle.registry_index import FileIndex
from pipelines.retrain.book import FileJobBook, JobBook, JobLock
from pipelines.retrain.job import RetrainOptions, RetrainResult
from pipelines.retrain.jobs import RetrainJobs, RetrainLock, event_time_of, promotion_decision
from pipelines.retrain.offline_store import ParquetOfflineStore
from service.settings import Settings
from service.signing import embedded_key


def retrain_options(settings: Settings, **overrides: object) -> RetrainOptions:
    fields: dict[str, object] = {
        "train_days": settings.retrain_train_days,
        "delay": settings.label_delay,
        "test_days": settings.retrain_test_days,
        "seed": settings.seed,
        "algorithm": settings.retrain_model,
        "margin": settings.retrain_margin,
        "k": settings.quality_k,
        "min_labels": settings.retrain_min_labels,
        "warm_restart": settings.retrain_warm_restart,
        "online_learner": settings.learner,
        "online_params": settings.learner_params,
    }
    fields.update({name: value for name, value in overrides.items() if value is not None})
    return RetrainOptions(**fields)  # type: ignore[arg-type]


def offline_store(settings: Settings, names: tuple[str, ...]) -> ParquetOfflineStore:
    return ParquetOfflineStore(settings.data_dir / "offline", names)


def _detail(result: RetrainResult) -> str:
    return (
        f"batch retrain: hold-out AP {result.candidate.mean_weekly_average_precision:.4f} "
        f"against the champion's {result.champion.mean_weekly_average_precision:.4f} "
        f"(margin {result.options.margin})"
    )


def serving_jobs(
    settings: Settings,
    store: ParquetOfflineStore,
    lifecycle: ModelLifecycle,
    *,
    lock: JobLock | None = None,
    book: JobBook | None = None,
    event_time: Callable[[], datetime | None] | None = None,
) -> RetrainJobs:
    """Jobs of the process that owns the serving models: results change its champion or
    challengers. By default (``serve``) a file lock, jobs kept in files under the data
    directory and the event time of the latest transaction scored; the learner passes Redis's
    and its latest label's."""
    schema = lifecycle.detector.features.schema_version
    blended = settings.retrain_serve == "blend"

    def apply(result: RetrainResult) -> str:
        model = result.describe(schema, code_version())
        if blended:
            return lifecycle.adopt_blended(
                result.model,
                model,
                holdout_choice=result.holdout_blend,
                second=event_second(result.windows.known_by),
            )
        return lifecycle.adopt_trained(
            result.model, model, promote=result.promote, detail=_detail(result)
        )

    def decide(result: RetrainResult) -> str:
        served = lifecycle.detector.learner
        if blended and isinstance(served, BlendedLearner) and served.batch is result.model:
            return f"blend {blend_name(served.chosen)}"
        return promotion_decision(result)

    def apply_warm(result: RetrainResult) -> str:
        learner, record = _warm(result, schema)
        return lifecycle.adopt_challenger(learner, record)

    return RetrainJobs(
        store,
        retrain_options(settings),
        lock or RetrainLock(settings.data_dir / "retrain.lock"),
        apply,
        event_time or event_time_of(lambda: lifecycle.detector.watermark),
        reports=settings.data_dir / "retrain",
        book=book or FileJobBook(settings.data_dir / "retrain-jobs"),
        apply_warm=apply_warm,
        decide=decide,
    )


def _warm(result: RetrainResult, schema: str) -> tuple[OnlineLearner, NewModel]:
    assert result.warm is not None  # `RetrainJobs` applies a warm restart only when made
    return result.warm, result.describe_warm(schema, code_version())


def standalone_jobs(settings: Settings, options: RetrainOptions) -> RetrainJobs:
    """Jobs of ``fraudstream retrain`` on the data directory, with no service running: the
    model is registered and, when promoted, becomes the registry's champion pointer (a
    service started afterwards serves it)."""
    features = FeatureSet(
        FeatureSpec(windows=WindowSpec(label_delay_seconds=int(options.delay.total_seconds())))
    )
    store = offline_store(settings, features.names)
    models = settings.data_dir / "models"
    models.mkdir(parents=True, exist_ok=True)
    key = embedded_key(settings)
    registry = ModelRegistry(models, FileIndex(models / "index.json"), key)

    def apply(result: RetrainResult) -> str:
        record = registry.register(
            dump_snapshot(result.model, key),
            result.describe(features.schema_version, code_version()),
        )
        if result.promote:
            registry.set_champion(record.version, detail=_detail(result))
        return record.version

    def apply_warm(result: RetrainResult) -> str:
        # No service runs to shadow it: registered, to be promoted (or compared) by hand.
        learner, record = _warm(result, features.schema_version)
        return registry.register(dump_snapshot(learner, key), record).version

    return RetrainJobs(
        store,
        options,
        RetrainLock(settings.data_dir / "retrain.lock"),
        apply,
        store.latest_label_time,
        reports=settings.data_dir / "retrain",
        apply_warm=apply_warm,
    )
