"""Batch retraining in distributed mode, on the real servers: the learner writes the offline
store as it learns, and runs the job an API replica asks for; every replica follows the job
from Redis, and a second trigger while it runs gets 409 with its id."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from models.features import FeatureSet, FeatureSpec
from models.simulator import SimulationConfig, simulate
from models.state import WindowSpec
from pipelines.bench.server_process import serve
from pipelines.offline.datasets import LabelledDataset, dataset_from_frame
from pipelines.retrain.offline_store import ParquetOfflineStore, feature_columns
from pipelines.stream.kafka_clients import KafkaSettings
from pipelines.stream.topics import Topics
from tests.pipelines.stream.distributed_harness import ADMIN, poll, role_env, start_learner

DELAY = timedelta(days=1)
"""A short label delay keeps the job's windows (3 days, a day's gap, 2 days) within 9 days."""


@pytest.fixture(scope="module")
def dataset() -> LabelledDataset:
    return dataset_from_frame(
        simulate(SimulationConfig(customers=800, terminals=1_000, days=9, seed=7))
    )


def _score_all(api: httpx.Client, dataset: LabelledDataset) -> dict[str, dict[str, Any]]:
    answered: dict[str, dict[str, Any]] = {}
    for start in range(0, len(dataset.transactions), 1_000):
        batch = dataset.transactions[start : start + 1_000]
        body = [orjson.loads(tx.model_dump_json()) for tx in batch]
        scored = api.post("/v1/score/batch", json=body)
        assert scored.status_code == 200, scored.text
        answered.update({score["transaction_id"]: score for score in scored.json()["scores"]})
    return answered


def _label_all(api: httpx.Client, dataset: LabelledDataset) -> None:
    labels = [
        {
            "transaction_id": tx.transaction_id,
            "is_fraud": fraud,
            "labelled_at": (tx.timestamp + DELAY).isoformat(),
            "source": "chargeback",
        }
        for tx, fraud in zip(dataset.transactions, dataset.is_fraud, strict=True)
    ]
    for start in range(0, len(labels), 1_000):
        queued = api.post("/v1/labels", json=labels[start : start + 1_000])
        assert queued.status_code == 202, queued.text


def _retrain_env(
    kafka_settings: KafkaSettings, redis_url: str, topics: Topics, data_dir: Path, **more: str
) -> dict[str, str]:
    """Roles whose learner can retrain on the nine simulated days (windows of 3 and 2 days)."""
    return role_env(
        kafka_settings,
        redis_url,
        topics,
        FRAUDSTREAM_DATA_DIR=str(data_dir),
        FRAUDSTREAM_LABEL_DELAY="1d",
        FRAUDSTREAM_RETRAIN_MODEL="logistic",
        FRAUDSTREAM_RETRAIN_TRAIN_DAYS="3",
        FRAUDSTREAM_RETRAIN_TEST_DAYS="2",
        FRAUDSTREAM_RETRAIN_MIN_LABELS="100",
        **more,
    )


def _score_and_learn(api: httpx.Client, dataset: LabelledDataset) -> dict[str, dict[str, Any]]:
    """Every transaction scored and labelled through ``api``, once the learner's model has
    learned every label; the scores as answered."""
    answered = _score_all(api, dataset)
    _label_all(api, dataset)
    total = len(dataset.transactions)
    poll(
        lambda: api.get("/v1/models").json()["models"][0]["labels_learned"],
        lambda learned: learned == total,
        what=f"the learner's model after {total} labels",
        timeout=60,
    )
    return answered


def _finished(api: httpx.Client, job_id: str) -> dict[str, Any]:
    job: dict[str, Any] = poll(
        lambda: api.get(f"/v1/retrain/{job_id}").json(),
        lambda seen: seen["state"] in ("succeeded", "failed"),
        what="the end of the retrain job",
        timeout=60,
    )
    return job


def test_the_learner_keeps_the_offline_store_and_runs_the_retrain_an_api_replica_asks_for(
    kafka_settings: KafkaSettings,
    redis_url: str,
    topics: Topics,
    dataset: LabelledDataset,
    tmp_path: Path,
) -> None:
    env = _retrain_env(kafka_settings, redis_url, topics, tmp_path)
    learner = start_learner(env, tmp_path, redis_url, topics)
    try:
        with (
            serve(settings=env, role="api") as first,
            serve(settings=env, role="api") as second,
            httpx.Client(base_url=first.url, headers=ADMIN, timeout=30) as api,
            httpx.Client(base_url=second.url, headers=ADMIN, timeout=30) as other,
        ):
            answered = _score_and_learn(api, dataset)
            total = len(dataset.transactions)

            # Every label learned has its row, as scored and labelled, flushed before the
            # learner published (and committed) it.
            names = FeatureSet(FeatureSpec(windows=WindowSpec(label_delay_seconds=86_400))).names
            store = ParquetOfflineStore(tmp_path / "offline", names)
            rows = store.read(datetime(2018, 1, 1, tzinfo=UTC), datetime(2019, 1, 1, tzinfo=UTC))
            assert len(rows) == total
            frauds = dict(zip(rows["transaction_id"], rows["is_fraud"], strict=True))
            assert frauds == {
                tx.transaction_id: fraud
                for tx, fraud in zip(dataset.transactions, dataset.is_fraud, strict=True)
            }
            for row in rows.to_dict("records"):
                answer = answered[row["transaction_id"]]
                assert (row["score"], row["model_version"]) == (
                    answer["score"],
                    answer["model_version"],
                )
            for row in rows.sample(5, random_state=0).to_dict("records"):
                audit = api.get(f"/v1/audit/{row['transaction_id']}").json()
                vector = [row[column] for column in feature_columns(names)]
                assert vector == [audit["features"][name] for name in names]

            started = api.post("/v1/retrain", json={"warm_restart": True})
            assert started.status_code == 202, started.text
            job_id = started.json()["id"]
            assert started.json()["trigger"] == "api"
            again = other.post("/v1/retrain")
            assert again.status_code == 409, again.text
            assert again.json()["running_job_id"] == job_id

            job = _finished(other, job_id)
            assert job["state"] == "succeeded", job["error"]
            assert job["as_of"].startswith("2018-04-10")  # the latest label learned
            assert job["metrics"]["rows"]["final"] > 1_000
            record = other.get(f"/v1/models/{job['version']}").json()
            assert (record["kind"], record["learner"]) == ("batch", "batch-logistic")
            # The learner applied the result and published it: every replica serves it.
            poll(
                lambda: {
                    model["version"].partition("+")[0]: model["role"]
                    for model in other.get("/v1/models").json()["models"]
                },
                lambda serving: (
                    serving.get(job["warm_restart_version"]) == "challenger"
                    and job["version"] in serving
                ),
                what="the retrain's models serving in another replica",
            )
            here, there = (client.get(f"/v1/retrain/{job_id}").json() for client in (api, other))
            assert here == there
        assert learner.stop() == 0, learner.log_tail()
    finally:
        if learner.alive():
            learner.kill()


def test_with_retrain_serve_blend_every_replica_scores_with_the_blend_the_learner_published(
    kafka_settings: KafkaSettings,
    redis_url: str,
    topics: Topics,
    dataset: LabelledDataset,
    tmp_path: Path,
) -> None:
    env = _retrain_env(
        kafka_settings, redis_url, topics, tmp_path, FRAUDSTREAM_RETRAIN_SERVE="blend"
    )
    learner = start_learner(env, tmp_path, redis_url, topics)
    try:
        with (
            serve(settings=env, role="api") as replica,
            httpx.Client(base_url=replica.url, headers=ADMIN, timeout=30) as api,
        ):
            _score_and_learn(api, dataset)
            started = api.post("/v1/retrain")
            assert started.status_code == 202, started.text
            job = _finished(api, started.json()["id"])
            assert job["state"] == "succeeded", job["error"]
            assert job["decision"].startswith("blend ")
            champion = poll(
                lambda: api.get("/v1/models").json()["models"][0],
                lambda model: model["learner"] == "blend",
                what="the blend published to the replica",
            )
            assert champion["role"] == "champion"
            record = api.get(f"/v1/models/{champion['version'].partition('+')[0]}").json()
            assert record["params"]["batch"] == job["version"]
            last = dataset.transactions[-1]
            after = last.model_copy(
                update={"transaction_id": "after-the-blend", "timestamp": last.timestamp}
            )
            scored = api.post("/v1/score", json=orjson.loads(after.model_dump_json()))
            assert scored.status_code == 200, scored.text
            assert scored.json()["model_version"] == champion["version"]
        assert learner.stop() == 0, learner.log_tail()
    finally:
        if learner.alive():
            learner.kill()
