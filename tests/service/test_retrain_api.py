"""Batch retraining through the API: admin only, 202 then follow the job, 409 while one runs."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import httpx
import pytest

from models.learners import DEFAULT_LEARNER
from models.simulator import SimulationConfig, simulate
from pipelines.offline.datasets import dataset_from_frame
from tests.service.client import api_client

pytestmark = pytest.mark.anyio

ADMIN, READER = "admin-key", "reader-key"
KEYS = {
    hashlib.sha256(ADMIN.encode()).hexdigest(): ["admin"],
    hashlib.sha256(READER.encode()).hexdigest(): ["score", "label"],
}
SETTINGS: dict[str, Any] = {
    "api_keys": KEYS,
    "retrain_train_days": 7,
    "retrain_test_days": 3,
    "retrain_min_labels": 100,
}


def _auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


async def _feed(client: httpx.AsyncClient, days: int) -> int:
    """Simulated transactions scored, then their labels posted a week after each."""
    dataset = dataset_from_frame(
        simulate(SimulationConfig(customers=200, terminals=400, days=days, seed=0))
    )
    pairs = list(zip(dataset.transactions, dataset.is_fraud, strict=True))
    for start in range(0, len(pairs), 1_000):
        batch = pairs[start : start + 1_000]
        body = [tx.model_dump(mode="json", exclude_none=True) for tx, _ in batch]
        scored = await client.post("/v1/score/batch", json=body, headers=_auth(ADMIN))
        assert scored.status_code == 200, scored.text
    labels = [
        {
            "transaction_id": tx.transaction_id,
            "is_fraud": fraud,
            "labelled_at": (tx.timestamp.replace(microsecond=0)).isoformat(),
            "source": "chargeback",
        }
        for tx, fraud in pairs
    ]
    for start in range(0, len(labels), 1_000):
        learned = await client.post(
            "/v1/labels", json=labels[start : start + 1_000], headers=_auth(ADMIN)
        )
        assert learned.status_code == 200, learned.text
    return len(pairs)


async def _score_one(client: httpx.AsyncClient, transaction_id: str) -> httpx.Response:
    """A small payment scored on its own, as any caller would."""
    return await client.post(
        "/v1/score",
        json={
            "transaction_id": transaction_id,
            "timestamp": "2018-05-01T12:00:00Z",
            "card_id": "c",
            "terminal_id": "t",
            "amount": 10.0,
            "currency": "EUR",
        },
        headers=_auth(ADMIN),
    )


async def _finished(client: httpx.AsyncClient, app: Any, job_id: str) -> dict[str, Any]:
    await app.state.runtime.jobs.wait()
    answer = await client.get(f"/v1/retrain/{job_id}", headers=_auth(READER))
    assert answer.status_code == 200, answer.text
    job: dict[str, Any] = answer.json()
    return job


async def test_a_retrain_runs_off_the_loop_registers_a_batch_model_and_409s_a_second(
    tmp_path: Path,
) -> None:
    """With a warm restart asked in the body: its online learner shadows as a challenger."""
    async with api_client(data_dir=tmp_path, **SETTINGS) as (client, app):
        assert (await client.post("/v1/retrain")).status_code == 401
        assert (await client.post("/v1/retrain", headers=_auth(READER))).status_code == 403
        await _feed(client, days=30)
        # Every learned label reached the offline store before it was answered.
        assert list((tmp_path / "offline").glob("date=*/part-*.parquet"))
        for body, field in (({"warm_restart": "maybe"}, "warm_restart"), ({"seed": 1}, "seed")):
            refused = await client.post("/v1/retrain", json=body, headers=_auth(ADMIN))
            assert refused.status_code == 422
            assert refused.json()["detail"][0]["loc"] == ["body", field]
        started = await client.post(
            "/v1/retrain", json={"warm_restart": True}, headers=_auth(ADMIN)
        )
        assert started.status_code == 202, started.text
        assert started.json()["warm_restart"] is True
        job_id = started.json()["id"]
        again = await client.post("/v1/retrain", headers=_auth(ADMIN))
        assert again.status_code == 409
        assert again.json()["running_job_id"] == job_id
        # Scoring goes on while the job runs.
        scored = await _score_one(client, "during")
        assert scored.status_code == 200
        job = await _finished(client, app, job_id)
        assert job["state"] == "succeeded", job["error"]
        assert job["progress"] == 1.0
        assert job["decision"] in ("promote", "challenger")
        assert job["metrics"]["candidate"]["mean_weekly_average_precision"] > 0
        record = (await client.get(f"/v1/models/{job['version']}", headers=_auth(READER))).json()
        assert record["kind"] == "batch"
        assert record["data_window"] is not None
        models = (await client.get("/v1/models", headers=_auth(READER))).json()
        serving = {model["version"].partition("+")[0]: model for model in models["models"]}
        assert job["version"] in serving
        warm = serving[job["warm_restart_version"]]
        assert (warm["role"], warm["learner"]) == ("challenger", DEFAULT_LEARNER)
        assert warm["labels_learned"] == job["metrics"]["rows"]["final"]
        assert (await client.get("/v1/retrain/nope", headers=_auth(READER))).status_code == 404


async def test_too_few_labels_fail_the_job_with_the_reason_and_change_nothing(
    tmp_path: Path,
) -> None:
    async with api_client(data_dir=tmp_path, **SETTINGS) as (client, app):
        await _feed(client, days=9)
        before = (await client.get("/v1/models", headers=_auth(READER))).json()
        started = await client.post("/v1/retrain", headers=_auth(ADMIN))
        assert started.status_code == 202
        job = await _finished(client, app, started.json()["id"])
        assert job["state"] == "failed"
        assert "too few labels" in job["error"]
        assert (job["version"], job["warm_restart"]) == (None, False)
        after = (await client.get("/v1/models", headers=_auth(READER))).json()
        assert after["versions"] == before["versions"]
        assert after["champion_version"] == before["champion_version"]


async def test_with_retrain_serve_blend_the_batch_model_serves_blended_with_the_online_learner(
    tmp_path: Path,
) -> None:
    async with api_client(data_dir=tmp_path, retrain_serve="blend", **SETTINGS) as (client, app):
        await _feed(client, days=30)
        started = await client.post("/v1/retrain", headers=_auth(ADMIN))
        assert started.status_code == 202, started.text
        job = await _finished(client, app, started.json()["id"])
        assert job["state"] == "succeeded", job["error"]
        assert job["decision"].startswith("blend ")
        assert job["metrics"]["decision"] == job["decision"]
        models = (await client.get("/v1/models", headers=_auth(READER))).json()
        champion = models["champion_version"]
        record = (await client.get(f"/v1/models/{champion}", headers=_auth(READER))).json()
        assert record["learner"] == "blend"
        assert record["params"]["batch"] == job["version"]
        assert job["decision"] == f"blend {record['params']['blend']}"
        serving = models["models"][0]  # the champion, as it serves now
        assert (serving["learner"], serving["params"]["blend"]) == (
            "blend",
            record["params"]["blend"],
        )
        scored = await _score_one(client, "after")
        assert scored.status_code == 200, scored.text
        assert scored.json()["model_version"].partition("+")[0] == champion
