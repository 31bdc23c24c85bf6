"""`fraudstream drift`: the label-free drift alarm, day by day, over a replayed data set
(registered on the CLI in `service.cli`)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from models.drift import Cell
from models.durations import parse_duration
from models.learners import DEFAULT_LEARNER
from pipelines.offline.datasets import read_dataset
from pipelines.offline.drift_replay import DriftDay, drift_days
from pipelines.offline.evaluation import EvaluationOptions
from service.bootstrap import drift_policy
from service.cli_common import console, progress_bar, user_errors
from service.settings import Settings

_EPOCH = date(1970, 1, 1)


def drift(
    data: Annotated[Path, typer.Option(help="Labelled data set (handbook columns or JSONL)")],
    label_delay: Annotated[str, typer.Option(help="Labels are revealed this late")] = "7d",
    model: Annotated[str, typer.Option(help="Online learner whose scores are watched")] = (
        DEFAULT_LEARNER
    ),
    reference_days: Annotated[int | None, typer.Option(min=1)] = None,
    gap_days: Annotated[int | None, typer.Option(min=0)] = None,
    warmup_days: Annotated[int | None, typer.Option(min=0)] = None,
    cell_features: Annotated[int | None, typer.Option(min=1, max=4)] = None,
    min_cards: Annotated[int | None, typer.Option(min=1)] = None,
    threshold: Annotated[
        float | None,
        typer.Option(help="Alarm past this cell surprise (-log10 corrected p)", min=0),
    ] = None,
    novelty_threshold: Annotated[
        float | None,
        typer.Option(help="Alarm past this novelty surprise (-log10 Poisson p)", min=0),
    ] = None,
) -> None:
    """Replay a data set as the service scores it and print each day's drift report: the
    largest feature PSI, the score's PSI, the novel card-days, the most surprising cell and
    the alarm. Options left out take the service's FRAUDSTREAM_DRIFT_* settings."""
    with user_errors():
        policy = drift_policy(Settings())
        policy = replace(
            policy,
            reference_days=_or(reference_days, policy.reference_days),
            gap_days=_or(gap_days, policy.gap_days),
            warmup_days=_or(warmup_days, policy.warmup_days),
            ways=_or(cell_features, policy.ways),
            min_cards=_or(min_cards, policy.min_cards),
            alarm_surprise=policy.alarm_surprise if threshold is None else threshold,
            novelty_surprise=(
                policy.novelty_surprise if novelty_threshold is None else novelty_threshold
            ),
        )
        options = EvaluationOptions(learner=model, label_delay=parse_duration(label_delay))
        dataset = read_dataset(data)
        with progress_bar("replaying", len(dataset.transactions)) as advance:
            days = drift_days(dataset, options, policy, progress=advance)
    console.print(_table(days))
    alarms = [day for day in days if day.report.alarm]
    console.print(
        f"{len(alarms)} alarm day(s) of {len(days)} reported"
        + (f"; first: {_date(alarms[0].report.day)}" if alarms else "")
    )


def _or(value: int | None, default: int) -> int:
    return default if value is None else value


def _date(day: int) -> str:
    return (_EPOCH + timedelta(days=day)).isoformat()


def _table(days: list[DriftDay]) -> Table:
    table = Table(
        "day",
        "transactions",
        "fraud tx by scenario",
        "max PSI",
        "score PSI",
        "novel card-days",
        "novelty",
        "surprise",
        "alarm",
        "most surprising cell",
    )
    for day in days:
        report = day.report
        cell = report.cells[0] if report.cells else None
        found = report.novelty
        worst = max(report.features, key=lambda feature: feature.psi, default=None)
        table.add_row(
            _date(report.day),
            f"{report.transactions:,}",
            ", ".join(f"{s}: {n}" for s, n in day.scenario_transactions.items()) or "-",
            "-" if worst is None else f"{worst.psi:.3f} {worst.name}",
            f"{report.score_psi:.3f}",
            "-" if found is None else f"{found.novel} of {found.card_days:,}",
            "-" if found is None else f"{found.surprise:.1f}",
            "-" if cell is None else f"{cell.surprise:.1f}",
            "ALARM" if report.alarm else "",
            "-" if cell is None else _cell_text(cell),
        )
    return table


def _cell_text(cell: Cell) -> str:
    where = " & ".join(
        f"{name} in [{low:g}, {high:g})"
        for name, low, high in zip(cell.features, cell.lower, cell.upper, strict=True)
    )
    return f"{cell.cards} cards ({cell.expected:.1f} expected): {where}"
