"""`fraudstream drift`: one report per ended day past the reference window, over a replay."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from service.cli import app

runner = CliRunner()


def test_drift_prints_a_report_for_each_ended_day(tmp_path: Path) -> None:
    data = tmp_path / "small.csv"
    simulated = runner.invoke(
        app,
        ["simulate", str(data), "--customers", "80", "--terminals", "160", "--days", "8"],
    )
    assert simulated.exit_code == 0, simulated.output
    result = runner.invoke(
        app,
        [
            "drift",
            "--data",
            str(data),
            "--reference-days",
            "2",
            "--gap-days",
            "0",
            "--warmup-days",
            "0",
            "--cell-features",
            "2",
        ],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    # Days 0 to 7: day 2 is the first with a full reference, day 7 never ends.
    days = re.findall(r"2018-04-0(\d)", result.output.split("alarm day(s)")[0])
    assert sorted(set(days)) == ["3", "4", "5", "6", "7"]
    assert re.search(r"\d+ alarm day\(s\) of 5 reported", result.output)
    # Each day's novel card-days among the cards that paid that day.
    assert len(re.findall(r"\d+ of [\d,]+", result.output)) == 5


def test_drift_refuses_a_missing_data_set(tmp_path: Path) -> None:
    result = runner.invoke(app, ["drift", "--data", str(tmp_path / "none.csv")])
    assert result.exit_code == 2
    assert "none.csv" in result.output.replace("\n", "")  # the console wraps a long path
