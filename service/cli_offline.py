"""The commands that work on data sets and the data directory, with no service running:
`simulate`, `evaluate` and `retrain` (registered on the CLI in `service.cli`)."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from models.durations import parse_duration
from models.learners import DEFAULT_LEARNER, RECIPES
from models.period_metrics import EvaluationMetrics
from models.simulator import SimulationConfig
from models.simulator import simulate as run_simulation
from pipelines.offline.dataset_writer import write_dataset
from pipelines.offline.datasets import read_dataset
from pipelines.offline.evaluation import EvaluationOptions, EvaluationRun, write_scores
from pipelines.offline.evaluation import evaluate as run_evaluation
from pipelines.offline.report import write_report
from pipelines.retrain.book import RetrainJob
from pipelines.retrain.job import RetrainOptions
from pipelines.retrain.loop import evaluate_with_retrain
from pipelines.retrain.loop_run import RetrainStep, Served
from service.cli_common import console, errors, progress_bar, user_errors
from service.logs import configure_logging
from service.reporting import (
    print_evaluation,
    print_parts,
)
from service.retraining import retrain_options, standalone_jobs
from service.settings import Settings


def _utc_day(value: str | None, flag: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.combine(date.fromisoformat(value), datetime.min.time(), tzinfo=UTC)
    except ValueError:
        raise ValueError(f"{flag}: not a date in YYYY-MM-DD form: {value!r}") from None


def _params(text: str | None) -> dict[str, Any]:
    if text is None:
        return {}
    try:
        params = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"--params: not valid JSON ({error.msg})") from None
    if not isinstance(params, dict):
        raise ValueError('--params: expected a JSON object such as {"learning_rate": 0.05}')
    return params


def simulate(
    output: Annotated[
        Path, typer.Argument(help="File (.csv, .csv.gz, .parquet, .jsonl) or directory (.pkl)")
    ],
    customers: Annotated[int, typer.Option(help="Number of cards")] = 5000,
    terminals: Annotated[int, typer.Option(help="Number of terminals")] = 10000,
    days: Annotated[int, typer.Option(help="Days to simulate")] = 183,
    start_date: Annotated[str, typer.Option(help="First day, YYYY-MM-DD")] = "2018-04-01",
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same data")] = 0,
    layout: Annotated[
        str, typer.Option(help="handbook (public columns) or contract (our JSON, .jsonl only)")
    ] = "handbook",
    new_pattern_day: Annotated[
        int | None,
        typer.Option(help="Day from which a new fraud pattern (night card-testing) starts"),
    ] = None,
) -> None:
    """Generate a labelled transaction data set (the Fraud Detection Handbook's process)."""
    with user_errors():
        if layout not in ("handbook", "contract"):
            raise ValueError(f"--layout: expected handbook or contract, not {layout!r}")
        chosen: Literal["handbook", "contract"] = "handbook" if layout == "handbook" else "contract"
        config = SimulationConfig(
            customers=customers,
            terminals=terminals,
            days=days,
            start_date=date.fromisoformat(start_date),
            seed=seed,
            new_pattern_day=new_pattern_day,
        )
        with progress_bar("simulating days", days) as advance:
            frame = run_simulation(config, progress=advance)
        write_dataset(frame, output, layout=chosen)
    frauds = int(frame["TX_FRAUD"].sum())
    console.print(
        f"wrote {len(frame):,} transactions ({frauds:,} fraud, {frauds / len(frame):.2%}) "
        f"to {output}"
    )


def evaluate(
    data: Annotated[Path, typer.Option(help="Labelled data set (handbook columns or JSONL)")],
    label_delay: Annotated[str, typer.Option(help="Labels are revealed this late")] = "7d",
    model: Annotated[
        str, typer.Option(help=f"Online learner: {', '.join(RECIPES)}")
    ] = DEFAULT_LEARNER,
    params: Annotated[str | None, typer.Option(help="Learner parameters as JSON")] = None,
    test_start: Annotated[str | None, typer.Option(help="First test day, YYYY-MM-DD")] = None,
    test_end: Annotated[
        str | None, typer.Option(help="Last test day (inclusive), YYYY-MM-DD")
    ] = None,
    k: Annotated[int, typer.Option(help="Cards investigated per day (CP@k, alert budget)")] = 100,
    seed: Annotated[int, typer.Option(help="Seed of randomised learners")] = 0,
    scores_out: Annotated[
        Path | None, typer.Option(help="Write transaction_id,score as scored at arrival")
    ] = None,
    report: Annotated[
        Path | None, typer.Option(help="Directory for metrics.json and a PNG")
    ] = None,
    retrain_every: Annotated[
        str | None,
        typer.Option(help="Run the batch retrain job in the loop this often (event time), e.g. 7d"),
    ] = None,
    train_days: Annotated[int, typer.Option(help="Days of labels each retrain trains on")] = 28,
    test_days: Annotated[int, typer.Option(help="Days of each retrain's hold-out")] = 7,
    serve: Annotated[
        str | None,
        typer.Option(
            help="With --retrain-every: champion (promotion policy), batch (latest batch "
            "model) or blend (online and batch log-odds, weighted on the latest labels); "
            "default: batch for --model batch, else champion"
        ),
    ] = None,
) -> None:
    """Replay a labelled data set with delayed labels and measure the online learner.

    With --retrain-every, the batch retrain job runs in the loop; --model batch then scores
    each transaction with the latest batch model, any other --model with the served champion
    (or, with --serve blend, a blend of the online learner and the latest batch model).
    """
    if retrain_every is not None:
        _evaluate_with_retrain(
            data,
            label_delay,
            model,
            params,
            test_start,
            test_end,
            k,
            seed,
            scores_out,
            report,
            retrain_every,
            train_days,
            test_days,
            serve,
        )
        return
    with user_errors():
        end = _utc_day(test_end, "--test-end")
        options = EvaluationOptions(
            learner=model,
            params=_params(params),
            label_delay=parse_duration(label_delay),
            test_start=_utc_day(test_start, "--test-start"),
            test_end=None if end is None else end + timedelta(days=1),
            k=k,
            seed=seed,
        )
        dataset = read_dataset(data)
        with progress_bar("replaying transactions", len(dataset.transactions)) as advance:
            run = run_evaluation(dataset, options, progress=advance)
    print_evaluation(console, run, dataset)
    if scores_out is not None:
        write_scores(run, scores_out)
        console.print(f"scores written to {scores_out}")
    if report is not None:
        paths = write_report(
            run.metrics,
            run.scores,
            report,
            title=f"fraudstream {model}",
            extra=run.summary(),
            context=_context(data, label_delay, run.metrics),
        )
        console.print(f"report written to {paths.json} and {paths.png}")


def _served(model: str, serve: str | None) -> Served:
    if serve is None:
        return "batch" if model == "batch" else "champion"
    if serve == "batch":
        return "batch"
    if serve == "champion":
        return "champion"
    if serve == "blend":
        return "blend"
    raise ValueError(f"--serve: expected champion, batch or blend, not {serve!r}")


def _context(data: Path, label_delay: str, metrics: EvaluationMetrics) -> str:
    """What a report's figure must say about how it was measured."""
    last_day = metrics.overall.end - timedelta(days=1)
    return (
        f"data {data.name}; labels {label_delay} late; test {metrics.overall.start:%Y-%m-%d} "
        f"to {last_day:%Y-%m-%d}; {metrics.k} cards a day investigated"
    )


def _evaluate_with_retrain(
    data: Path,
    label_delay: str,
    model: str,
    params: str | None,
    test_start: str | None,
    test_end: str | None,
    k: int,
    seed: int,
    scores_out: Path | None,
    report: Path | None,
    retrain_every: str,
    train_days: int,
    test_days: int,
    serve: str | None,
) -> None:
    with user_errors():
        served = _served(model, serve)
        online = DEFAULT_LEARNER if model == "batch" else model
        end = _utc_day(test_end, "--test-end")
        delay = parse_duration(label_delay)
        options = EvaluationOptions(
            learner=online,
            params=_params(params),
            label_delay=delay,
            test_start=_utc_day(test_start, "--test-start"),
            test_end=None if end is None else end + timedelta(days=1),
            k=k,
            seed=seed,
        )
        retraining = RetrainOptions(
            train_days=train_days, delay=delay, test_days=test_days, seed=seed, k=k
        )
        dataset = read_dataset(data)

        def said(step: RetrainStep) -> None:
            errors.print(
                f"retrain at {step.at:%Y-%m-%d}: {step.decision} "
                + (
                    step.detail
                    if step.decision == "failed"
                    else f"(hold-out AP {step.candidate_ap:.3f} against the "
                    f"{'online learner' if served == 'blend' else 'champion'}'s "
                    f"{step.champion_ap:.3f}, {step.training_rows:,} training rows)"
                ),
                highlight=False,
            )

        with progress_bar("replaying with retrains", len(dataset.transactions)) as advance:
            looped = evaluate_with_retrain(
                dataset,
                options,
                retraining,
                parse_duration(retrain_every),
                served,
                progress=advance,
                on_step=said,
            )
    title = {
        "batch": "batch (latest model)",
        "champion": f"served champion ({online} + batch)",
        "blend": f"blend of {online} and the latest batch model",
    }[served]
    run = EvaluationRun(
        options=replace(options, learner=title),
        metrics=looped.metrics,
        scores=looped.scores,
        seconds=looped.seconds,
    )
    print_evaluation(console, run, dataset)
    print_parts(console, looped, online)
    online_metrics = looped.online_metrics
    console.print(
        f"online learner ({online}) on the same weeks: mean weekly AP "
        f"{online_metrics.mean_weekly_average_precision:.3f}, CP@{k} "
        f"{online_metrics.mean_weekly_card_precision_at_k:.3f}"
    )
    if scores_out is not None:
        write_scores(run, scores_out)
        console.print(f"scores written to {scores_out}")
    if report is not None:
        paths = write_report(
            looped.metrics,
            looped.scores,
            report,
            title=f"fraudstream {title}",
            extra=looped.summary(),
            score_columns=("score", "online_score"),
            context=_context(data, label_delay, looped.metrics),
        )
        console.print(f"report written to {paths.json} and {paths.png}")


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
        day = _utc_day(as_of, "--as-of")
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
