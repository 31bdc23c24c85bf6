"""The model lifecycle in distributed mode: the API asks, the learner (single writer) does,
the registry's index lives in Redis, and every scorer follows what the learner publishes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from models.learners import OnlineLearner
from pipelines.bench.server_process import serve
from pipelines.stream.kafka_clients import KafkaSettings
from pipelines.stream.topics import Topics
from tests.pipelines.stream.distributed_harness import (
    ADMIN,
    Stream,
    poll,
    publish_model,
    role_env,
    simulated_stream,
    start_learner,
    trained_learner,
)


@pytest.fixture(scope="module")
def stream() -> Stream:
    return simulated_stream(2_000, seed=31)


def _json(tx: object) -> Any:
    return orjson.loads(tx.model_dump_json())  # type: ignore[attr-defined]


def test_the_api_changes_models_through_the_learner_and_every_scorer_follows(
    kafka_settings: KafkaSettings,
    redis_url: str,
    topics: Topics,
    stream: Stream,
    tmp_path: Path,
) -> None:
    model: OnlineLearner = trained_learner()
    publish_model(redis_url, topics, model)
    env = role_env(kafka_settings, redis_url, topics, FRAUDSTREAM_DATA_DIR=str(tmp_path))
    learner = start_learner(env, tmp_path, redis_url, topics)
    try:
        with (
            serve(settings=env, role="api") as server,
            httpx.Client(base_url=server.url, headers=ADMIN) as api,
        ):
            listed = api.get("/v1/models").json()
            assert listed["champion_version"] == "m000001"
            assert [v["version"] for v in listed["versions"]] == ["m000001"]

            snapshot = api.post("/v1/models/snapshots")
            assert snapshot.status_code == 201, snapshot.text
            assert snapshot.json()["version"] == "m000002"
            assert snapshot.json()["status"] == "champion"

            added = api.post("/v1/models/challengers", json={"learner": "hoeffding"})
            assert added.status_code == 201, added.text
            challenger = added.json()["version"]
            poll(
                lambda: api.get("/v1/models").json()["models"],
                lambda models: [m["role"] for m in models] == ["champion", "challenger"],
                what="the challenger serving in the API",
            )

            # Scores through the API carry the challenger's shadow score; labels posted to
            # the API reach the learner through the topic, and its quality comes back.
            batch = stream.live[:400]
            scored = api.post("/v1/score/batch", json=[_json(tx) for tx in batch])
            assert scored.status_code == 200, scored.text
            audit = api.get(f"/v1/audit/{batch[0].transaction_id}").json()
            assert set(audit["shadow_scores"]) == {challenger}
            labels = [
                {
                    "transaction_id": tx.transaction_id,
                    "is_fraud": stream.is_fraud[tx.transaction_id],
                    "labelled_at": "2026-11-29T12:00:00Z",
                    "source": "chargeback",
                }
                for tx in batch
            ]
            assert api.post("/v1/labels", json=labels).status_code == 202
            poll(
                lambda: api.get("/v1/models").json()["models"],
                lambda models: (
                    all(m["matured_labels"] == 400 for m in models)
                    and models[0]["version"] == "m000002+400"
                ),
                what="the learner's models and quality after 400 labels",
            )

            # Rollback: the first version serves again, in the API too.
            promoted = api.post("/v1/models/m000001/promote")
            assert promoted.status_code == 200, promoted.text
            assert promoted.json()["model_version"] == "m000001+0"
            probe = {**_json(stream.live[500]), "transaction_id": "after-rollback"}
            poll(
                lambda: api.post(
                    "/v1/score", json={**probe, "transaction_id": f"p{time.monotonic_ns()}"}
                ).json()["model_version"],
                lambda version: version == "m000001+0",
                what="a score by the rolled-back version",
            )

            # Refusals come back from the learner as the API's own answers.
            artefact = tmp_path / "models" / "m000002.model"
            tampered = bytearray(artefact.read_bytes())
            tampered[-10] ^= 0x40
            artefact.write_bytes(bytes(tampered))
            assert api.post("/v1/models/m000002/promote").status_code == 422
            assert api.post("/v1/models/m999999/promote").status_code == 404
            assert api.delete("/v1/models/m000001").status_code == 409  # the champion
            assert api.delete(f"/v1/models/{challenger}").status_code == 204
            events = api.get("/v1/models/events").json()
            assert {"promoted", "refused", "retired"} <= {event["event"] for event in events}
        assert learner.stop() == 0, learner.log_tail()
    finally:
        if learner.alive():
            learner.kill()
