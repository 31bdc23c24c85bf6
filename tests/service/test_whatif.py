"""The what-if (`fraudstream whatif`, `GET /v1/whatif`) against an independent pandas
computation over the same stored rows."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from service.cli import app
from tests.pipelines.retrain.retrain_data import SHADOW, parquet_store
from tests.service.client import api_client

runner = CliRunner()
DAYS = 14
THRESHOLDS = (0.3, 0.6)
BUDGETS = (5, 20)


def _stored_rows(root: Path, challenger: str | None = None) -> pd.DataFrame:
    """The matured window, read straight from the Parquet files with pandas alone (with
    ``challenger``, its scores in place of the champion's, over the rows it scored)."""
    rows = pd.concat(pd.read_parquet(path) for path in sorted(root.glob("date=*/*.parquet")))
    end = (rows["label_time"].max() - pd.Timedelta(days=7)).floor("D")
    start = end - pd.Timedelta(days=DAYS)
    rows = rows.loc[(rows["event_time"] >= start) & (rows["event_time"] < end)]
    rows = rows.sort_values(["label_time", "sequence"]).drop_duplicates(
        "transaction_id", keep="last"
    )
    window: pd.DataFrame = rows.assign(day=rows["event_time"].dt.floor("D"))
    if challenger is not None:
        shadowed = window["challenger_scores"].map(lambda pairs: dict(pairs or ()).get(challenger))
        window = window.assign(score=shadowed).dropna(subset=["score"])
    return window.reset_index(drop=True)


def _expected_thresholds(rows: pd.DataFrame) -> list[dict[str, float]]:
    expected = []
    for threshold in THRESHOLDS:
        alerted = rows["score"] > threshold
        caught = (alerted & rows["is_fraud"]).sum()
        bothered = rows.loc[alerted & ~rows["is_fraud"]].groupby("day")["card_id"].nunique()
        expected.append(
            {
                "threshold": threshold,
                "alerts_per_day": alerted.sum() / DAYS,
                "precision": caught / alerted.sum(),
                "recall": caught / rows["is_fraud"].sum(),
                "legitimate_cards_bothered_per_day": bothered.sum() / DAYS,
            }
        )
    return expected


def _expected_budgets(rows: pd.DataFrame) -> list[dict[str, float]]:
    known = rows.loc[rows["is_fraud"]].groupby("card_id")["label_time"].min()
    expected = []
    for budget in BUDGETS:
        precisions, flagged, hits, compromised = [], 0, 0, 0
        for day, today in rows.groupby("day"):
            best = today.groupby("card_id")["score"].max().to_dict()
            fraud = today.groupby("card_id")["is_fraud"].any().to_dict()
            compromised += sum(fraud.values())
            eligible = [card for card in best if not known.get(card, day) < day]
            ranked = sorted(eligible, key=lambda card: (-best[card], card))[:budget]
            found = sum(fraud[card] for card in ranked)
            precisions.append(found / budget)
            flagged += len(ranked)
            hits += found
        expected.append(
            {
                "cards_per_day": budget,
                "card_precision": sum(precisions) / len(precisions),
                "alert_precision": hits / flagged,
                "card_recall": hits / compromised,
            }
        )
    return expected


def test_whatif_equals_pandas_over_the_stored_rows(tmp_path: Path) -> None:
    parquet_store(tmp_path / "offline")
    arguments = ["whatif", "--days", str(DAYS), "--json"]
    arguments += [f"--threshold={value}" for value in THRESHOLDS]
    arguments += [f"--budget={value}" for value in BUDGETS]
    result = runner.invoke(app, arguments, env={"FRAUDSTREAM_DATA_DIR": str(tmp_path)})
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)

    rows = _stored_rows(tmp_path / "offline")
    assert answer["transactions"] == len(rows)
    assert answer["frauds"] == int(rows["is_fraud"].sum()) > 0
    for got, want in zip(answer["thresholds"], _expected_thresholds(rows), strict=True):
        assert got == pytest.approx(want)
    for got, want in zip(answer["budgets"], _expected_budgets(rows), strict=True):
        assert got == pytest.approx(want)


def test_a_challengers_whatif_equals_pandas_over_its_own_stored_scores(tmp_path: Path) -> None:
    parquet_store(tmp_path / "offline")
    env = {"FRAUDSTREAM_DATA_DIR": str(tmp_path)}
    arguments = ["whatif", "--days", str(DAYS), "--json", "--challenger", SHADOW]
    arguments += [f"--threshold={value}" for value in THRESHOLDS]
    arguments += [f"--budget={value}" for value in BUDGETS]
    result = runner.invoke(app, arguments, env=env)
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)

    rows = _stored_rows(tmp_path / "offline", SHADOW)
    assert answer["challenger"] == SHADOW
    assert answer["transactions"] == len(rows) > 0
    for got, want in zip(answer["thresholds"], _expected_thresholds(rows), strict=True):
        assert got == pytest.approx(want)
    for got, want in zip(answer["budgets"], _expected_budgets(rows), strict=True):
        assert got == pytest.approx(want)
    champion = json.loads(
        runner.invoke(
            app, [a for a in arguments if a not in ("--challenger", SHADOW)], env=env
        ).stdout
    )
    assert champion["challenger"] is None
    assert champion["thresholds"] != answer["thresholds"]  # another model's scores

    unknown = runner.invoke(app, ["whatif", "--challenger", "m-nobody"], env=env)
    assert unknown.exit_code == 1
    assert "no matured label of a transaction m-nobody scored" in unknown.output


def test_whatif_prints_tables_and_says_when_there_is_nothing_to_read(tmp_path: Path) -> None:
    env = {"FRAUDSTREAM_DATA_DIR": str(tmp_path)}
    empty = runner.invoke(app, ["whatif"], env=env)
    assert empty.exit_code == 1
    assert "no matured label" in empty.output

    parquet_store(tmp_path / "offline")
    shown = runner.invoke(app, ["whatif", "--days", "7"], env=env)
    assert shown.exit_code == 0, shown.output
    assert "alerting every score above a threshold" in shown.output
    assert "0.5 (in force)" in shown.output
    assert "investigating the day's riskiest cards" in shown.output


@pytest.mark.anyio
async def test_the_api_answers_what_the_command_prints(tmp_path: Path) -> None:
    async with api_client(data_dir=tmp_path) as (client, _):
        empty = await client.get("/v1/whatif")
        assert empty.status_code == 200
        assert (empty.json()["transactions"], empty.json()["thresholds"]) == (0, [])

        parquet_store(tmp_path / "offline")
        answer = await client.get("/v1/whatif", params={"days": DAYS})
        assert answer.status_code == 200, answer.text
        bad = await client.get("/v1/whatif", params={"days": 0})
        assert bad.status_code == 422
        assert "days" in bad.text
        shadow = await client.get("/v1/whatif", params={"days": DAYS, "challenger": SHADOW})
        assert shadow.json()["challenger"] == SHADOW
        assert shadow.json()["transactions"] > 0
        hostile = await client.get("/v1/whatif", params={"challenger": "../etc"})
        assert hostile.status_code == 422
        assert "challenger" in hostile.text
    printed = runner.invoke(
        app, ["whatif", "--days", str(DAYS), "--json"], env={"FRAUDSTREAM_DATA_DIR": str(tmp_path)}
    )
    assert printed.exit_code == 0, printed.output
    assert answer.json() == json.loads(printed.stdout)
    assert len(answer.json()["thresholds"]) == 19
