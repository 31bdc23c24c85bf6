"""The command line: simulate, evaluate and bench, with user errors as one clear line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from models.learners import DEFAULT_LEARNER
from pipelines.lifecycle.registry import ModelRegistry
from pipelines.lifecycle.registry_index import FileIndex
from service.cli import app
from service.settings import Settings
from service.signing import embedded_key
from tests.pipelines.retrain.retrain_data import parquet_store

runner = CliRunner()


def test_simulate_then_evaluate_with_scores_and_report(tmp_path: Path) -> None:
    data = tmp_path / "tx.csv.gz"
    simulated = runner.invoke(
        app,
        ["simulate", str(data), "--customers", "200", "--terminals", "400", "--days", "50"],
    )
    assert simulated.exit_code == 0, simulated.output
    assert "wrote" in simulated.output

    window = ["--test-start", "2018-05-01", "--test-end", "2018-05-20"]
    output, metrics = _evaluated_with_outputs(tmp_path, data, "--label-delay", "7d", *window)
    assert "mean weekly AP" in output
    assert metrics["learner"] == DEFAULT_LEARNER
    assert metrics["overall"]["start"].startswith("2018-05-01")
    assert metrics["overall"]["end"].startswith("2018-05-21")


def test_evaluate_with_retrains_writes_scores_and_a_report_of_both_learners(
    tmp_path: Path,
) -> None:
    data = tmp_path / "tx.csv.gz"
    arguments = ["simulate", str(data), "--customers", "50", "--terminals", "100"]
    simulated = runner.invoke(app, [*arguments, "--days", "40"])
    assert simulated.exit_code == 0, simulated.output
    output, metrics = _evaluated_with_outputs(
        tmp_path, data, "--retrain-every", "7d", "--test-start", "2018-05-01", "--k", "5"
    )
    assert "online learner" in output
    assert metrics["served"] == "champion"
    assert metrics["retrains"]
    assert metrics["online"]["k"] == 5
    assert metrics["overall"]["start"].startswith("2018-05-01")


def _evaluated_with_outputs(tmp_path: Path, data: Path, *flags: str) -> tuple[str, dict[str, Any]]:
    """``evaluate --data data *flags``, with scores and a report checked and read back."""
    scores, report = tmp_path / "scores.csv", tmp_path / "report"
    outputs = ["--scores-out", str(scores), "--report", str(report)]
    evaluated = runner.invoke(app, ["evaluate", "--data", str(data), *flags, *outputs])
    assert evaluated.exit_code == 0, evaluated.output
    assert f"scores written to {scores}" in evaluated.output
    assert len(pd.read_csv(scores)) == len(pd.read_csv(data))
    assert (report / "report.png").read_bytes().startswith(b"\x89PNG")
    metrics: dict[str, Any] = json.loads((report / "metrics.json").read_text())
    return evaluated.output, metrics


def test_evaluate_with_feedback_replays_without_and_with_investigators(tmp_path: Path) -> None:
    data = tmp_path / "tx.csv.gz"
    arguments = ["simulate", str(data), "--customers", "200", "--terminals", "400"]
    assert runner.invoke(app, [*arguments, "--days", "50"]).exit_code == 0
    report = tmp_path / "report"
    evaluated = runner.invoke(
        app,
        [
            "evaluate",
            "--data", str(data),
            "--test-start", "2018-05-01",
            "--feedback", "5",
            "--feedback-delay", "2d",
            "--report", str(report),
        ],
    )  # fmt: skip
    assert evaluated.exit_code == 0, evaluated.output
    assert "investigators' feedback (5 cards a day)" in evaluated.output
    assert "feedback gain: AP" in evaluated.output
    metrics = json.loads((report / "metrics.json").read_text())
    assert (metrics["feedback_cards_per_day"], metrics["feedback_delay_days"]) == (5, 2.0)

    with_retrain = runner.invoke(
        app, ["evaluate", "--data", str(data), "--feedback", "5", "--retrain-every", "7d"]
    )
    assert with_retrain.exit_code == 2
    assert "not with --retrain-every" in with_retrain.output


def test_contract_layout_round_trips_through_evaluate(tmp_path: Path) -> None:
    data = tmp_path / "tx.jsonl"
    arguments = ["simulate", str(data), "--customers", "50", "--terminals", "100"]
    simulated = runner.invoke(app, [*arguments, "--days", "40", "--layout", "contract"])
    assert simulated.exit_code == 0, simulated.output
    evaluated = runner.invoke(app, ["evaluate", "--data", str(data), "--model", "hoeffding"])
    assert evaluated.exit_code == 0, evaluated.output


def test_retrain_with_a_warm_restart_registers_the_batch_model_and_the_replayed_learner(
    tmp_path: Path,
) -> None:
    parquet_store(tmp_path / "offline")
    env = {
        "FRAUDSTREAM_DATA_DIR": str(tmp_path),
        "FRAUDSTREAM_RETRAIN_MIN_LABELS": "100",
        "FRAUDSTREAM_LEARNER": "hoeffding",
    }
    arguments = ["retrain", "--train-days", "7", "--test-days", "3", "--model", "logistic"]
    result = runner.invoke(app, [*arguments, "--warm-restart"], env=env)
    assert result.exit_code == 0, result.output
    assert "warm restart: m000002 registered" in result.output
    models = tmp_path / "models"
    key = embedded_key(Settings(data_dir=tmp_path))  # the one `retrain` made and kept
    registry = ModelRegistry(models, FileIndex(models / "index.json"), key)
    batch, warm = registry.record("m000001"), registry.record("m000002")
    assert (batch.kind, warm.kind, warm.learner) == ("batch", "online", "hoeffding")
    assert warm.data_window == batch.data_window
    assert warm.labels_learned == batch.labels_learned  # the same window's rows
    assert registry.champion() != "m000002"  # never promoted directly
    plain = runner.invoke(app, arguments, env=env)
    assert plain.exit_code == 0, plain.output
    assert "warm restart" not in plain.output


def test_missing_columns_are_named_without_a_traceback(tmp_path: Path) -> None:
    data = tmp_path / "bad.csv"
    data.write_text("TRANSACTION_ID,TX_DATETIME,CUSTOMER_ID\n1,2018-04-01 00:00:00,3\n")
    result = runner.invoke(app, ["evaluate", "--data", str(data)])
    assert result.exit_code == 2
    assert "TX_AMOUNT" in result.output
    assert "Traceback" not in result.output


def test_rejected_rows_are_counted_and_shown(tmp_path: Path) -> None:
    data = tmp_path / "tx.csv"
    assert (
        runner.invoke(app, ["simulate", str(data), "--customers", "50", "--days", "45"]).exit_code
        == 0
    )
    frame = pd.read_csv(data)
    frame.loc[3, "TX_AMOUNT"] = -1.0
    frame.to_csv(data, index=False)
    result = runner.invoke(app, ["evaluate", "--data", str(data)])
    assert result.exit_code == 0, result.output
    assert "1 of" in result.output
    assert "row 5" in result.output  # line 5 of the file: header plus the fourth data row


def test_user_errors_are_one_line(tmp_path: Path) -> None:
    cases = [
        ["evaluate", "--data", str(tmp_path / "nothing.csv")],
        ["evaluate", "--data", str(tmp_path / "x.csv"), "--model", "svm"],
        ["evaluate", "--data", str(tmp_path / "x.csv"), "--label-delay", "soon"],
        ["evaluate", "--data", str(tmp_path / "x.csv"), "--params", "[1]"],
        ["bench", "core", "--learner", "svm"],
    ]
    (tmp_path / "x.csv").write_text("irrelevant\n")
    for arguments in cases:
        result = runner.invoke(app, arguments)
        assert result.exit_code == 2, (arguments, result.output)
        assert "error:" in result.output
        assert "Traceback" not in result.output


def test_a_day_that_is_not_one_names_its_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FRAUDSTREAM_DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "x.csv").write_text("irrelevant\n")
    cases = {
        "--test-end": ["evaluate", "--data", str(tmp_path / "x.csv"), "--test-end", "20 May"],
        "--as-of": ["retrain", "--as-of", "2018-05-32"],
    }
    for flag, arguments in cases.items():
        result = runner.invoke(app, arguments)
        assert result.exit_code == 2, (arguments, result.output)
        assert f"{flag}: not a date in YYYY-MM-DD form" in result.output


def test_bench_core_prints_the_ratio_to_the_bare_model() -> None:
    result = runner.invoke(
        app,
        [
            "bench",
            "core",
            "--learner",
            "logistic",
            "--transactions",
            "3000",
            "--training-transactions",
            "3000",
            "--rounds",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "logistic" in result.output
    assert "x" in result.output.split("logistic", 1)[1]


def test_importing_the_command_line_leaves_matplotlib_unloaded() -> None:
    # A fresh interpreter: every role starts from service.cli, and only a report draws.
    root = Path(__file__).resolve().parents[2]
    script = "import service.cli, sys; print('matplotlib' in sys.modules)"
    found = subprocess.run(
        [sys.executable, "-c", script], cwd=root, check=True, capture_output=True, text=True
    )
    assert found.stdout.strip() == "False"
