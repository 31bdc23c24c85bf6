"""`fraudstream bench ...`: what things cost, in figures, printed as tables."""

from __future__ import annotations

import tempfile
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Annotated

import typer

from models.learners import RECIPES, LearnerError
from pipelines.bench.core import TRAINING_TRANSACTIONS
from pipelines.bench.core import bench_core as run_bench
from pipelines.bench.http import STEPS, HttpBenchOptions
from pipelines.bench.http import bench_http as run_http_bench
from pipelines.bench.load import LoadBenchOptions
from pipelines.bench.load import bench_load as run_load_bench
from pipelines.bench.local_servers import RunningServers, local_servers
from pipelines.bench.memory import BUDGET_BYTES_PER_CARD, MemoryBenchOptions
from pipelines.bench.memory import STEPS as MEMORY_STEPS
from pipelines.bench.memory import bench_memory as run_memory_bench
from pipelines.bench.retrain import STEPS as RETRAIN_STEPS
from pipelines.bench.retrain import bench_retrain as run_retrain_bench
from pipelines.bench.served import bench_served as run_served_bench
from pipelines.bench.snapshot import STEPS as SNAPSHOT_STEPS
from pipelines.bench.snapshot import SnapshotBenchOptions
from pipelines.bench.snapshot import bench_snapshot as run_snapshot_bench
from pipelines.bench.stream.run import STEPS as STREAM_STEPS
from pipelines.bench.stream.run import StreamBenchOptions
from pipelines.bench.stream.run import bench_stream as run_stream_bench
from service.bench_reports import (
    print_bench,
    print_http_bench,
    print_load_bench,
    print_memory_bench,
    print_served_bench,
    print_stream_bench,
)
from service.cli_common import console, progress_bar, user_errors
from service.settings import Settings

bench_app = typer.Typer(help="Measure what things cost, in figures.", no_args_is_help=True)


@bench_app.command("core")
def bench_core(
    learner: Annotated[
        list[str] | None, typer.Option(help="Learner to measure (repeat); default: all")
    ] = None,
    transactions: Annotated[int, typer.Option(help="Transactions per measured run")] = 20_000,
    rounds: Annotated[int, typer.Option(help="Interleaved rounds; medians are reported")] = 3,
    seed: Annotated[int, typer.Option(help="Seed of the simulated stream")] = 0,
    training_transactions: Annotated[
        int, typer.Option(help="Transactions each learner learns from before it is measured")
    ] = TRAINING_TRANSACTIONS,
) -> None:
    """Per-transaction cost of features, score and learn, against the bare river model, of
    learners trained first (past any warm-up)."""
    with user_errors():
        names = learner or list(RECIPES)
        unknown = [name for name in names if name not in RECIPES]
        if unknown:
            raise LearnerError(f"unknown learner {unknown[0]!r}; choose from {', '.join(RECIPES)}")
        with progress_bar("benchmarking", len(names) * rounds) as advance:
            rows = run_bench(
                names,
                transactions=transactions,
                rounds=rounds,
                seed=seed,
                training_transactions=training_transactions,
                progress=advance,
            )
    print_bench(console, rows)


@bench_app.command("served")
def bench_served(
    transactions: Annotated[int, typer.Option(help="Transactions the models learn from")] = 20_000,
    vectors: Annotated[int, typer.Option(help="Stored vectors scored per round")] = 1_000,
    rounds: Annotated[int, typer.Option(help="Interleaved rounds; medians are reported")] = 3,
    seed: Annotated[int, typer.Option(help="Seed of the simulated stream")] = 0,
) -> None:
    """Per-transaction cost of scoring with the online learner, a batch tree model and their
    blend (FRAUDSTREAM_RETRAIN_SERVE=blend)."""
    with user_errors(), progress_bar("benchmarking", rounds) as advance:
        costs = run_served_bench(
            transactions=transactions, vectors=vectors, rounds=rounds, seed=seed, progress=advance
        )
    print_served_bench(console, costs)


@bench_app.command("retrain")
def bench_retrain(
    customers: Annotated[int, typer.Option(help="Cards in the simulated population")] = 2_000,
    rate: Annotated[float, typer.Option(help="Scoring calls a second")] = 500.0,
    rest_seconds: Annotated[float, typer.Option(help="Seconds measured at rest")] = 10.0,
) -> None:
    """Scoring latency (p50, p99) at rest and while a retrain job runs, in one process."""
    with (
        user_errors(),
        tempfile.TemporaryDirectory() as scratch,
        progress_bar("benchmarking", RETRAIN_STEPS) as advance,
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
    training_transactions: Annotated[
        int,
        typer.Option(
            help="Transactions the started server scores and learns the labels of first "
            "(0: measure it untaught; never sent to --url)"
        ),
    ] = 20_000,
) -> None:
    """Requests a second and latency of the API, against a constant-score baseline."""
    with user_errors():
        options = HttpBenchOptions(
            url=url,
            clients=clients,
            seconds=seconds,
            warm_up=warm_up,
            training_transactions=training_transactions,
        )
        with progress_bar("benchmarking", STEPS) as advance:
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
    with user_errors():
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
        with servers as running, progress_bar("benchmarking", STREAM_STEPS) as advance:
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
    with user_errors():
        options = LoadBenchOptions(
            url=url,
            rate=rate,
            seconds=seconds,
            connections=connections,
            warm_up=warm_up,
            timeout=timeout,
        )
        with progress_bar("seconds of load", options.progress_seconds) as advance:
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
    with user_errors():
        options = MemoryBenchOptions(cards=cards, budget_mb=budget_mb, cap=cap, seed=seed)
        with progress_bar("stores measured", MEMORY_STEPS) as advance:
            result = run_memory_bench(options, progress=advance)
    print_memory_bench(console, result)


@bench_app.command("snapshot")
def bench_snapshot(
    pending: Annotated[int, typer.Option(help="Scored vectors awaiting labels")] = 200_000,
    rate: Annotated[float, typer.Option(help="POST /v1/score requests a second")] = 200.0,
    rest_seconds: Annotated[
        float, typer.Option(help="Seconds measured at rest before each snapshot")
    ] = 10.0,
    snapshots: Annotated[int, typer.Option(help="Snapshots written under load")] = 3,
    url: Annotated[
        str | None, typer.Option(help="Measure this running server instead of starting one")
    ] = None,
) -> None:
    """Scoring latency (p50, p99) at rest and while a snapshot of the serving state is written."""
    with user_errors():
        options = SnapshotBenchOptions(
            pending=pending, rate=rate, rest_seconds=rest_seconds, snapshots=snapshots, url=url
        )
        with progress_bar("benchmarking", SNAPSHOT_STEPS) as advance:
            result = run_snapshot_bench(options, progress=advance)
    for name, figures in (("at rest", result.at_rest), ("during a snapshot", result.during)):
        console.print(
            f"{name:18} {figures.requests:6,} requests  {figures.errors} errors  "
            f"p50 {figures.p50_ms:7.2f} ms  p99 {figures.p99_ms:7.2f} ms  "
            f"max {figures.max_ms:7.2f} ms"
        )
    seconds = ", ".join(f"{duration:.1f}" for duration in result.snapshot_seconds)
    console.print(
        f"p99 during / at rest: {result.p99_ratio:.2f}x (target at most 2x); "
        f"{pending:,} pending vectors, snapshots written in {seconds} s"
    )
