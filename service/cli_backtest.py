"""`fraudstream backtest`: a draft rule or alert threshold over the offline store's matured
days, beside today's model and rules at the threshold in force, with no service running."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import redis
import typer

from models.backtest import Backtest, Figures
from service.backtesting import (
    MAX_DAYS,
    BacktestRequest,
    BacktestResponse,
    rules_in_force,
    run_backtest,
)
from service.cli_common import console, errors, no_matured_labels, user_errors
from service.reporting import figure, figures_table
from service.retraining import offline_store
from service.settings import Settings


def backtest(
    rule: Annotated[
        str | None, typer.Option(help='A draft rule, e.g. "amount > 1000 -> review"')
    ] = None,
    threshold: Annotated[
        float | None, typer.Option(help="A draft alert threshold instead", min=0, max=1)
    ] = None,
    days: Annotated[
        int, typer.Option(help="Matured days to look back over", min=1, max=MAX_DAYS)
    ] = 28,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables")] = False,
) -> None:
    """What a draft rule (or threshold) would have changed over the last matured days of the
    offline store: alerts a day, precision, recall, frauds added or lost, legitimate cards
    bothered or spared, beside the model at FRAUDSTREAM_ALERT_THRESHOLD and the rules in force
    (in Redis when FRAUDSTREAM_REDIS_URL is set, else in the data directory)."""
    settings = Settings()
    # The configured threshold: under an alert budget the live one follows the scores, and
    # only a running service knows it (`POST /v1/rules/backtest` uses it).
    in_force = settings.alert_threshold
    if (rule is None) == (threshold is None):
        errors.print("[bold red]error:[/] give exactly one of --rule or --threshold")
        raise typer.Exit(code=2)
    with user_errors():
        request = BacktestRequest(rule=rule, threshold=threshold, days=days)
        draft = request.draft(settings)
        try:
            rules = rules_in_force(settings)
        except redis.RedisError as error:
            errors.print(
                "[bold red]error:[/] the rules in force are kept in Redis "
                f"(FRAUDSTREAM_REDIS_URL), which did not answer: {error}",
                highlight=False,
            )
            raise typer.Exit(code=1) from None
        found = run_backtest(settings, draft, days, in_force, rules)
    if found is None:
        no_matured_labels(offline_store(settings, ()).root)
    if as_json:
        print(BacktestResponse.of(request, draft, in_force, found).model_dump_json())
        return
    _print(found, rule or f"threshold {threshold:g}")


def _rules_said(found: Backtest) -> str:
    said = ""
    if found.rules_in_force:
        said += f" with the rules in force ({', '.join(found.rules_in_force)})"
    if found.rules_not_stored:
        said += (
            f"; left out, reading fields the store does not keep: "
            f"{', '.join(found.rules_not_stored)}"
        )
    return said


def _print(found: Backtest, draft: str) -> None:
    overall = found.overall
    console.print(
        f"{overall.transactions:,} labelled transactions ({overall.frauds:,} fraud) over "
        f"{overall.days:g} days from {overall.start:%Y-%m-%d}; today the model alerts at "
        f"{found.threshold_in_force:g}"
        + _rules_said(found)
        + ("" if found.matched is None else f"; the rule matches {found.matched:,}"),
        highlight=False,
    )
    table = figures_table(draft, ("", "today", "with the draft"), labels=("",))
    for label, value in _FIGURES:
        table.add_row(label, value(overall.model), value(overall.with_draft))
    console.print(table)
    change = overall.change
    console.print(
        f"frauds added {change.frauds_added:,} (on {change.fraud_cards_added:,} cards), "
        f"lost {change.frauds_lost:,} (on {change.fraud_cards_lost:,} cards); legitimate cards "
        f"bothered {change.legitimate_cards_bothered:,}, spared {change.legitimate_cards_spared:,}",
        highlight=False,
    )
    table = figures_table(
        "day by day (today -> with the draft)",
        (
            "day",
            "transactions",
            "frauds",
            "alerts",
            "precision",
            "recall",
            "frauds +/-",
            "legit cards +/-",
        ),
        labels=("day",),
    )
    for day in found.daily:
        table.add_row(
            f"{day.start:%Y-%m-%d}",
            f"{day.transactions:,}",
            f"{day.frauds:,}",
            f"{day.model.alerts:,} -> {day.with_draft.alerts:,}",
            f"{figure(day.model.precision)} -> {figure(day.with_draft.precision)}",
            f"{figure(day.model.recall)} -> {figure(day.with_draft.recall)}",
            f"+{day.change.frauds_added} -{day.change.frauds_lost}",
            f"+{day.change.legitimate_cards_bothered} -{day.change.legitimate_cards_spared}",
        )
    console.print(table)


_FIGURES: tuple[tuple[str, Callable[[Figures], str]], ...] = (
    ("alerts a day", lambda f: f"{f.alerts_per_day:,.1f}"),
    ("precision (transactions)", lambda f: figure(f.precision)),
    ("recall (transactions)", lambda f: figure(f.recall)),
    ("card precision (card-days)", lambda f: figure(f.card_precision)),
    ("card recall (card-days)", lambda f: figure(f.card_recall)),
    ("legit cards bothered a day", lambda f: f"{f.legitimate_cards_bothered_per_day:,.1f}"),
)
