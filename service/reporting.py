"""Rich tables for the evaluation the command line prints: overall, per week, rejected rows.

The bench figures have their own module, `service.bench_reports`.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable

import pandas as pd
from rich.console import Console
from rich.table import Table

from models.blend import EITHER
from models.period_metrics import EvaluationMetrics, PeriodMetrics
from pipelines.offline.datasets import LabelledDataset
from pipelines.offline.evaluation import EvaluationRun
from pipelines.retrain.loop_run import LoopRun

SHOWN_REJECTED_ROWS = 5
CHAMPION_TOLERANCE = 0.01
"""How far below the better of its parts the served champion may be, in weekly AP."""


def figures_table(title: str, headings: Iterable[str], labels: Collection[str] = ()) -> Table:
    """A table of figures, right-aligned so that digits line up, but for the ``labels``
    columns, which name what a row is."""
    table = Table(title=title)
    for heading in headings:
        table.add_column(heading, justify="left" if heading in labels else "right")
    return table


def figure(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3f}"


def _period_row(label: str, period: PeriodMetrics) -> list[str]:
    return [
        label,
        f"{period.transactions:,}",
        f"{period.frauds:,}",
        figure(period.average_precision),
        figure(period.roc_auc),
        figure(period.card_precision_at_k),
        figure(period.alert_precision),
        figure(period.transaction_recall),
        figure(period.card_recall),
    ]


def print_scenarios(console: Console, metrics: EvaluationMetrics) -> None:
    """Weekly AP of each fraud scenario (its frauds among the legitimate rows), if known."""
    scenarios = sorted(
        {kind for week in metrics.weekly for kind in week.scenario_average_precision}
    )
    if not scenarios:
        return
    table = figures_table(
        "AP per fraud scenario",
        ("period", *(f"scenario {kind}" for kind in scenarios)),
        ("period",),
    )
    for label, period in (
        *((f"week of {week.start:%Y-%m-%d}", week) for week in metrics.weekly),
        ("whole period", metrics.overall),
    ):
        by_kind = period.scenario_average_precision
        table.add_row(label, *(figure(by_kind.get(kind, math.nan)) for kind in scenarios))
    console.print(table)


def print_evaluation(console: Console, run: EvaluationRun, dataset: LabelledDataset) -> None:
    """The per-week and overall metrics of a replay, its throughput and any rejected rows."""
    metrics = run.metrics
    k = metrics.k
    delay_days = run.options.label_delay.total_seconds() / 86_400
    table = figures_table(
        f"{run.options.learner}, labels {delay_days:g} days late",
        (
            "period",
            "transactions",
            "frauds",
            "AP",
            "ROC AUC",
            f"CP@{k}",
            "alert precision",
            "tx recall",
            "card recall",
        ),
        labels=("period",),
    )
    for week in metrics.weekly:
        partial = " (partial)" if week.partial else ""
        table.add_row(*_period_row(f"week of {week.start:%Y-%m-%d}{partial}", week))
    table.add_section()
    overall = metrics.overall
    table.add_row(*_period_row(f"{overall.start:%Y-%m-%d} to {overall.end:%Y-%m-%d}", overall))
    console.print(table)
    console.print(
        f"mean weekly AP {figure(metrics.mean_weekly_average_precision)}, "
        f"mean weekly CP@{k} {figure(metrics.mean_weekly_card_precision_at_k)} "
        f"(handbook's rule for known cards: "
        f"{figure(metrics.mean_weekly_card_precision_at_k_detected)}); "
        f"alert budget {k} cards a day"
    )
    print_scenarios(console, metrics)
    for warning in metrics.warnings:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    console.print(
        f"replayed {len(run.scores):,} transactions in {run.seconds:.1f} s "
        f"({run.transactions_per_second:,.0f} per second: features, scoring and learning)"
    )
    if dataset.rejected:
        console.print(
            f"[yellow]{len(dataset.rejected):,} of {dataset.rows_read:,} rows failed "
            "validation and were not replayed:[/]"
        )
        for error in dataset.rejected[:SHOWN_REJECTED_ROWS]:
            console.print(f"  row {error.row}: {error.message}", highlight=False)


def print_feedback_gain(
    console: Console, without: EvaluationMetrics, with_feedback: EvaluationMetrics, cards: int
) -> None:
    """Week by week, the same replay's AP and CP@k without and with investigators' feedback."""
    k = without.k
    table = figures_table(
        f"investigators' feedback ({cards} cards a day)",
        ("period", "AP without", "AP with", f"CP@{k} without", f"CP@{k} with"),
        labels=("period",),
    )
    for before, after in zip(without.weekly, with_feedback.weekly, strict=True):
        partial = " (partial)" if before.partial else ""
        table.add_row(
            f"week of {before.start:%Y-%m-%d}{partial}",
            figure(before.average_precision),
            figure(after.average_precision),
            figure(before.card_precision_at_k),
            figure(after.card_precision_at_k),
        )
    table.add_section()
    table.add_row(
        "mean of full weeks",
        figure(without.mean_weekly_average_precision),
        figure(with_feedback.mean_weekly_average_precision),
        figure(without.mean_weekly_card_precision_at_k),
        figure(with_feedback.mean_weekly_card_precision_at_k),
    )
    console.print(table)
    ap_gain = with_feedback.mean_weekly_average_precision - without.mean_weekly_average_precision
    cp_gain = (
        with_feedback.mean_weekly_card_precision_at_k - without.mean_weekly_card_precision_at_k
    )
    console.print(f"feedback gain: AP {ap_gain:+.3f}, CP@{k} {cp_gain:+.3f}")


def _blends(scores: pd.DataFrame, start: object, end: object) -> str:
    """The blends served in a week: the batch weights (one, or the lowest and highest), and
    ``either`` if it served."""
    if "blend" not in scores:
        return ""
    week = scores.loc[(scores["timestamp"] >= start) & (scores["timestamp"] < end), "blend"]
    names = set(week.dropna())
    if not names:
        return "n/a"
    weights = sorted(float(name) for name in names if name != EITHER)
    shown = []
    if weights:
        low, high = weights[0], weights[-1]
        shown.append(f"{low:g}" if low == high else f"{low:g}-{high:g}")
    if EITHER in names:
        shown.append(EITHER)
    return ", ".join(shown)


def print_parts(console: Console, run: LoopRun, online: str) -> None:
    """The served scores' weekly AP beside each part's alone, and how far below the better
    part they fell: the served champion is to be the best of both in every full week."""
    table = figures_table(
        "served and its parts, weekly AP",
        ("week of", "blend", "served", f"online ({online})", "batch", "below the better"),
        ("week of",),
    )
    worst: tuple[float, str] = (-math.inf, "")
    for served, alone, batch in zip(
        run.metrics.weekly, run.online_metrics.weekly, run.batch_metrics.weekly, strict=True
    ):
        label = f"{served.start:%Y-%m-%d}{' (partial)' if served.partial else ''}"
        gap = max(alone.average_precision, batch.average_precision) - served.average_precision
        if not served.partial and not math.isnan(gap) and gap > worst[0]:
            worst = (gap, label)
        table.add_row(
            label,
            _blends(run.scores, served.start, served.end),
            figure(served.average_precision),
            figure(alone.average_precision),
            figure(batch.average_precision),
            figure(gap),
        )
    console.print(table)
    if worst[1]:
        met = "met" if worst[0] <= CHAMPION_TOLERANCE else "NOT met"
        console.print(
            f"at most {CHAMPION_TOLERANCE} AP below the better part in every full week: {met} "
            f"(largest shortfall {worst[0]:.3f}, week of {worst[1]})",
            highlight=False,
        )
