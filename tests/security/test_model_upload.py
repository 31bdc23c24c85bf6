"""Against a running `fraudstream serve`: a model upload signed with the deployment's own key
that would create a file when unpickled is refused (422), creates nothing, is logged as refused
and leaves the serving models as they were; the same bytes planted in the data directory are
refused at the next start."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx

from pipelines.bench.server_process import serve
from pipelines.signing_key import KEY_FILE
from service.auth import hash_key
from tests.security.gadgets import file_gadgets, signed
from tests.service.client import transaction

ADMIN_KEY = "an-admin-key-of-the-security-tests"
OCTETS = {"content-type": "application/octet-stream"}


def _settings(data: Path) -> dict[str, str]:
    return {
        "FRAUDSTREAM_DATA_DIR": str(data),
        "FRAUDSTREAM_API_KEYS": json.dumps({hash_key(ADMIN_KEY): ["admin"]}),
    }


def _client(url: str) -> httpx.Client:
    headers = {"authorization": f"Bearer {ADMIN_KEY}"}
    return httpx.Client(base_url=url, headers=headers, trust_env=False, timeout=30)


def _serving(client: httpx.Client) -> dict[str, Any]:
    listed = client.get("/v1/models").json()
    return {
        "champion": listed["champion_version"],
        "models": [(model["version"], model["labels_learned"]) for model in listed["models"]],
        "versions": [version["version"] for version in listed["versions"]],
    }


def _left_in(loot: Path) -> list[str]:
    time.sleep(0.3)  # time for a spawned process to have acted, had one been spawned
    return sorted(path.name for path in loot.iterdir())


def test_a_signed_upload_that_would_create_a_file_is_refused_and_changes_nothing(
    tmp_path: Path,
) -> None:
    data, loot = tmp_path / "data", tmp_path / "loot"
    loot.mkdir()
    with serve(settings=_settings(data)) as server, _client(server.url) as client:
        # The deployment's actual key, as someone who stole it would hold it.
        key = (data / KEY_FILE).read_bytes().strip()
        assert client.post("/v1/score/batch", json=[transaction(i) for i in range(20)]).is_success
        before = _serving(client)
        schema = client.get(f"/v1/models/{before['champion']}").json()["feature_schema"]
        gadgets = file_gadgets(loot)

        for name, payload in gadgets.items():
            answer = client.post(
                "/v1/models/artifacts",
                params={"feature_schema": schema},
                content=signed(payload, key),
                headers=OCTETS,
            )
            assert answer.status_code == 422, (name, answer.status_code, answer.text)
            assert "refused to load" in answer.json()["detail"], name

        assert _left_in(loot) == []
        events = client.get("/v1/models/events", params={"limit": 1_000}).json()
        refused = [e for e in events if (e["event"], e["version"]) == ("refused", "upload")]
        assert len(refused) == len(gadgets)
        assert all("refused to load" in event["detail"] for event in refused)
        assert _serving(client) == before
        assert client.post("/v1/score", json=transaction(99)).status_code == 200

        # What is refused is the gadget, not uploads: the champion's own artefact registers.
        genuine = client.get(f"/v1/models/{before['champion']}/artifact").content
        uploaded = client.post(
            "/v1/models/artifacts",
            params={"feature_schema": schema},
            content=genuine,
            headers=OCTETS,
        )
        assert uploaded.status_code == 201, uploaded.text


def test_a_gadget_planted_as_the_saved_state_is_refused_at_start(tmp_path: Path) -> None:
    data, loot = tmp_path / "data", tmp_path / "loot"
    loot.mkdir()
    with serve(settings=_settings(data)) as server, _client(server.url) as client:
        assert client.post("/v1/score/batch", json=[transaction(i) for i in range(20)]).is_success
    # The clean stop took a final snapshot: the champion is the registry's pointer now.
    champion = json.loads((data / "models" / "index.json").read_text())["champion"]
    key = (data / KEY_FILE).read_bytes().strip()
    state = data / "state.snapshot"
    assert state.exists()
    state.write_bytes(signed(file_gadgets(loot)["os.system"], key))

    with serve(settings=_settings(data)) as server, _client(server.url) as client:
        assert _left_in(loot) == []
        # The champion still resumes from the registry; only the planted state was dropped.
        assert _serving(client)["champion"] == champion
        assert client.post("/v1/score", json=transaction(99)).status_code == 200
