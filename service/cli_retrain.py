"""`fraudstream retrain`: the batch retrain job on the data directory, with no service running
(registered on the CLI in `service.cli`)."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from models.durations import parse_duration
from pipelines.retrain.book import RetrainJob
from service.cli_common import console, errors, progress_bar, user_errors, utc_day
from service.logs import configure_logging
from service.retraining import retrain_options, standalone_jobs
from service.settings import Settings


def retrain(
    train_days: Annotated[int, typer.Option(help="Days of labels the model trains on")] = 28,
    delay: Annotated[str, typer.Option(help="Label delay: the gap before the hold-out")] = "7d",
    test_days: Annotated[int, typer.Option(help="Days of the hold-out period")] = 7,
    seed: Annotated[int, typer.Option(help="Training seed: same window and seed, same model")] = 0,
    model: Annotated[str, typer.Option(help="hgb (gradient-boosted trees) or logistic")] = "hgb",
    margin: Annotated[
        float | None, typer.Option(help="Hold-out AP gain needed to promote (default: setting)")
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option(help="Train as of this day, YYYY-MM-DD (default: the latest label stored)"),
    ] = None,
    schedule: Annotated[
        bool, typer.Option(help="Keep running: retrain every FRAUDSTREAM_RETRAIN_EVERY")
    ] = False,
    warm_restart: Annotated[
        bool | None,
        typer.Option(
            "--warm-restart/--no-warm-restart",
            help="Also replay a fresh online learner over the training window and register it "
            "(default: FRAUDSTREAM_RETRAIN_WARM_RESTART)",
        ),
    ] = None,
) -> None:
    """Train a batch model on the offline store, compare it with the champion on a hold-out,
    register it, and promote it only on a measured gain (else it stays a challenger).

    Works on the data directory with no service running; a running `serve` retrains itself
    (POST /v1/retrain, FRAUDSTREAM_RETRAIN_EVERY).
    """
    with user_errors():
        settings = Settings()
        configure_logging(settings.log_level)
        options = retrain_options(
            settings,
            train_days=train_days,
            delay=parse_duration(delay),
            test_days=test_days,
            seed=seed,
            algorithm=model,
            margin=margin,
            warm_restart=warm_restart,
        )
        day = utc_day(as_of, "--as-of")
        jobs = standalone_jobs(settings, options)
        every = settings.retrain_every
        if schedule and every is None:
            raise ValueError("--schedule needs FRAUDSTREAM_RETRAIN_EVERY (e.g. 7d)")
    while True:
        with progress_bar("retraining", 100) as advance:
            job = jobs.run_now(
                "schedule" if schedule else "cli",
                as_of=day,
                progress=lambda done, _step: advance(round(done * 100)),
            )
        _print_job(job)
        if not schedule:
            if job.state != "succeeded":
                raise typer.Exit(code=1)
            return
        assert every is not None
        time.sleep(every.total_seconds())


def _print_job(job: RetrainJob) -> None:
    if job.state != "succeeded":
        errors.print(f"[bold red]retrain {job.id} failed:[/] {job.error}", highlight=False)
        return
    summary: dict[str, Any] = job.metrics
    candidate, champion = summary["candidate"], summary["champion"]
    console.print(
        f"retrain {job.id} as of {job.as_of:%Y-%m-%d}: {job.version} registered, "
        f"decision [bold]{job.decision}[/]"
    )
    for name, figures in (("candidate", candidate), ("champion", champion)):
        console.print(
            f"  {name:9} hold-out AP {figures['mean_weekly_average_precision']}, "
            f"CP@k {figures['mean_weekly_card_precision_at_k']}",
            highlight=False,
        )
    if job.warm_restart_version:
        console.print(
            f"warm restart: {job.warm_restart_version} registered, a fresh online learner "
            "replayed over the training window (promote it to serve it)"
        )
    if job.report:
        console.print(f"report written to {job.report}")
