"""What evaluate prints for a served champion: each part's weekly AP beside the served one's."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
from rich.console import Console

from models.period_metrics import EvaluationMetrics, evaluate_scores
from pipelines.retrain.loop_run import LoopRun
from service.reporting import print_parts

START = datetime(2018, 8, 8, tzinfo=UTC)
END = datetime(2018, 8, 22, tzinfo=UTC)


def _run(served: str) -> LoopRun:
    """Two weeks in which the online part ranks every fraud first and the batch part last."""
    rng = np.random.default_rng(0)
    count = 2_000
    timestamps = pd.Timestamp(START) + pd.to_timedelta(np.sort(rng.uniform(0, 14, count)), "D")
    is_fraud = rng.random(count) < 0.05
    online = np.where(is_fraud, 0.9, 0.1) + rng.uniform(0, 0.05, count)
    batch = np.where(is_fraud, 0.1, 0.9) + rng.uniform(0, 0.05, count)
    frame = pd.DataFrame(
        {
            "timestamp": timestamps,
            "card_id": [f"c{index % 400}" for index in range(count)],
            "score": online if served == "online" else batch,
            "online_score": online,
            "batch_score": batch,
            "blend": "0" if served == "online" else "1",
            "is_fraud": is_fraud,
            "label_known_at": timestamps + pd.Timedelta(days=7),
        }
    )

    def measured(column: str) -> EvaluationMetrics:
        return evaluate_scores(frame.assign(score=frame[column]), k=10, start=START, end=END)

    return LoopRun(
        served="blend",
        metrics=measured("score"),
        online_metrics=measured("online_score"),
        batch_metrics=measured("batch_score"),
        scores=frame,
    )


def _printed(run: LoopRun) -> str:
    console = Console(record=True, width=200)
    print_parts(console, run, "binned")
    return console.export_text()


def test_a_champion_serving_the_better_part_meets_the_target() -> None:
    printed = _printed(_run("online"))

    assert "week of" in printed
    assert "online (binned)" in printed
    assert "2018-08-08" in printed
    assert "2018-08-15" in printed
    assert "every full week: met (largest shortfall 0.000" in printed


def test_a_champion_serving_the_worse_part_is_reported_below_the_better_one() -> None:
    printed = _printed(_run("batch"))

    assert "every full week: NOT met" in printed
    row = next(line for line in printed.splitlines() if line.strip().startswith("│ 2018-08-08"))
    cells = [cell.strip() for cell in row.strip().strip("│").split("│")]
    week, weight, served, online, batch, below = cells
    assert (week, weight, online) == ("2018-08-08", "1", "1.000")
    assert served == batch
    assert float(below) == round(1.0 - float(served), 3)


def test_the_blends_of_a_week_show_the_range_of_weights_and_either() -> None:
    run = _run("online")
    chosen = np.resize(np.array(["0.75", "either", "0.5", "0.75"], dtype=object), len(run.scores))
    run.scores["blend"] = chosen

    row = next(
        line for line in _printed(run).splitlines() if line.strip().startswith("│ 2018-08-08")
    )

    assert "0.5-0.75, either" in row
