"""Write an evaluation's figures to disk: ``metrics.json`` for machines, ``report.png`` for people.

The figure is drawn on a bare :class:`~matplotlib.figure.Figure` with the Agg canvas, so
importing or calling this module never selects a pyplot backend or touches global state.
matplotlib is imported only when a figure is drawn: every command-line process and retrain job
imports this module, and most never draw one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import orjson
import pandas as pd
from sklearn.metrics import precision_recall_curve

from models.metrics import average_precision
from models.period_metrics import EvaluationMetrics, PeriodMetrics

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


@dataclass(frozen=True)
class ReportPaths:
    """Where :func:`write_report` put its files."""

    json: Path
    png: Path


def write_report(
    metrics: EvaluationMetrics,
    frame: pd.DataFrame,
    directory: Path,
    *,
    title: str,
    extra: Mapping[str, object] | None = None,
    score_columns: Sequence[str] = ("score",),
    context: str = "",
) -> ReportPaths:
    """Write ``metrics.json`` and ``report.png`` into ``directory`` (created if needed).

    ``frame`` holds the scored rows the metrics came from; only those inside the evaluated
    period enter the precision-recall curve. Each of ``score_columns`` (e.g. a champion and
    its challengers) is drawn as its own curve. ``extra`` (learner name, throughput, ...) is
    merged into the JSON and may not shadow a metric. ``context`` (the data set, label delay,
    test window) is printed under the title, with the period's fraud rate and the metrics'
    warnings, so that the figure cannot be read without them.
    """
    directory.mkdir(parents=True, exist_ok=True)
    paths = ReportPaths(json=directory / "metrics.json", png=directory / "report.png")
    paths.json.write_bytes(_metrics_json(metrics, extra or {}))
    period = _test_period(metrics, frame)
    scores = {name: period[name].to_numpy(dtype=float) for name in score_columns}
    figure = report_figure(metrics, period["is_fraud"].to_numpy(dtype=bool), scores, title, context)
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415

    FigureCanvasAgg(figure)  # attaches itself to the figure; savefig then renders with Agg
    figure.savefig(paths.png, format="png")
    return paths


def _metrics_json(metrics: EvaluationMetrics, extra: Mapping[str, object]) -> bytes:
    document = metrics.to_dict()
    clashes = sorted(document.keys() & extra.keys())
    if clashes:
        raise ValueError(f"extra would overwrite metric fields: {', '.join(clashes)}")
    options = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY
    return orjson.dumps({**document, **extra}, option=options) + b"\n"


def _test_period(metrics: EvaluationMetrics, frame: pd.DataFrame) -> pd.DataFrame:
    timestamp = frame["timestamp"]
    inside = (timestamp >= metrics.overall.start) & (timestamp < metrics.overall.end)
    return frame.loc[inside]


def report_figure(
    metrics: EvaluationMetrics,
    y_true: npt.NDArray[np.bool_],
    scores: Mapping[str, npt.NDArray[np.float64]],
    title: str,
    context: str,
) -> Figure:
    """The precision-recall curves, the weekly bars and, when the rows carry fraud scenarios,
    each scenario's weekly AP; the title says how it was measured."""
    from matplotlib.figure import Figure  # noqa: PLC0415

    by_scenario = any(week.scenario_average_precision for week in metrics.weekly)
    panels = 3 if by_scenario else 2
    figure = Figure(figsize=(6.5 * panels, 6.2), dpi=120, layout="constrained")
    axes = figure.subplots(1, panels)
    plot_precision_recall(axes[0], y_true, scores)
    plot_weekly(axes[1], metrics)
    if by_scenario:
        plot_weekly_scenarios(axes[2], metrics)
    rate = y_true.mean() if y_true.size else float("nan")
    lines = [
        title,
        f"{context}; fraud rate {rate:.2%}" if context else f"fraud rate {rate:.2%}",
        *metrics.warnings,
    ]
    figure.suptitle("\n".join(lines), fontsize=9)
    return figure


def plot_precision_recall(
    axes: Axes, y_true: npt.ArrayLike, scores: Mapping[str, npt.ArrayLike]
) -> None:
    """Draw one precision-recall curve per named score, with its AP in the legend.

    A scorer whose AP is undefined (a single class in ``y_true``) is named in the legend but
    has no curve, since sklearn cannot draw one without positives.
    """
    labels = np.asarray(y_true, dtype=bool)
    for name, values in scores.items():
        ap = average_precision(labels, values)
        if np.isnan(ap):
            axes.plot([], [], label=f"{name} (AP undefined)")
            continue
        precision, recall, _ = precision_recall_curve(
            labels, np.asarray(values, dtype=float), drop_intermediate=True
        )
        axes.step(recall, precision, where="post", label=f"{name} (AP = {ap:.3f})")
    if labels.size:
        rate = labels.mean()
        axes.axhline(rate, color="grey", linestyle=":", label=f"random scorer (AP = {rate:.3f})")
    axes.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="Recall", ylabel="Precision")
    axes.set_title("Precision-recall, test period")
    axes.legend(loc="upper right")
    axes.grid(alpha=0.3)


def plot_weekly(axes: Axes, metrics: EvaluationMetrics) -> None:
    """Grouped bars of weekly AP and CP@k, labelled by each week's start date."""
    weeks = metrics.weekly
    positions = np.arange(len(weeks))
    width = 0.4
    series = {
        "Average precision": [week.average_precision for week in weeks],
        f"Card precision@{metrics.k}": [week.card_precision_at_k for week in weeks],
    }
    for offset, (name, values) in zip((-width / 2, width / 2), series.items(), strict=True):
        # An undefined week keeps its slot, drawn empty rather than as zero.
        heights = np.nan_to_num(values, nan=0.0)
        bars = axes.bar(positions + offset, heights, width, label=name)
        axes.bar_label(bars, labels=[_bar_text(value) for value in values], fontsize=8)
    axes.set_xticks(positions, [_week_label(week) for week in weeks])
    axes.set(ylim=(0, 1.1), xlabel="Week starting (UTC)", ylabel="Score")
    axes.set_title(
        f"Weekly: mean AP {_bar_text(metrics.mean_weekly_average_precision)}, "
        f"mean CP@{metrics.k} {_bar_text(metrics.mean_weekly_card_precision_at_k)}"
    )
    axes.legend(loc="upper right")
    axes.grid(axis="y", alpha=0.3)


def plot_weekly_scenarios(axes: Axes, metrics: EvaluationMetrics) -> None:
    """One line per fraud scenario: its AP week by week, so a forgotten pattern shows."""
    weeks = metrics.weekly
    scenarios = sorted({kind for week in weeks for kind in week.scenario_average_precision})
    positions = np.arange(len(weeks))
    for kind in scenarios:
        values = [week.scenario_average_precision.get(kind, np.nan) for week in weeks]
        axes.plot(positions, values, marker="o", label=f"scenario {kind}")
    axes.set_xticks(positions, [_week_label(week) for week in weeks])
    axes.set(ylim=(0, 1.05), xlabel="Week starting (UTC)", ylabel="Average precision")
    axes.set_title("Weekly AP per fraud scenario (its frauds among legitimate rows)")
    axes.legend(loc="lower right")
    axes.grid(alpha=0.3)


def _week_label(week: PeriodMetrics) -> str:
    day = week.start.strftime("%Y-%m-%d")
    return f"{day}\n(partial)" if week.partial else day


def _bar_text(value: float) -> str:
    return "n/a" if np.isnan(value) else f"{value:.2f}"
