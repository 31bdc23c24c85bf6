"""The ``fraudstream`` command line: one entry point for every role and tool.

User errors (a bad flag, a data set with missing columns, an unknown learner) are printed as one
clear line and exit with status 2; a traceback means a bug.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
import uvicorn
from fastapi import FastAPI
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from models.durations import parse_duration
from models.learners import DEFAULT_LEARNER, RECIPES, LearnerError
from models.simulator import SimulationConfig
from models.simulator import simulate as run_simulation
from pipelines.benchmarks import bench_core as run_bench
from pipelines.dataset_writer import write_dataset
from pipelines.datasets import DatasetError, read_dataset
from pipelines.evaluation import EvaluationOptions, EvaluationRun, write_scores
from pipelines.evaluation import evaluate as run_evaluation
from pipelines.http_bench import STEPS, HttpBenchOptions
from pipelines.http_bench import bench_http as run_http_bench
from pipelines.load_bench import LoadBenchOptions
from pipelines.load_bench import bench_load as run_load_bench
from pipelines.local_servers import RunningServers, local_servers
from pipelines.memory_bench import BUDGET_BYTES_PER_CARD, MemoryBenchOptions
from pipelines.memory_bench import STEPS as MEMORY_STEPS
from pipelines.memory_bench import bench_memory as run_memory_bench
from pipelines.report import write_report
from pipelines.retrain import RetrainOptions
from pipelines.retrain_bench import STEPS as RETRAIN_STEPS
from pipelines.retrain_bench import bench_retrain as run_retrain_bench
from pipelines.retrain_book import RetrainJob
from pipelines.retrain_loop import RetrainStep, Served, evaluate_with_retrain
from pipelines.server_process import ServerProcessError
from pipelines.stream_bench import STEPS as STREAM_STEPS
from pipelines.stream_bench import StreamBenchOptions
from pipelines.stream_bench import bench_stream as run_stream_bench
from service.app import create_app
from service.auth import UnsafeSettingsError, refuse_unsafe_start
from service.distributed import (
    DistributedSettingsError,
    build_cluster_runtime,
    connections,
    run_learner,
    run_worker,
)
from service.logs import configure_logging
from service.reporting import (
    print_bench,
    print_evaluation,
    print_http_bench,
    print_load_bench,
    print_memory_bench,
    print_stream_bench,
)
from service.retraining import retrain_options, standalone_jobs
from service.settings import DEFAULT_SECRET_KEY, Settings

app = typer.Typer(
    name="fraudstream",
    help="Real-time card fraud detection with online learners.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
bench_app = typer.Typer(help="Measure what things cost, in figures.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")

# Tables stay readable when the output goes to a file or a pipe (rich would assume 80 columns).
console = Console(width=None if sys.stdout.isatty() else 132)
errors = Console(stderr=True)

GRACEFUL_SHUTDOWN_SECONDS = 5

USER_ERRORS = (
    DatasetError,
    LearnerError,
    ValueError,
    FileNotFoundError,
    ServerProcessError,
    DistributedSettingsError,
    UnsafeSettingsError,
)


@contextmanager
def _user_errors() -> Iterator[None]:
    try:
        yield
    except USER_ERRORS as error:
        errors.print(f"[bold red]error:[/] {error}", highlight=False)
        raise typer.Exit(code=2) from None


@contextmanager
def _progress(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A progress bar that a long step advances by reporting how much it has done."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=errors, transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda done: bar.update(task, completed=done)


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


@app.command()
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
    with _user_errors():
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
        with _progress("simulating days", days) as advance:
            frame = run_simulation(config, progress=advance)
        write_dataset(frame, output, layout=chosen)
    frauds = int(frame["TX_FRAUD"].sum())
    console.print(
        f"wrote {len(frame):,} transactions ({frauds:,} fraud, {frauds / len(frame):.2%}) "
        f"to {output}"
    )


@app.command()
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
) -> None:
    """Replay a labelled data set with delayed labels and measure the online learner.

    With --retrain-every, the batch retrain job runs in the loop; --model batch then scores
    each transaction with the latest batch model, any other --model with the served champion.
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
        )
        return
    with _user_errors():
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
        with _progress("replaying transactions", len(dataset.transactions)) as advance:
            run = run_evaluation(dataset, options, progress=advance)
    print_evaluation(console, run, dataset)
    if scores_out is not None:
        write_scores(run, scores_out)
        console.print(f"scores written to {scores_out}")
    if report is not None:
        paths = write_report(
            run.metrics, run.scores, report, title=f"fraudstream {model}", extra=run.summary()
        )
        console.print(f"report written to {paths.json} and {paths.png}")


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
) -> None:
    with _user_errors():
        served: Served = "batch" if model == "batch" else "champion"
        online = DEFAULT_LEARNER if served == "batch" else model
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
                    else f"(hold-out AP {step.candidate_ap:.3f} against the champion's "
                    f"{step.champion_ap:.3f}, {step.training_rows:,} training rows)"
                ),
                highlight=False,
            )

        with _progress("replaying with retrains", len(dataset.transactions)) as advance:
            looped = evaluate_with_retrain(
                dataset,
                options,
                retraining,
                parse_duration(retrain_every),
                served,
                progress=advance,
                on_step=said,
            )
    title = "batch (latest model)" if served == "batch" else f"served champion ({online} + batch)"
    run = EvaluationRun(
        options=replace(options, learner=title),
        metrics=looped.metrics,
        scores=looped.scores,
        seconds=looped.seconds,
    )
    print_evaluation(console, run, dataset)
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
        )
        console.print(f"report written to {paths.json} and {paths.png}")


@app.command()
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
    with _user_errors():
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
        with _progress("retraining", 100) as advance:
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


@bench_app.command("core")
def bench_core(
    learner: Annotated[
        list[str] | None, typer.Option(help="Learner to measure (repeat); default: all")
    ] = None,
    transactions: Annotated[int, typer.Option(help="Transactions per measured run")] = 20_000,
    rounds: Annotated[int, typer.Option(help="Interleaved rounds; medians are reported")] = 3,
    seed: Annotated[int, typer.Option(help="Seed of the simulated stream")] = 0,
) -> None:
    """Per-transaction cost of features, score and learn, against the bare river model."""
    with _user_errors():
        names = learner or list(RECIPES)
        unknown = [name for name in names if name not in RECIPES]
        if unknown:
            raise LearnerError(f"unknown learner {unknown[0]!r}; choose from {', '.join(RECIPES)}")
        with _progress("benchmarking", len(names) * rounds) as advance:
            rows = run_bench(
                names, transactions=transactions, rounds=rounds, seed=seed, progress=advance
            )
    print_bench(console, rows)


@bench_app.command("retrain")
def bench_retrain(
    customers: Annotated[int, typer.Option(help="Cards in the simulated population")] = 2_000,
    rate: Annotated[float, typer.Option(help="Scoring calls a second")] = 500.0,
    rest_seconds: Annotated[float, typer.Option(help="Seconds measured at rest")] = 10.0,
) -> None:
    """Scoring latency (p50, p99) at rest and while a retrain job runs, in one process."""
    with (
        _user_errors(),
        tempfile.TemporaryDirectory() as scratch,
        _progress("benchmarking", RETRAIN_STEPS) as advance,
    ):
        result = run_retrain_bench(
            Path(scratch),
            customers=customers,
            rate=rate,
            rest_seconds=rest_seconds,
            progress=advance,
        )
    for name, figures in (("at rest", result.at_rest), ("during a retrain", result.during)):
        console.print(
            f"{name:17} {figures.calls:6,} calls  p50 {figures.p50_ms:6.3f} ms  "
            f"p99 {figures.p99_ms:6.3f} ms"
        )
    console.print(
        f"p99 during / at rest: {result.p99_ratio:.2f}x; the retrain took "
        f"{result.retrain_seconds:.1f} s on {result.training_rows:,} training rows"
    )


@bench_app.command("http")
def bench_http(
    url: Annotated[
        str | None,
        typer.Option(
            help="Measure this running server instead of starting one "
            "(its baseline needs FRAUDSTREAM_BENCH_ENDPOINTS=true)"
        ),
    ] = None,
    clients: Annotated[int, typer.Option(help="Concurrent keep-alive clients")] = 32,
    seconds: Annotated[float, typer.Option(help="Measured seconds per workload")] = 10.0,
    warm_up: Annotated[float, typer.Option(help="Unmeasured seconds before each workload")] = 2.0,
) -> None:
    """Requests a second and latency of the API, against a constant-score baseline."""
    with _user_errors():
        options = HttpBenchOptions(url=url, clients=clients, seconds=seconds, warm_up=warm_up)
        with _progress("benchmarking", STEPS) as advance:
            result = run_http_bench(options, progress=advance)
    print_http_bench(console, result)


@bench_app.command("stream")
def bench_stream(
    kafka: Annotated[
        str | None, typer.Option(help="Kafka bootstrap (default: FRAUDSTREAM_KAFKA_BOOTSTRAP)")
    ] = None,
    redis_url: Annotated[
        str | None, typer.Option("--redis", help="Redis URL (default: FRAUDSTREAM_REDIS_URL)")
    ] = None,
    local: Annotated[
        bool, typer.Option(help="Start a throwaway redis-server and Tansu broker for the run")
    ] = False,
    transactions: Annotated[int, typer.Option(help="Backlog scored end to end")] = 50_000,
    workers: Annotated[int, typer.Option(help="fraudstream worker processes")] = 1,
    rate: Annotated[float, typer.Option(help="Transactions a second, latency phase")] = 1_000.0,
    seconds: Annotated[float, typer.Option(help="Length of the latency phase")] = 10.0,
    seed: Annotated[int, typer.Option(help="Seed of the simulated stream")] = 0,
) -> None:
    """Transactions a second through Kafka, workers and Redis, against the in-process rate."""
    with _user_errors():
        options = StreamBenchOptions(
            transactions=transactions, workers=workers, rate=rate, seconds=seconds, seed=seed
        )
        servers: AbstractContextManager[RunningServers]
        if local:
            if kafka or redis_url:
                raise ValueError("--local starts its own servers: leave out --kafka and --redis")
            servers = local_servers()
        else:
            settings = Settings()
            kafka = kafka or settings.kafka_bootstrap
            redis_url = redis_url or settings.redis_url
            if not kafka or not redis_url:
                raise ValueError(
                    "name the servers with --kafka and --redis (or FRAUDSTREAM_KAFKA_BOOTSTRAP "
                    "and FRAUDSTREAM_REDIS_URL), or pass --local to start throwaway ones"
                )
            servers = nullcontext(RunningServers(redis_url, kafka))
        with servers as running, _progress("benchmarking", STREAM_STEPS) as advance:
            result = run_stream_bench(options, running, progress=advance)
    print_stream_bench(console, result)


@bench_app.command("load")
def bench_load(
    url: Annotated[
        str | None, typer.Option(help="Load this running server instead of starting one")
    ] = None,
    rate: Annotated[
        float, typer.Option(help="Requests a second, due at fixed intervals")
    ] = 1_000.0,
    seconds: Annotated[float, typer.Option(help="Measured seconds")] = 60.0,
    connections: Annotated[int, typer.Option(help="Keep-alive connections to send over")] = 16,
    warm_up: Annotated[float, typer.Option(help="Unmeasured seconds at the rate first")] = 5.0,
    timeout: Annotated[
        float, typer.Option(help="Seconds a request may take from its write to its answer")
    ] = 1.0,
) -> None:
    """Hold a fixed request rate on POST /v1/score: errors, latency, server memory and CPU."""
    with _user_errors():
        options = LoadBenchOptions(
            url=url,
            rate=rate,
            seconds=seconds,
            connections=connections,
            warm_up=warm_up,
            timeout=timeout,
        )
        with _progress("seconds of load", options.progress_seconds) as advance:
            result = run_load_bench(options, progress=advance)
    print_load_bench(console, result)


@bench_app.command("memory")
def bench_memory(
    cards: Annotated[int, typer.Option(help="Distinct cards, a few payments each")] = 1_000_000,
    budget_mb: Annotated[
        float | None,
        typer.Option(
            help="Budget of the feature state's peak, in MB "
            f"(default: {BUDGET_BYTES_PER_CARD:,} bytes per card)"
        ),
    ] = None,
    cap: Annotated[
        int | None, typer.Option(help="Card cap of the capped run (default: a tenth of --cards)")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the simulated stream")] = 0,
) -> None:
    """Memory of the feature state and the pending vectors for many cards, against a budget."""
    with _user_errors():
        options = MemoryBenchOptions(cards=cards, budget_mb=budget_mb, cap=cap, seed=seed)
        with _progress("stores measured", MEMORY_STEPS) as advance:
            result = run_memory_bench(options, progress=advance)
    print_memory_bench(console, result)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on")] = None,
    simulate: Annotated[
        float | None,
        typer.Option(help="Feed simulated transactions at this rate per second (0: off)"),
    ] = None,
) -> None:
    """Run the embedded service: API, stream, learner and alerts in one process."""
    with _user_errors():
        overrides: dict[str, Any] = {
            name: value
            for name, value in (("host", host), ("port", port), ("simulate_rate", simulate))
            if value is not None
        }
        settings = Settings(**overrides)
        _refuse_unsafe(settings, "serve")
        configure_logging(settings.log_level)
    base = f"http://{settings.host}:{settings.port}"
    console.print(f"fraudstream listening on [bold]{base}[/] (API docs at {base}/docs)")
    if settings.simulate_rate:
        console.print(
            f"simulated traffic: {settings.simulate_rate:g} transactions a second, alerts at "
            f"{base}/v1/alerts and {base}/v1/alerts/stream"
        )
    console.print(
        "score one:  curl -s -X POST "
        f"{base}/v1/score -H 'content-type: application/json' -d "
        """'{"transaction_id": "tx-1", "timestamp": "2026-11-29T12:00:00Z", "card_id": "card-1", """
        """"terminal_id": "term-1", "amount": 42.5, "currency": "EUR"}'""",
        highlight=False,
        soft_wrap=True,
    )
    _run_http(create_app(settings), settings)


def _run_http(api: FastAPI, settings: Settings) -> None:
    uvicorn.run(
        api,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        log_level=settings.log_level,
        log_config=None,  # configure_logging has routed uvicorn's loggers through ours
        # An open alert stream never ends by itself: without a bound, SIGTERM would wait on
        # every dashboard tab still connected.
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )


@app.command()
def api(
    host: Annotated[str | None, typer.Option(help="Interface to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on")] = None,
) -> None:
    """Run the HTTP API alone (Kafka + Redis): scores over shared state with the published model.

    Transactions and labels posted here go to their topics for the workers and the learner;
    the alert feed follows the alerts topic. Run as many replicas as the traffic needs.
    """
    with _user_errors():
        overrides: dict[str, Any] = {
            name: value for name, value in (("host", host), ("port", port)) if value is not None
        }
        settings = Settings(**overrides)
        connections(settings)  # refuse at once, with the settings to set, if either is missing
        _refuse_unsafe(settings, "api")
        configure_logging(settings.log_level)
    console.print(f"fraudstream API listening on http://{settings.host}:{settings.port}")
    _run_http(create_app(settings, build_cluster_runtime), settings)


@app.command()
def worker() -> None:
    """Score the transactions topic: one member of the workers' consumer group (Kafka + Redis).

    Run as many as the topic has partitions; SIGTERM finishes the batch, commits and exits.
    """
    with _user_errors():
        settings = Settings()
        _refuse_unsafe(settings, "worker")
        configure_logging(settings.log_level)
        asyncio.run(run_worker(settings))


@app.command()
def learner() -> None:
    """Learn the labels topic and publish model versions (Kafka + Redis); run exactly one."""
    with _user_errors():
        settings = Settings()
        _refuse_unsafe(settings, "learner")
        configure_logging(settings.log_level)
        asyncio.run(run_learner(settings))


def _refuse_unsafe(settings: Settings, role: str) -> None:
    refuse_unsafe_start(
        role=role,
        host=settings.host,
        has_keys=bool(settings.api_keys),
        default_secret=settings.secret_key.get_secret_value() == DEFAULT_SECRET_KEY,
        allow_open=settings.allow_open,
    )


def main() -> None:
    """Console-script entry point."""
    app()
