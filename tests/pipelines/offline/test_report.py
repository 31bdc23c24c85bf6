from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.period_metrics import EvaluationMetrics, evaluate_scores
from pipelines.offline.report import ReportPaths, report_figure, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def scored() -> pd.DataFrame:
    """Three weeks of scored transactions with a champion and a weaker challenger score."""
    rng = np.random.default_rng(3)
    rows = 6_000
    start = pd.Timestamp("2018-08-08", tz="UTC")
    timestamp = start + pd.to_timedelta(np.sort(rng.uniform(0, 18 * 86_400, rows)), unit="s")
    fraud = rng.random(rows) < 0.03
    return pd.DataFrame(
        {
            "timestamp": timestamp,
            "card_id": [f"C{card:03d}" for card in rng.integers(0, 400, rows)],
            "score": np.clip(rng.normal(0.2 + 0.5 * fraud, 0.15), 0.0, 1.0),
            "challenger": np.clip(rng.normal(0.2 + 0.2 * fraud, 0.15), 0.0, 1.0),
            "is_fraud": fraud,
            "label_known_at": timestamp + pd.Timedelta(days=7),
        }
    )


@pytest.fixture
def evaluation(scored: pd.DataFrame) -> EvaluationMetrics:
    return evaluate_scores(scored, k=20)


def test_writes_json_and_png(
    tmp_path: Path, scored: pd.DataFrame, evaluation: EvaluationMetrics
) -> None:
    paths = write_report(
        evaluation,
        scored,
        tmp_path / "run",
        title="Test report",
        extra={"learner": "logistic", "transactions_per_second": 12_345.6},
    )

    assert paths == ReportPaths(json=tmp_path / "run/metrics.json", png=tmp_path / "run/report.png")
    document = json.loads(paths.json.read_text())
    assert document["learner"] == "logistic"
    assert document["transactions_per_second"] == 12_345.6
    assert document["k"] == 20
    assert document["overall"]["average_precision"] == pytest.approx(
        evaluation.overall.average_precision
    )
    assert document["mean_weekly_card_precision_at_k"] == pytest.approx(
        evaluation.mean_weekly_card_precision_at_k
    )
    assert [week["start"] for week in document["weekly"]] == [
        "2018-08-08T00:00:00+00:00",
        "2018-08-15T00:00:00+00:00",
        "2018-08-22T00:00:00+00:00",
    ]
    png = paths.png.read_bytes()
    assert png.startswith(PNG_MAGIC)
    assert len(png) > 10_000


def test_json_keys_are_sorted(
    tmp_path: Path, scored: pd.DataFrame, evaluation: EvaluationMetrics
) -> None:
    paths = write_report(evaluation, scored, tmp_path, title="t", extra={"a_first": 1})

    document = json.loads(paths.json.read_text())

    assert list(document) == sorted(document)
    assert list(document["overall"]) == sorted(document["overall"])


def test_plots_several_score_columns(
    tmp_path: Path, scored: pd.DataFrame, evaluation: EvaluationMetrics
) -> None:
    paths = write_report(
        evaluation,
        scored,
        tmp_path,
        title="Champion vs challenger",
        score_columns=("score", "challenger"),
    )

    assert paths.png.read_bytes().startswith(PNG_MAGIC)


def test_undefined_weeks_still_render(tmp_path: Path, scored: pd.DataFrame) -> None:
    honest = scored.assign(is_fraud=False)

    paths = write_report(evaluate_scores(honest, k=20), honest, tmp_path, title="No fraud")

    document = json.loads(paths.json.read_text())
    assert document["overall"]["average_precision"] is None
    assert paths.png.read_bytes().startswith(PNG_MAGIC)


def test_extra_may_not_overwrite_metrics(
    tmp_path: Path, scored: pd.DataFrame, evaluation: EvaluationMetrics
) -> None:
    with pytest.raises(ValueError, match="overall"):
        write_report(evaluation, scored, tmp_path, title="t", extra={"overall": 1.0})


def test_the_report_never_loads_pyplot(tmp_path: Path) -> None:
    # A fresh interpreter: pyplot imported by any other test would hide a regression here.
    script = (
        "import sys\n"
        "import pandas as pd\n"
        "from models.period_metrics import evaluate_scores\n"
        "from pipelines.offline.report import write_report\n"
        "t = pd.to_datetime(['2018-08-08 10:00', '2018-08-08 11:00'], utc=True)\n"
        "frame = pd.DataFrame({'timestamp': t, 'card_id': ['a', 'b'], 'score': [0.9, 0.1],\n"
        "    'is_fraud': [True, False], 'label_known_at': t})\n"
        "write_report(evaluate_scores(frame), frame, __import__('pathlib').Path(sys.argv[1]),\n"
        "    title='t')\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
    )
    root = Path(__file__).resolve().parents[3]

    subprocess.run([sys.executable, "-c", script, str(tmp_path)], cwd=root, check=True)


def test_the_figure_says_how_it_was_measured_and_shows_each_scenario(
    scored: pd.DataFrame,
) -> None:
    rng = np.random.default_rng(5)
    with_scenarios = scored.assign(
        scenario=np.where(scored["is_fraud"], rng.integers(1, 4, len(scored)), 0)
    )
    metrics = evaluate_scores(with_scenarios, k=20)
    y_true = with_scenarios["is_fraud"].to_numpy(dtype=bool)
    scores = {"score": with_scenarios["score"].to_numpy(dtype=float)}

    figure = report_figure(metrics, y_true, scores, "run", "data ref.csv; labels 7d late")

    text = figure.get_suptitle()
    assert "data ref.csv; labels 7d late" in text
    assert f"fraud rate {y_true.mean():.2%}" in text
    # 18 days: the third week is partial, and the figure says so.
    assert "left out of the weekly means" in text
    assert len(figure.axes) == 3
    assert [line.get_label() for line in figure.axes[2].get_lines()] == [
        "scenario 1",
        "scenario 2",
        "scenario 3",
    ]
    plain = report_figure(evaluate_scores(scored, k=20), y_true, scores, "run", "")
    assert len(plain.axes) == 2
