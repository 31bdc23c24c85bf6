"""Model lifecycle through the API: snapshots, provenance, rollback, tampering, challengers."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from models.learners import DEFAULT_LEARNER, OnlineLearner
from models.model_record import NewModel
from models.snapshots import dump_snapshot
from pipelines.bench.server_process import serve
from pipelines.runtime.embedded import EmbeddedRuntime
from service.settings import Settings
from service.signing import embedded_key
from tests.service.client import api_client, transaction

pytestmark = pytest.mark.anyio


def _runtime(app: FastAPI) -> EmbeddedRuntime:
    runtime: EmbeddedRuntime = app.state.runtime
    return runtime


def _label(index: int, is_fraud: bool) -> dict[str, Any]:
    return {
        "transaction_id": f"tx-{index}",
        "is_fraud": is_fraud,
        "labelled_at": "2026-11-30T00:00:00Z",
        "source": "chargeback",
    }


async def _traffic(client: httpx.AsyncClient, indexes: range) -> None:
    scored = await client.post("/v1/score/batch", json=[transaction(i) for i in indexes])
    assert scored.status_code == 200, scored.text
    labels = [_label(i, i % 5 == 0) for i in indexes]
    assert (await client.post("/v1/labels", json=labels)).status_code == 200


async def test_a_snapshot_records_its_provenance_and_downloads_as_registered(
    tmp_path: Path,
) -> None:
    async with api_client(data_dir=tmp_path) as (client, _):
        await _traffic(client, range(40))
        created = await client.post("/v1/models/snapshots")
        assert created.status_code == 201, created.text
        record = created.json()
        assert record["version"] == "m000002"  # m000001 was registered at start-up
        assert record["status"] == "champion"
        assert record["parent"] == "m000001"
        assert record["kind"] == "online"
        assert record["learner"] == DEFAULT_LEARNER
        assert record["labels_learned"] == 40
        assert record["feature_schema"].startswith("features-")
        assert record["code_version"].startswith("0.1.0")
        assert record["reason"] == "on demand"
        assert record["metrics"]["matured"] == 40

        listed = (await client.get("/v1/models")).json()
        assert listed["champion_version"] == "m000002"
        assert [version["version"] for version in listed["versions"]] == ["m000002", "m000001"]
        assert listed["models"][0]["version"] == "m000002+0"
        assert (await client.get("/v1/models/m000002")).json() == record

        artefact = await client.get("/v1/models/m000002/artifact")
        assert artefact.status_code == 200
        assert hashlib.sha256(artefact.content).hexdigest() == record["sha256"]
        assert artefact.headers["x-fraudstream-sha256"] == record["sha256"]

        assert (await client.get("/v1/models/m999999")).status_code == 404
        assert (await client.post("/v1/models/m999999/promote")).status_code == 404


async def test_rollback_serves_the_older_version_bit_for_bit(tmp_path: Path) -> None:
    async with api_client(data_dir=tmp_path) as (client, app):
        await _traffic(client, range(30))
        older = (await client.post("/v1/models/snapshots")).json()["version"]
        probe = (await client.post("/v1/score", json=transaction(500))).json()
        audit = (await client.get("/v1/audit/tx-500")).json()
        assert audit["model_version"] == probe["model_version"] == f"{older}+0"
        assert audit["score"] == probe["score"]

        await _traffic(client, range(30, 90))  # the champion learns on
        newer = (await client.post("/v1/models/snapshots")).json()["version"]
        runtime = _runtime(app)
        assert runtime.detector.learner.score(audit["features"]) != probe["score"]

        promoted = await client.post(f"/v1/models/{older}/promote")
        assert promoted.status_code == 200, promoted.text
        assert promoted.json() == {"champion_version": older, "model_version": f"{older}+0"}
        # The very model that scored the probe: the same vector gets the same score, exactly.
        assert runtime.detector.learner.score(audit["features"]) == probe["score"]
        assert (await client.get("/v1/models")).json()["champion_version"] == older
        events = (await client.get("/v1/models/events")).json()
        assert events[0]["event"] == "promoted"
        assert events[0]["version"] == older
        del newer


async def test_a_tampered_artefact_is_refused_and_the_champion_keeps_serving(
    tmp_path: Path,
) -> None:
    async with api_client(data_dir=tmp_path) as (client, _):
        await _traffic(client, range(20))
        version = (await client.post("/v1/models/snapshots")).json()["version"]
        await _traffic(client, range(20, 40))
        serving = (await client.get("/v1/models")).json()["models"][0]["version"]
        path = tmp_path / "models" / f"{version}.model"
        flipped = bytearray(path.read_bytes())
        flipped[len(flipped) // 2] ^= 0x01
        path.write_bytes(bytes(flipped))

        refused = await client.post(f"/v1/models/{version}/promote")
        assert refused.status_code == 422
        assert version in refused.json()["detail"]
        assert (await client.get(f"/v1/models/{version}/artifact")).status_code == 422
        assert (await client.get("/v1/models")).json()["models"][0]["version"] == serving
        assert (await client.post("/v1/score", json=transaction(99))).status_code == 200


async def test_a_model_for_other_features_is_refused_with_409(tmp_path: Path) -> None:
    async with api_client(data_dir=tmp_path) as (client, app):
        lifecycle = _runtime(app).lifecycle
        assert lifecycle is not None
        learner = OnlineLearner("logistic")
        foreign = lifecycle.registry.register(
            dump_snapshot(learner, embedded_key(Settings(data_dir=tmp_path))),
            NewModel(
                kind="online",
                learner="logistic",
                params={},
                feature_schema="features-000000000000",
                labels_learned=0,
                frauds_learned=0,
                code_version="0.1.0",
                seed=0,
                reason="test",
            ),
        )
        answer = await client.post(f"/v1/models/{foreign.version}/promote")
        assert answer.status_code == 409
        assert "features-000000000000" in answer.json()["detail"]


async def test_challengers_shadow_and_are_retired_but_the_champion_never(tmp_path: Path) -> None:
    async with api_client(data_dir=tmp_path) as (client, _):
        created = await client.post("/v1/models/challengers", json={"learner": "hoeffding"})
        assert created.status_code == 201, created.text
        challenger = created.json()["version"]
        await _traffic(client, range(30))
        models = (await client.get("/v1/models")).json()["models"]
        assert [(m["role"], m["name"]) for m in models] == [
            ("champion", DEFAULT_LEARNER),
            ("challenger", challenger),
        ]
        assert models[1]["matured_labels"] == 30  # judged on the same labels
        assert models[1]["labels_learned"] == 30
        audit = (await client.get("/v1/audit/tx-3")).json()
        assert set(audit["shadow_scores"]) == {challenger}
        assert audit["label"] is False

        champion = (await client.get("/v1/models")).json()["champion_version"]
        assert (await client.delete(f"/v1/models/{champion}")).status_code == 409
        assert (await client.delete(f"/v1/models/{challenger}")).status_code == 204
        models = (await client.get("/v1/models")).json()["models"]
        assert [m["role"] for m in models] == ["champion"]
        bad = await client.post("/v1/models/challengers", json={"learner": "no-such"})
        assert bad.status_code == 422


async def test_a_hot_swap_under_concurrent_scoring_drops_no_request(tmp_path: Path) -> None:
    async with api_client(data_dir=tmp_path) as (client, _):
        await _traffic(client, range(20))
        older = (await client.post("/v1/models/snapshots")).json()["version"]
        await _traffic(client, range(20, 40))
        newer = (await client.post("/v1/models/snapshots")).json()["version"]

        async def score(index: int) -> httpx.Response:
            return await client.post("/v1/score", json=transaction(1_000 + index))

        requests = [score(i) for i in range(150)]
        requests.insert(75, client.post(f"/v1/models/{older}/promote"))
        answers = await asyncio.gather(*requests)
        promoted = answers.pop(75)
        assert promoted.status_code == 200
        assert all(answer.status_code == 200 for answer in answers)
        versions = [answer.json()["model_version"] for answer in answers]
        assert set(versions) <= {f"{newer}+0", f"{older}+0"}
        assert f"{newer}+0" in versions
        assert f"{older}+0" in versions  # the swap happened while requests were in flight
        assert versions.index(f"{older}+0") == 75  # from the request after it, every one


async def test_admin_routes_need_the_admin_role_when_keys_are_set(tmp_path: Path) -> None:
    keys = {
        hashlib.sha256(b"admin-key").hexdigest(): ["admin"],
        hashlib.sha256(b"scorer-key").hexdigest(): ["score"],
    }
    async with api_client(data_dir=tmp_path, api_keys=keys) as (client, _):
        assert (await client.post("/v1/models/snapshots")).status_code == 401
        scorer = {"authorization": "Bearer scorer-key"}
        admin = {"authorization": "Bearer admin-key"}
        assert (await client.post("/v1/models/snapshots", headers=scorer)).status_code == 403
        assert (await client.post("/v1/models/snapshots", headers=admin)).status_code == 201
        wrong = {"authorization": "Bearer nobody"}
        assert (await client.get("/v1/models", headers=wrong)).status_code == 401
        assert (await client.get("/v1/models", headers=scorer)).status_code == 200


def test_killed_and_restarted_the_service_resumes_from_its_last_snapshot(tmp_path: Path) -> None:
    settings = {"FRAUDSTREAM_DATA_DIR": str(tmp_path)}
    with serve(settings=settings) as server, httpx.Client(base_url=server.url) as client:
        client.post("/v1/score/batch", json=[transaction(i) for i in range(60)])
        client.post("/v1/labels", json=[_label(i, i % 5 == 0) for i in range(30)])
        snapshot = client.post("/v1/models/snapshots").json()
        client.post("/v1/labels", json=[_label(i, i % 5 == 0) for i in range(30, 40)])
        assert server.pid is not None
        os.kill(server.pid, signal.SIGKILL)  # no shutdown, no final snapshot

    with serve(settings=settings) as server, httpx.Client(base_url=server.url) as client:
        [champion] = client.get("/v1/models").json()["models"]
        # The ten acknowledged after the snapshot were learned again from the offline store,
        # and the result registered at once as the next version.
        assert champion["labels_learned"] == 40
        recovered = champion["version"].split("+")[0]
        assert recovered > snapshot["version"]
        assert champion["version"] == f"{recovered}+0"
        # The vectors scored before the snapshot came back with it: their labels still learn,
        # and those learned again are not learned twice.
        learned = client.post("/v1/labels", json=[_label(i, i % 5 == 0) for i in range(30, 60)])
        assert learned.json()["learned"] == 20
        [champion] = client.get("/v1/models").json()["models"]
        assert champion["version"] == f"{recovered}+20"
        # ... and the windows too: a card's count goes on from where it stood.
        again = client.post("/v1/score", json=transaction(60)).json()
        assert again["model_version"] == champion["version"]
        audit = client.get("/v1/audit/tx-60").json()
        assert audit["features"]["card_tx_count_30d"] > 1


async def test_an_uploaded_artefact_is_registered_only_if_its_signature_verifies(
    tmp_path: Path,
) -> None:
    async with api_client(data_dir=tmp_path) as (client, _):
        await _traffic(client, range(20))
        version = (await client.post("/v1/models/snapshots")).json()["version"]
        download = await client.get(f"/v1/models/{version}/artifact")
        schema = download.headers["x-fraudstream-feature-schema"]
        octets = {"content-type": "application/octet-stream"}

        uploaded = await client.post(
            "/v1/models/artifacts",
            params={"feature_schema": schema},
            content=download.content,
            headers=octets,
        )
        assert uploaded.status_code == 201, uploaded.text
        record = uploaded.json()
        assert (record["reason"], record["sha256"]) == (
            "upload",
            hashlib.sha256(download.content).hexdigest(),
        )
        assert record["labels_learned"] == 20

        flipped = bytearray(download.content)
        flipped[-3] ^= 0x10
        refused = await client.post(
            "/v1/models/artifacts",
            params={"feature_schema": schema},
            content=bytes(flipped),
            headers=octets,
        )
        assert refused.status_code == 422
        assert "does not verify" in refused.json()["detail"]
        other = await client.post(
            "/v1/models/artifacts",
            params={"feature_schema": "features-000000000000"},
            content=download.content,
            headers=octets,
        )
        assert other.status_code == 409
        events = (await client.get("/v1/models/events")).json()
        assert any(e["event"] == "refused" and e["version"] == "upload" for e in events)
        versions = [v["version"] for v in (await client.get("/v1/models")).json()["versions"]]
        assert record["version"] in versions
        assert len(versions) == 3  # start, snapshot, the one good upload
