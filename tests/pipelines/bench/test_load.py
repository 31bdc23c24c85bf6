"""`fraudstream bench load`: a short real run at a low rate, and failures counted, not lost.

Figures are never asserted on: this machine is shared and its speed drifts. What is asserted is
that every request due in the window is accounted for, answered or failed, that percentiles come
in order, and that the server's memory and CPU were read before it was stopped.
"""

from __future__ import annotations

import asyncio
import io
import os
from datetime import UTC, datetime

import pytest
from rich.console import Console
from typer.testing import CliRunner

from pipelines.bench.http_result import HttpBenchOptions
from pipelines.bench.load import LoadBenchOptions, LoadBenchResult, _load, bench_load
from pipelines.bench.server_process import ServerProcess, free_port
from pipelines.options import HISTORY, TrafficOptions
from service.bench_reports import print_load_bench
from service.cli import app


@pytest.fixture(scope="module")
def short_run() -> LoadBenchResult:
    # A generous timeout: a slow moment of this machine is not what the tests are about.
    options = LoadBenchOptions(rate=200, seconds=2, warm_up=0.5, connections=4, timeout=10)
    return bench_load(options)


def test_a_short_run_accounts_for_every_request_due(short_run: LoadBenchResult) -> None:
    result = short_run
    assert result.scheduled == 400
    assert result.errors == {}
    assert result.answered == result.completed == result.scheduled
    latency = result.latency_ms
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["p99.9"]
    assert latency["p99.9"] <= latency["max"]
    assert 0 <= result.generator_lag_ms["p99"] <= result.generator_lag_ms["max"]
    assert 0 <= result.send_lag_ms["p99"] <= result.send_lag_ms["max"]
    assert result.generator_lag_ms["max"] <= result.send_lag_ms["max"]
    assert result.achieved_rate > 0
    memory, at_start = result.server_memory, result.server_memory_at_start
    assert memory is not None
    assert at_start is not None
    assert memory.peak >= memory.resident > 0
    assert memory.peak >= at_start.resident
    assert (result.server_cpu_seconds or 0) > 0
    assert result.target_met
    assert "200 req/s asked" in result.target_note()
    assert result.server_pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(result.server_pid, 0)


def test_the_figures_are_printed_with_the_target(short_run: LoadBenchResult) -> None:
    output = io.StringIO()
    print_load_bench(Console(file=output, width=200), short_run)
    printed = output.getvalue()
    assert "400" in printed
    assert "p99.9 ms" in printed
    assert "met (200 req/s asked; 2 s measured" in printed
    assert "VmHWM" in printed


def test_the_command_refuses_a_rate_of_zero_in_one_line() -> None:
    result = CliRunner().invoke(app, ["bench", "load", "--rate", "0"])
    assert result.exit_code == 2, result.output
    assert "rate must be positive" in result.output
    assert "Traceback" not in result.output


def test_requests_to_a_server_that_is_gone_are_counted_as_connection_errors() -> None:
    options = LoadBenchOptions(rate=200, seconds=0.5, warm_up=0.1, connections=2)
    nobody = ServerProcess(f"http://127.0.0.1:{free_port()}", None)
    window = asyncio.run(_load(nobody, options, None))
    tally = window.tally
    assert tally.answered == 0
    assert sum(tally.errors.values()) == options.scheduled
    assert set(tally.errors) == {"connection: ConnectionRefusedError"}
    assert tally.latencies == []
    assert window.server_cpu is None


def test_the_schedule_splits_warm_up_from_the_measured_window() -> None:
    options = LoadBenchOptions(rate=1_000, seconds=60, warm_up=5)
    assert (options.first_measured, options.scheduled, options.total_requests) == (
        5_000,
        60_000,
        65_000,
    )
    assert options.progress_seconds == 65


@pytest.mark.parametrize("name", ["rate", "seconds", "connections", "timeout"])
def test_options_refuse_an_empty_load(name: str) -> None:
    with pytest.raises(ValueError, match=name):
        LoadBenchOptions(**{name: 0})  # type: ignore[arg-type]


@pytest.mark.parametrize("options", [LoadBenchOptions, HttpBenchOptions])
@pytest.mark.parametrize(("name", "value"), [("cards", 0), ("terminals", 0), ("warm_up", -1)])
def test_both_load_generators_refuse_traffic_with_nothing_to_send(
    options: type[TrafficOptions], name: str, value: float
) -> None:
    with pytest.raises(ValueError, match=name):
        options(**{name: value})  # type: ignore[arg-type]


def test_traffic_starts_now_unless_told_when() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert LoadBenchOptions(start=start).first_event_time() == start
    # Far enough back that a whole run's event time stays behind the server's clock.
    assert HttpBenchOptions().first_event_time() <= datetime.now(UTC) - HISTORY
    assert HttpBenchOptions().first_event_time().microsecond == 0
