"""The ``fraudstream`` command line: one entry point for every role and tool.

User errors (a bad flag, a data set with missing columns, an unknown learner) are printed as one
clear line and exit with status 2; a traceback means a bug.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer
import uvicorn
from fastapi import FastAPI

from service import cli_backtest, cli_drift, cli_offline, cli_retrain, cli_whatif
from service.app import create_app
from service.auth import refuse_unsafe_start
from service.cli_bench import bench_app
from service.cli_common import console, user_errors
from service.distributed import (
    build_cluster_runtime,
    connections,
    run_learner,
    run_worker,
)
from service.http_protocol import bounded_protocol
from service.logs import configure_logging
from service.settings import Settings
from service.signing import embedded_key, refuse_models_of_another_key

app = typer.Typer(
    name="fraudstream",
    help="Real-time card fraud detection with online learners.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(bench_app, name="bench")
for offline_command in (
    cli_offline.simulate,
    cli_offline.evaluate,
    cli_retrain.retrain,
    cli_whatif.whatif,
    cli_backtest.backtest,
    cli_drift.drift,
):
    app.command()(offline_command)

GRACEFUL_SHUTDOWN_SECONDS = 5


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
    with user_errors():
        overrides: dict[str, Any] = {
            name: value
            for name, value in (("host", host), ("port", port), ("simulate_rate", simulate))
            if value is not None
        }
        settings = Settings(**overrides)
        _refuse_unsafe(settings, "serve")
        # Made (or its file refused) now, and checked against the models already kept, rather
        # than failing halfway through start-up.
        refuse_models_of_another_key(settings, embedded_key(settings))
        configure_logging(settings.log_level)
    base = f"http://{settings.host}:{settings.port}"
    console.print(f"fraudstream listening on [bold]{base}[/]")
    console.print(f"dashboard:  [bold]{base}/[/]   API docs: {base}/docs", highlight=False)
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
        http=bounded_protocol(settings.read_timeout),
        log_level=settings.log_level,
        log_config=None,  # configure_logging has routed uvicorn's loggers through ours
        # An open alert stream never ends by itself: without a bound, SIGTERM would wait on
        # every dashboard tab still connected.
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        # Bounded so the process never runs out of file descriptors (docs/security-http.md):
        # past the limit, a request is answered 503 at once.
        limit_concurrency=settings.max_connections,
        timeout_keep_alive=settings.keep_alive_timeout,
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
    with user_errors():
        overrides: dict[str, Any] = {
            name: value for name, value in (("host", host), ("port", port)) if value is not None
        }
        settings = Settings(**overrides)
        connections(settings)  # refuse at once, with the settings to set, if either is missing
        _refuse_unsafe(settings, "api")
        configure_logging(settings.log_level)
    base = f"http://{settings.host}:{settings.port}"
    console.print(f"fraudstream API listening on [bold]{base}[/]")
    console.print(f"dashboard:  [bold]{base}/[/]   API docs: {base}/docs", highlight=False)
    _run_http(create_app(settings, build_cluster_runtime), settings)


@app.command()
def worker() -> None:
    """Score the transactions topic: one member of the workers' consumer group (Kafka + Redis).

    Run as many as the topic has partitions; SIGTERM finishes the batch, commits and exits.
    """
    with user_errors():
        settings = Settings()
        _refuse_unsafe(settings, "worker")
        configure_logging(settings.log_level)
        asyncio.run(run_worker(settings))


@app.command()
def learner() -> None:
    """Learn the labels topic and publish model versions (Kafka + Redis); run exactly one."""
    with user_errors():
        settings = Settings()
        _refuse_unsafe(settings, "learner")
        configure_logging(settings.log_level)
        asyncio.run(run_learner(settings))


def _refuse_unsafe(settings: Settings, role: str) -> None:
    refuse_unsafe_start(
        role=role,
        host=settings.host,
        has_keys=bool(settings.api_keys),
        has_secret=settings.secret_key is not None,
        allow_open=settings.allow_open,
    )


def main() -> None:
    """Console-script entry point."""
    app()
