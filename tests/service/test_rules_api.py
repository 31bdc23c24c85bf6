"""Rules through the API of a real `fraudstream serve` process: written, applied to scores and
alerts, kept across a restart, and refused at start-up when the stored file was altered."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from pipelines.bench.server_process import free_port, serve, wait_ready
from tests.servers.role_process import RoleProcess
from tests.service.client import transaction

RULES = {
    "rules": [
        {"name": "big", "text": "amount > 900 -> alert"},
        {"name": "web", "text": 'channel == "ecommerce" -> review'},
        {"name": "house", "text": 'terminal_id == "term-house" -> allow'},
    ]
}


def settings(data_dir: Path, threshold: str) -> dict[str, str]:
    return {
        "FRAUDSTREAM_DATA_DIR": str(data_dir),
        "FRAUDSTREAM_ALERT_THRESHOLD": threshold,
        "FRAUDSTREAM_LOG_LEVEL": "warning",
        "FRAUDSTREAM_SNAPSHOT_EVERY": "1d",
    }


def score(api: httpx.Client, index: int, **fields: Any) -> dict[str, Any]:
    answer = api.post("/v1/score", json=transaction(index, **fields))
    assert answer.status_code == 200, answer.text
    scored: dict[str, Any] = answer.json()
    return scored


def alerts_by_id(api: httpx.Client) -> dict[str, dict[str, Any]]:
    listed = api.get("/v1/alerts").json()
    return {alert["transaction"]["transaction_id"]: alert for alert in listed}


def test_rules_decide_name_themselves_and_survive_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    # Threshold 1: the model alone alerts on nothing.
    with (
        serve(settings=settings(data, "1.0")) as server,
        httpx.Client(base_url=server.url, timeout=30) as api,
    ):
        assert api.get("/v1/rules").json()["version"] == 0
        written = api.put("/v1/rules", json=RULES)
        assert written.status_code == 200, written.text
        assert written.json()["version"] == 1
        assert [rule["action"] for rule in written.json()["rules"]] == ["alert", "review", "allow"]

        big = score(api, 1, amount=1000.0)
        assert big["decision"] == "alert"
        assert big["reasons"][0] == {"feature": "rule:big", "value": 1.0, "contribution": 0.0}
        web = score(api, 2, channel="ecommerce")
        assert web["decision"] == "review"
        plain = score(api, 3)
        assert plain["decision"] == "pass"
        assert not any(r["feature"].startswith("rule:") for r in plain["reasons"])

        alerts = alerts_by_id(api)
        assert alerts["tx-1"]["decision"] == "alert"
        assert alerts["tx-1"]["reasons"][0]["feature"] == "rule:big"
        assert alerts["tx-2"]["decision"] == "review"
        assert "tx-3" not in alerts
        metrics = api.get("/metrics").text
        assert 'fraudstream_rule_decisions_total{action="alert",rule="big"} 1.0' in metrics
        assert 'fraudstream_rule_decisions_total{action="review",rule="web"} 1.0' in metrics
        assert "fraudstream_alerts_total 1.0" in metrics  # the review is not an alert

        # A second version without "big", then back to the first as version 3.
        assert api.put("/v1/rules", json={"rules": RULES["rules"][1:]}).json()["version"] == 2
        assert score(api, 8, amount=1000.0)["decision"] == "pass"
        rolled = api.post("/v1/rules/rollback/1")
        assert rolled.status_code == 200, rolled.text
        assert rolled.json()["version"] == 3
        assert [v["version"] for v in api.get("/v1/rules/versions").json()] == [3, 2, 1]
        assert api.post("/v1/rules/rollback/99").status_code == 404

    # Restarted over the same data directory: the set in force is the same, and applies.
    with (
        serve(settings=settings(data, "1.0")) as server,
        httpx.Client(base_url=server.url, timeout=30) as api,
    ):
        in_force = api.get("/v1/rules").json()
        assert in_force["version"] == 3
        assert [rule["name"] for rule in in_force["rules"]] == ["big", "web", "house"]
        again = score(api, 10, amount=2000.0, card_id="card-other")
        assert again["decision"] == "alert"
        assert again["reasons"][0] == {"feature": "rule:big", "value": 3.0, "contribution": 0.0}


def test_allow_suppresses_an_alert_the_model_raises(tmp_path: Path) -> None:
    # Threshold 0: the model alerts on every card's first transaction.
    with (
        serve(settings=settings(tmp_path / "data", "0.0")) as server,
        httpx.Client(base_url=server.url, timeout=30) as api,
    ):
        assert api.put("/v1/rules", json=RULES).status_code == 200
        allowed = score(api, 10, terminal_id="term-house", card_id="card-a")
        assert allowed["decision"] == "pass"
        assert allowed["reasons"][0]["feature"] == "rule:house"
        # No cooldown was marked: the same card elsewhere is alerted by the model.
        assert score(api, 11, card_id="card-a")["decision"] == "alert"
        alerts = alerts_by_id(api)
        assert "tx-10" not in alerts
        assert alerts["tx-11"]["decision"] == "alert"


@pytest.mark.parametrize(
    ("rules", "location", "message"),
    [
        (
            [
                {"name": "ok", "text": "amount > 1 -> alert"},
                {"name": "x", "text": "amnt > 1 -> alert"},
            ],
            ["body", "rules", 1, "text"],
            "unknown field 'amnt'",
        ),
        (
            [{"name": "ok", "text": 'amount > "high" -> alert'}],
            ["body", "rules", 0, "text"],
            "amount",
        ),
        ([{"name": "Bad Name", "text": "amount > 1 -> alert"}], ["body", "rules", 0, "name"], ""),
        ([{"name": "a", "text": "x" * 1_001}], ["body", "rules", 0, "text"], "1000"),
        (
            [{"name": "a", "text": "amount > 1 -> alert"}] * 2,
            ["body", "rules"],
            "unique",
        ),
    ],
)
def test_a_bad_rule_is_a_422_naming_its_field(
    server_url: str, rules: list[dict[str, str]], location: list[object], message: str
) -> None:
    with httpx.Client(base_url=server_url, timeout=30) as api:
        answer = api.put("/v1/rules", json={"rules": rules})
        assert answer.status_code == 422, answer.text
        detail = answer.json()["detail"][0]
        assert detail["loc"] == location
        assert message in detail["msg"]
        assert api.get("/v1/rules").json()["version"] == 0


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("rules-422")
    with serve(settings=settings(data, "0.5")) as server:
        yield server.url


def test_an_altered_rules_file_is_refused_at_start_with_a_clear_log(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with (
        serve(settings=settings(data, "1.0")) as server,
        httpx.Client(base_url=server.url, timeout=30) as api,
    ):
        assert api.put("/v1/rules", json=RULES).status_code == 200
    stored = orjson.loads((data / "rules.json").read_bytes())
    stored["history"][-1] = stored["history"][-1].replace("900", "9")
    (data / "rules.json").write_bytes(orjson.dumps(stored))

    port = free_port()
    env = {**settings(data, "1.0"), "FRAUDSTREAM_PORT": str(port)}
    role = RoleProcess("serve", env, tmp_path / "serve.log").start()
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, None, None)
        with httpx.Client(base_url=url, timeout=30) as api:
            # Refused, not applied: the altered rule alerts on nothing.
            assert score(api, 1, amount=100.0)["decision"] == "pass"
            refused = api.get("/v1/rules")
            assert refused.status_code == 409
            assert "signature does not verify" in refused.json()["detail"]
            # A new version written by an administrator puts rules back in force.
            assert api.put("/v1/rules", json=RULES).json()["version"] == 2
            assert score(api, 2, amount=1000.0)["decision"] == "alert"
    finally:
        role.stop()
    assert "refused the stored rule set, serving without rules" in role.log_tail()
    assert "signature does not verify" in role.log_tail()
