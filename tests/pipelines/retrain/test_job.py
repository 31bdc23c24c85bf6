"""The retrain job: reproducible, measured against the champion, clear failures, one at a time."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.batch_model import BatchLearner
from models.blended_learner import BlendedLearner
from models.learners import OnlineLearner
from pipelines.lifecycle.model_lifecycle import ModelLifecycle
from pipelines.lifecycle.registry import ModelRegistry, code_version
from pipelines.lifecycle.registry_index import FileIndex
from pipelines.offline.evaluation import EvaluationOptions, build_detector
from pipelines.retrain.book import RetrainLock, RetrainRunningError
from pipelines.retrain.job import RetrainError, RetrainOptions, RetrainResult, retrain
from pipelines.retrain.jobs import RetrainJobs
from pipelines.retrain.offline_store import MemoryOfflineStore, feature_columns
from tests.pipelines.retrain.retrain_data import DELAY, replayed_store

KEY = b"test key"


def _options(**changes: object) -> RetrainOptions:
    fields: dict[str, object] = {
        "train_days": 7,
        "test_days": 3,
        "delay": DELAY,
        "params": {"max_iter": 30},
        "min_labels": 100,
    }
    fields.update(changes)
    return RetrainOptions(**fields)  # type: ignore[arg-type]


def test_same_window_and_seed_give_identical_metrics_and_predictions() -> None:
    store, now = replayed_store()
    first = retrain(store, now, _options())
    second = retrain(store, now, _options())
    assert first.summary() == second.summary()
    assert first.rows["holdout"] > 1_000
    rows = store.read(*first.windows.final)
    matrix = rows[feature_columns(store.feature_names)].to_numpy()
    assert np.array_equal(first.model.predict_many(matrix), second.model.predict_many(matrix))
    assert first.holdout["candidate_score"].equals(second.holdout["candidate_score"])


def test_the_candidate_is_judged_on_the_champions_own_hold_out_rows() -> None:
    store, now = replayed_store()
    result = retrain(store, now, _options())
    start, end = result.windows.holdout
    rows = store.read(start, end, known_by=now)
    assert result.holdout["score"].tolist() == rows["score"].tolist()  # scores at arrival
    assert end == (now - DELAY).replace(hour=0, minute=0, second=0, microsecond=0)
    assert result.windows.backtest[1] == start - DELAY  # the gap hides unknown labels
    assert result.promote == (result.gain >= result.options.margin)
    record = result.describe("v1", code_version())
    assert record.kind == "batch"
    assert record.data_window == result.windows.final
    assert record.metrics["champion_holdout_average_precision"] == pytest.approx(
        result.champion.mean_weekly_average_precision
    )


def test_too_few_labels_or_no_fraud_fails_with_the_reason() -> None:
    store, now = replayed_store()
    with pytest.raises(RetrainError, match="too few labels in the back-test training window"):
        retrain(store, now, _options(train_days=60, min_labels=100_000))
    rows = store.read(now - timedelta(days=365), now)
    legit_only = MemoryOfflineStore(store.feature_names)
    legit_only._frames = [rows.assign(is_fraud=False)]
    with pytest.raises(RetrainError, match="holds 0 frauds"):
        retrain(legit_only, now, _options())
    with pytest.raises(RetrainError, match="too few labels"):
        retrain(store, now - timedelta(days=25), _options())


def _lifecycle(tmp_path: Path) -> ModelLifecycle:
    detector = build_detector(EvaluationOptions(label_delay=DELAY))
    registry = ModelRegistry(tmp_path, FileIndex(tmp_path / "index.json"), KEY)
    lifecycle = ModelLifecycle(detector, registry, KEY)
    lifecycle.resume()
    return lifecycle


@pytest.mark.parametrize("promote", [True, False])
def test_a_result_is_registered_as_batch_and_promoted_only_on_a_gain(
    tmp_path: Path, promote: bool
) -> None:
    store, now = replayed_store()
    result = retrain(store, now, _options(margin=-1.0 if promote else 1.0))
    lifecycle = _lifecycle(tmp_path)
    online = lifecycle.detector.learner
    schema = lifecycle.detector.features.schema_version
    version = lifecycle.adopt_trained(
        result.model, result.describe(schema, code_version()), promote=result.promote, detail="t"
    )
    detector = lifecycle.detector
    assert lifecycle.registry.record(version).kind == "batch"
    if promote:
        assert lifecycle.registry.champion() == version
        assert isinstance(detector.learner, BatchLearner)
        assert detector.model_version == f"{version}+0"
        # The displaced online champion keeps learning in shadow, registered.
        assert list(detector.challengers.values()) == [online]
        assert isinstance(online, OnlineLearner)
    else:
        assert lifecycle.registry.champion() == "m000001"
        assert detector.learner is online
        assert list(detector.challengers) == [version]


def test_a_blended_result_serves_beside_the_online_champion_and_survives_a_restart(
    tmp_path: Path,
) -> None:
    store, now = replayed_store()
    first, second = retrain(store, now, _options()), retrain(store, now, _options(seed=1))
    lifecycle = _lifecycle(tmp_path)
    detector = lifecycle.detector
    online = detector.learner
    schema = detector.features.schema_version
    moment = int(now.timestamp())

    version = lifecycle.adopt_blended(
        first.model,
        first.describe(schema, code_version()),
        holdout_choice=first.holdout_blend,
        second=moment,
    )
    served = detector.learner
    assert isinstance(served, BlendedLearner)
    assert (served.online, served.batch, served.chosen) == (
        online,
        first.model,
        first.holdout_blend,
    )
    assert lifecycle.registry.record(version).kind == "batch"
    champion = lifecycle.registry.champion()
    assert champion not in (None, version, "m000001")
    record = lifecycle.registry.record(champion)
    assert (record.learner, record.params["batch"]) == ("blend", version)
    assert detector.model_version == f"{champion}+0"
    assert ("blended", version) in [
        (event["event"], event["version"]) for event in lifecycle.registry.events()
    ]

    # The next retrain's model takes the batch part's place; the online part and the window stay.
    served.learn(dict.fromkeys(detector.features.names, 1.0), is_fraud=True)
    again = lifecycle.adopt_blended(
        second.model,
        second.describe(schema, code_version()),
        holdout_choice=0.25,
        second=moment + 3_600,
    )
    assert detector.learner is served
    assert (served.online, served.batch, served.recent.labels) == (online, second.model, 1)
    assert lifecycle.registry.record(lifecycle.registry.champion()).params["batch"] == again  # type: ignore[arg-type]

    # A restart serves the registered blend, loaded back through the restricted unpickler.
    vectors = [
        dict(zip(store.feature_names, row, strict=True))
        for row in np.eye(len(store.feature_names))[:5]
    ]
    resumed = _lifecycle(tmp_path).detector.learner
    assert isinstance(resumed, BlendedLearner)
    assert resumed is not served
    assert [resumed.score(vector) for vector in vectors] == [
        served.score(vector) for vector in vectors
    ]


def test_a_batch_champion_promoted_by_hand_only_gets_a_challenger_to_blend(tmp_path: Path) -> None:
    store, now = replayed_store()
    result = retrain(store, now, _options())
    lifecycle = _lifecycle(tmp_path)
    schema = lifecycle.detector.features.schema_version
    promoted = lifecycle.adopt_trained(
        result.model, result.describe(schema, code_version()), promote=True, detail="by hand"
    )
    batch_champion = lifecycle.detector.learner
    later = retrain(store, now, _options(seed=1))
    version = lifecycle.adopt_blended(
        later.model,
        later.describe(schema, code_version()),
        holdout_choice=later.holdout_blend,
        second=int(now.timestamp()),
    )
    assert lifecycle.detector.learner is batch_champion
    assert lifecycle.registry.champion() == promoted
    assert version in lifecycle.detector.challengers


@pytest.mark.anyio
async def test_one_job_at_a_time_and_a_failure_changes_nothing(tmp_path: Path) -> None:
    store, now = replayed_store()
    applied: list[str] = []

    def apply(result: RetrainResult) -> str:
        applied.append(result.model.name)
        return "m000009"

    jobs = RetrainJobs(
        store,
        _options(),
        RetrainLock(tmp_path / "retrain.lock"),
        apply,
        lambda: now,
        reports=tmp_path / "reports",
    )
    first = jobs.submit("test")
    with pytest.raises(RetrainRunningError) as running:
        jobs.submit("test")
    assert running.value.running == first.id
    await jobs.wait()
    assert first.state == "succeeded", first.error
    assert first.version == "m000009"
    assert first.progress == 1.0
    assert (tmp_path / "reports" / first.id / "report.png").exists()
    # Another process holding the lock: refused with that process's job id.
    with RetrainLock(tmp_path / "retrain.lock").hold("elsewhere"):
        refused = jobs.run_now("cli")
    assert refused.state == "failed"
    assert refused.error == "a retrain is already running: job elsewhere"
    early = jobs.run_now("cli", as_of=now - timedelta(days=25))
    assert early.state == "failed"
    assert "too few labels" in str(early.error)
    assert applied == ["batch-hgb"]  # only the job that succeeded changed anything


def test_evaluation_results_frame_is_json_ready() -> None:
    store, now = replayed_store()
    result = retrain(store, now, _options())
    assert isinstance(result.holdout, pd.DataFrame)
    assert set(result.summary()) >= {"decision", "gain", "windows", "candidate", "champion"}


def _warm_scores(seed: int) -> tuple[RetrainResult, list[float]]:
    store, now = replayed_store()
    result = retrain(
        store,
        now,
        _options(
            seed=seed,
            algorithm="logistic",
            warm_restart=True,
            online_learner="bagging",
            online_params={"n_models": 3},
        ),
    )
    assert result.warm is not None
    rows = store.read(*result.windows.holdout, known_by=now)
    names = store.feature_names
    vectors = rows[feature_columns(names)].to_numpy().tolist()[:300]
    return result, [result.warm.score(dict(zip(names, v, strict=True))) for v in vectors]


def test_a_warm_restart_replays_the_training_window_into_a_fresh_seeded_learner() -> None:
    result, scores = _warm_scores(seed=3)
    warm = result.warm
    assert warm is not None
    assert (warm.name, warm.params["n_models"], warm.seed) == ("bagging", 3, 3)
    # It learned the final window's rows, each once, from the stored vectors.
    assert warm.labels_learned == result.rows["final"]
    assert warm.frauds_learned == result.rows["final_frauds"]
    record = result.describe_warm("v1", code_version())
    assert (record.kind, record.data_window) == ("online", result.windows.final)
    assert record.labels_learned == result.rows["final"]
    # Deterministic for a seed; another seed is another learner.
    assert _warm_scores(seed=3)[1] == scores
    assert _warm_scores(seed=4)[1] != scores


def test_a_warm_restart_job_registers_its_learner_as_a_challenger(tmp_path: Path) -> None:
    store, now = replayed_store()
    lifecycle = _lifecycle(tmp_path)
    schema = lifecycle.detector.features.schema_version
    jobs = RetrainJobs(
        store,
        _options(margin=1.0, algorithm="logistic"),
        RetrainLock(tmp_path / "retrain.lock"),
        lambda result: lifecycle.adopt_trained(
            result.model, result.describe(schema, "t"), promote=result.promote, detail="t"
        ),
        lambda: now,
        apply_warm=lambda result: lifecycle.adopt_challenger(
            result.warm,  # type: ignore[arg-type]
            result.describe_warm(schema, "t"),
        ),
    )
    plain = jobs.run_now("cli")
    assert plain.state == "succeeded", plain.error
    assert (plain.warm_restart, plain.warm_restart_version) == (False, None)
    job = jobs.run_now("cli", warm_restart=True)
    assert job.state == "succeeded", job.error
    version = job.warm_restart_version
    assert version is not None
    challengers = lifecycle.detector.challengers
    assert set(challengers) == {plain.version, job.version, version}
    assert challengers[version].labels_learned == job.metrics["rows"]["final"]  # type: ignore[index]
    record = lifecycle.registry.record(version)
    assert (record.kind, record.reason) == ("online", "retrain: warm restart")
    assert lifecycle.registry.champion() == "m000001"  # never promoted directly


@pytest.mark.anyio
async def test_closing_ends_a_running_job_which_fails_saying_so(tmp_path: Path) -> None:
    store, now = replayed_store()
    applied: list[RetrainResult] = []

    def apply(result: RetrainResult) -> str:
        applied.append(result)
        return "m000001"

    lock = RetrainLock(tmp_path / "retrain.lock")
    jobs = RetrainJobs(store, _options(), lock, apply, lambda: now)
    job = jobs.submit("test")
    await asyncio.sleep(0.5)  # the job's process has started
    await jobs.close()
    assert (job.state, job.error) == ("failed", "stopped: the process running it shut down")
    assert applied == []
    with lock.hold("next"):  # released
        pass
