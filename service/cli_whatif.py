"""`fraudstream whatif`: alerts a day, precision and recall at each threshold and daily card
budget, over the offline store's matured days, with no service running."""

from __future__ import annotations

from typing import Annotated

import typer

from models.operating_points import DEFAULT_BUDGETS, DEFAULT_THRESHOLDS
from pipelines.retrain.matured_rows import what_if
from service.cli_common import console, no_matured_labels, user_errors
from service.reporting import figure, figures_table
from service.responses import WhatIfResponse
from service.retraining import offline_store
from service.settings import Settings


def whatif(
    days: Annotated[int, typer.Option(help="Matured days to look back over", min=1)] = 28,
    threshold: Annotated[
        list[float] | None,
        typer.Option(help="A threshold to show (repeatable; default 0.05 to 0.95)", min=0, max=1),
    ] = None,
    budget: Annotated[
        list[int] | None,
        typer.Option(help="A daily card budget to show (repeatable)", min=1),
    ] = None,
    challenger: Annotated[
        str | None,
        typer.Option(help="A shadow challenger's version: its scores instead of the champion's"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables")] = False,
) -> None:
    """What each alert threshold and each daily card budget would have given over the last
    matured days of the offline store: alerts a day, precision, recall, customers bothered."""
    settings = Settings()
    with user_errors():
        store = offline_store(settings, ())
        found = what_if(
            store,
            days,
            settings.label_delay,
            threshold or DEFAULT_THRESHOLDS,
            budget or DEFAULT_BUDGETS,
            challenger,
        )
    if found is None:
        no_matured_labels(
            store.root, "" if challenger is None else f" of a transaction {challenger} scored"
        )
    # Under an alert budget the threshold follows the scores: no fixed one is in force.
    in_force = None if settings.alert_budget is not None else settings.alert_threshold
    if as_json:
        print(WhatIfResponse.of(found, in_force, challenger).model_dump_json())
        return
    whose = "the champion as served" if challenger is None else f"challenger {challenger}"
    console.print(
        f"{whose}: {found.transactions:,} labelled transactions ({found.frauds:,} fraud) from "
        f"{found.start:%Y-%m-%d %H:%M} to {found.end:%Y-%m-%d %H:%M} UTC"
    )
    table = figures_table(
        "alerting every score above a threshold",
        ("threshold", "alerts a day", "precision", "recall", "legit cards bothered a day"),
    )
    for point in found.thresholds:
        marker = " (in force)" if point.threshold == in_force else ""
        table.add_row(
            f"{point.threshold:g}{marker}",
            f"{point.alerts_per_day:,.1f}",
            figure(point.precision),
            figure(point.recall),
            f"{point.legitimate_cards_bothered_per_day:,.1f}",
        )
    console.print(table)
    table = figures_table(
        "investigating the day's riskiest cards",
        ("cards a day", "card precision (CP@k)", "precision of flagged", "card recall"),
    )
    for budgeted in found.budgets:
        table.add_row(
            str(budgeted.cards_per_day),
            figure(budgeted.card_precision),
            figure(budgeted.alert_precision),
            figure(budgeted.card_recall),
        )
    console.print(table)
