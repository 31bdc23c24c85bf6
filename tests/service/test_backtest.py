"""The backtest (`fraudstream backtest`, `POST /v1/rules/backtest`) against an independent
pandas computation over the same stored rows, and its refusals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from typer.testing import CliRunner

from pipelines.bench.server_process import free_port, serve
from pipelines.stream.kafka_clients import KafkaSettings
from pipelines.stream.topics import Topics
from service.cli import app
from tests.pipelines.retrain.retrain_data import parquet_store
from tests.pipelines.stream.distributed_harness import (
    ADMIN,
    ALERT_THRESHOLD,
    publish_model,
    role_env,
    trained_learner,
)
from tests.service.client import api_client

runner = CliRunner()
DAYS = 10
IN_FORCE = 0.5


def _stored_rows(root: Path) -> pd.DataFrame:
    """The matured window, read straight from the Parquet files with pandas alone."""
    rows = pd.concat(pd.read_parquet(path) for path in sorted(root.glob("date=*/*.parquet")))
    end = (rows["label_time"].max() - pd.Timedelta(days=7)).floor("D")
    rows = rows.loc[(rows["event_time"] >= end - pd.Timedelta(days=DAYS))]
    rows = rows.loc[rows["event_time"] < end]
    rows = rows.sort_values(["label_time", "sequence"]).drop_duplicates(
        "transaction_id", keep="last"
    )
    window: pd.DataFrame = rows.assign(day=rows["event_time"].dt.floor("D"))
    return window.reset_index(drop=True)


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def _figures(rows: pd.DataFrame, alerted: pd.Series, days: int) -> dict[str, Any]:
    fraud = rows["is_fraud"]
    card_days = (
        pd.DataFrame(
            {"alerted": alerted, "fraud": fraud, "card_id": rows["card_id"], "day": rows["day"]}
        )
        .groupby(["day", "card_id"])[["alerted", "fraud"]]
        .max()
    )
    hits = int((card_days["alerted"] & card_days["fraud"]).sum())
    bothered = rows.loc[alerted & ~fraud].groupby("day")["card_id"].nunique().sum()
    return {
        "alerts": int(alerted.sum()),
        "alerts_per_day": alerted.sum() / days,
        "precision": _ratio(int((alerted & fraud).sum()), int(alerted.sum())),
        "recall": _ratio(int((alerted & fraud).sum()), int(fraud.sum())),
        "card_precision": _ratio(hits, int(card_days["alerted"].sum())),
        "card_recall": _ratio(hits, int(card_days["fraud"].sum())),
        "legitimate_cards_bothered_per_day": bothered / days,
    }


def _cards(rows: pd.DataFrame, mask: pd.Series) -> set[str]:
    return set(rows.loc[mask, "card_id"])


def _period(rows: pd.DataFrame, model: pd.Series, draft: pd.Series, days: int) -> dict[str, Any]:
    fraud = rows["is_fraud"]
    return {
        "transactions": len(rows),
        "frauds": int(fraud.sum()),
        "model": _figures(rows, model, days),
        "with_draft": _figures(rows, draft, days),
        "change": {
            "frauds_added": int((fraud & draft & ~model).sum()),
            "frauds_lost": int((fraud & model & ~draft).sum()),
            "fraud_cards_added": len(_cards(rows, fraud & draft) - _cards(rows, fraud & model)),
            "fraud_cards_lost": len(_cards(rows, fraud & model) - _cards(rows, fraud & draft)),
            "legitimate_cards_bothered": len(
                _cards(rows, ~fraud & draft) - _cards(rows, ~fraud & model)
            ),
            "legitimate_cards_spared": len(
                _cards(rows, ~fraud & model) - _cards(rows, ~fraud & draft)
            ),
        },
    }


def _flat(figures: dict[str, Any], keys: dict[str, Any]) -> dict[str, Any]:
    """The leaves of ``figures`` that ``keys`` has, by their path (approx compares flat)."""
    flat: dict[str, Any] = {}
    for key, shape in keys.items():
        if isinstance(shape, dict):
            flat |= {f"{key}.{k}": v for k, v in _flat(figures[key], shape).items()}
        else:
            flat[key] = figures[key]
    return flat


DRAFTS: list[tuple[list[str], Any]] = [
    # A rule's condition, written again with pandas over the stored feature columns.
    (
        ["--rule", "amount > 100 and card_tx_count_1d >= 3 -> alert"],
        lambda rows, model: model | ((rows["f_amount"] > 100) & (rows["f_card_tx_count_1d"] >= 3)),
    ),
    (
        ["--rule", "card_terminal_first_use == 1 or amount >= 250 -> review"],
        lambda rows, model: (
            model | (rows["f_card_terminal_first_use"] == 1) | (rows["f_amount"] >= 250)
        ),
    ),
    (
        ["--rule", "not amount > 40 -> allow"],
        lambda rows, model: model & ~(rows["f_amount"] <= 40),
    ),
    (["--threshold", "0.3"], lambda rows, model: rows["score"] > 0.3),
]


@pytest.mark.parametrize(
    ("draft", "expected"), DRAFTS, ids=["alert", "review", "allow", "threshold"]
)
def test_backtest_equals_pandas_over_the_stored_rows(
    tmp_path: Path, draft: list[str], expected: Any
) -> None:
    parquet_store(tmp_path / "offline")
    result = runner.invoke(
        app,
        ["backtest", *draft, "--days", str(DAYS), "--json"],
        env={"FRAUDSTREAM_DATA_DIR": str(tmp_path)},
    )
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)

    rows = _stored_rows(tmp_path / "offline")
    model = rows["score"] > IN_FORCE
    with_draft = expected(rows, model)
    want = _period(rows, model, with_draft, DAYS)
    assert _flat(answer["overall"], want) == pytest.approx(_flat(want, want))
    assert want["change"]["frauds_added"] + want["change"]["frauds_lost"] > 0
    assert answer["alert_threshold"] == IN_FORCE
    days = sorted(rows["day"].unique())
    assert len(answer["daily"]) == DAYS == len(days)
    for day, got_day in zip(days, answer["daily"], strict=True):
        today = (rows["day"] == day).to_numpy()
        want_day = _period(rows.loc[today], model[today], with_draft[today], 1)
        assert pd.Timestamp(got_day["start"]) == day
        assert _flat(got_day, want_day) == pytest.approx(_flat(want_day, want_day))
    if draft[0] == "--threshold":
        assert answer["matched"] is None
    elif "allow" not in draft[1]:
        # With no model alert, what the draft alerts is what its condition matches.
        assert answer["matched"] == int(expected(rows, model & False).sum()) > 0


def test_backtest_prints_tables_and_refuses_what_it_cannot_answer(tmp_path: Path) -> None:
    env = {"FRAUDSTREAM_DATA_DIR": str(tmp_path)}
    empty = runner.invoke(app, ["backtest", "--threshold", "0.4"], env=env)
    assert empty.exit_code == 1
    assert "no matured label" in empty.output

    parquet_store(tmp_path / "offline")
    shown = runner.invoke(app, ["backtest", "--rule", "amount > 500 -> alert"], env=env)
    assert shown.exit_code == 0, shown.output
    assert "today" in shown.output
    assert "frauds added" in shown.output
    for arguments, message in (
        ([], "exactly one of --rule or --threshold"),
        (["--rule", "amount > 1", "--threshold", "0.2"], "exactly one"),
        (["--rule", 'country == "RU" -> alert'], "does not keep 'country'"),
        (["--rule", "amount >> 1 -> alert"], "unexpected '>'"),
        (["--rule", "velocity > 1 -> alert"], "unknown field 'velocity'"),
    ):
        refused = runner.invoke(app, ["backtest", *arguments], env=env)
        assert refused.exit_code == 2, arguments
        assert message in refused.output.replace("\n", " "), refused.output


@pytest.mark.anyio
async def test_the_api_answers_what_the_command_prints_and_names_a_bad_field(
    tmp_path: Path,
) -> None:
    rule = 'amount > 100 and terminal_id != "T-1" -> review'
    async with api_client(data_dir=tmp_path) as (client, _):
        empty = await client.post("/v1/rules/backtest", json={"rule": rule})
        assert empty.status_code == 200, empty.text
        assert (empty.json()["overall"], empty.json()["daily"]) == (None, [])

        parquet_store(tmp_path / "offline")
        answer = await client.post("/v1/rules/backtest", json={"rule": rule, "days": DAYS})
        assert answer.status_code == 200, answer.text
        refusals: dict[str, list[dict[str, object]]] = {
            "rule": [
                {"rule": 'merchant_category in ("5967") -> alert'},
                {"rule": "amount > -> alert"},
                {"rule": ""},
                {"rule": 7},
            ],
            "threshold": [{"threshold": 1.5}, {"threshold": "0.3"}],
            "days": [{"threshold": 0.3, "days": 0}, {"threshold": 0.3, "days": 400}],
            "body": [{}, {"rule": "amount > 1 -> alert", "threshold": 0.3}, {"rules": "x"}],
        }
        for field, bodies in refusals.items():
            for body in bodies:
                bad = await client.post("/v1/rules/backtest", json=body)
                assert bad.status_code == 422, body
                assert field in bad.json()["detail"][0]["loc"], bad.text
        unstored = await client.post(
            "/v1/rules/backtest", json={"rule": 'channel == "pos" -> allow'}
        )
        assert "does not keep 'channel'" in unstored.json()["detail"][0]["msg"]
    printed = runner.invoke(
        app,
        ["backtest", "--rule", rule, "--days", str(DAYS), "--json"],
        env={"FRAUDSTREAM_DATA_DIR": str(tmp_path)},
    )
    assert printed.exit_code == 0, printed.output
    assert answer.json() == json.loads(printed.stdout)
    assert answer.json()["action"] == "review"
    assert answer.json()["overall"]["change"]["frauds_added"] > 0


def test_the_api_role_backtests_over_the_learners_data_directory(
    tmp_path: Path, kafka_settings: KafkaSettings, redis_url: str, topics: Topics
) -> None:
    """Distributed mode: an API replica sharing the learner's data directory reads its store;
    the command line reads the rules in force from Redis, as the replica does."""
    parquet_store(tmp_path / "offline")
    publish_model(redis_url, topics, trained_learner())
    env = role_env(kafka_settings, redis_url, topics, FRAUDSTREAM_DATA_DIR=str(tmp_path))
    rule = "card_terminal_first_use == 1 -> alert"
    body = {"rule": rule, "days": DAYS}
    in_force = {"rules": [{"name": "large", "text": "amount >= 250 -> alert"}]}
    with serve(settings=env, role="api") as server, httpx.Client(base_url=server.url) as http:
        assert http.put("/v1/rules", json=in_force, headers=ADMIN).status_code == 200
        assert http.post("/v1/rules/backtest", json=body).status_code == 401
        answer = http.post("/v1/rules/backtest", json=body, headers=ADMIN)
        assert answer.status_code == 200, answer.text
        bad = http.post(
            "/v1/rules/backtest", json={"rule": 'country == "FR" -> alert'}, headers=ADMIN
        )
        assert bad.status_code == 422
        assert bad.json()["detail"][0]["loc"] == ["body", "rule"]
    printed = runner.invoke(
        app,
        ["backtest", "--rule", rule, "--days", str(DAYS), "--json"],
        env={"FRAUDSTREAM_DATA_DIR": str(tmp_path), **env},
    )
    assert printed.exit_code == 0, printed.output
    assert answer.json() == json.loads(printed.stdout)
    assert answer.json()["rules_in_force"] == ["large"]
    assert answer.json()["alert_threshold"] == ALERT_THRESHOLD != IN_FORCE
    assert answer.json()["overall"]["change"]["frauds_added"] > 0


@pytest.mark.anyio
async def test_the_baseline_is_the_model_with_the_rules_in_force(tmp_path: Path) -> None:
    """With rules enabled, a draft is judged against today's decisions: the threshold and the
    rules in force, under the same precedence as scoring (the draft last); a rule the store
    cannot evaluate is left out and named. The command line reads the same set from the data
    directory."""
    parquet_store(tmp_path / "offline")
    rules = [
        {"name": "large", "text": "amount >= 250 -> alert"},
        {"name": "abroad", "text": 'country == "RU" -> review'},
        {"name": "draft-off", "text": "amount > 0 -> alert", "enabled": False},
    ]
    allow = "not amount > 40 -> allow"
    draft = {"rule": allow, "days": DAYS}
    async with api_client(data_dir=tmp_path) as (client, _):
        assert (await client.put("/v1/rules", json={"rules": rules})).status_code == 200
        answer = (await client.post("/v1/rules/backtest", json=draft)).json()
    assert answer["rules_in_force"] == ["large"]
    assert answer["rules_not_stored"] == ["abroad"]

    rows = _stored_rows(tmp_path / "offline")
    today = (rows["score"] > IN_FORCE) | (rows["f_amount"] >= 250)
    with_draft = today & ~(rows["f_amount"] <= 40)
    want = _period(rows, today, with_draft, DAYS)
    assert _flat(answer["overall"], want) == pytest.approx(_flat(want, want))
    # The alert rule in force adds alerts the model alone would not raise.
    assert today.sum() > (rows["score"] > IN_FORCE).sum()

    printed = runner.invoke(
        app,
        ["backtest", "--rule", allow, "--days", str(DAYS), "--json"],
        env={"FRAUDSTREAM_DATA_DIR": str(tmp_path)},
    )
    assert printed.exit_code == 0, printed.output
    assert json.loads(printed.stdout) == answer


def test_the_command_says_so_when_the_redis_holding_the_rules_does_not_answer(
    tmp_path: Path,
) -> None:
    parquet_store(tmp_path / "offline")
    env = {
        "FRAUDSTREAM_DATA_DIR": str(tmp_path),
        "FRAUDSTREAM_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "FRAUDSTREAM_SECRET_KEY": "k" * 40,
    }
    printed = runner.invoke(app, ["backtest", "--threshold", "0.3", "--days", str(DAYS)], env=env)
    assert printed.exit_code == 1
    assert "rules in force are kept in Redis" in printed.output
    assert "Traceback" not in printed.output
