"""`fraudstream bench stream`: short real runs against real servers, figures checked for sense.

Figures are printed, never asserted on against thresholds: this machine is shared and its speed
drifts. What is asserted is that every phase measured what it says, the workers were configured
as the in-process path is, and the run cleaned up after itself.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from typer.testing import CliRunner

from models.learners import DEFAULT_LEARNER, OnlineLearner
from pipelines.bench.local_servers import RunningServers
from pipelines.bench.stream.run import (
    StreamBenchOptions,
    bench_stream,
    scoring_detector,
    worker_key_prefix,
    worker_settings,
)
from service.cli import app
from service.distributed import key_prefix, redis_detector
from service.settings import Settings
from tests.servers.kafka_broker import KafkaBroker
from tests.servers.redis_server import RedisServer

SMALL = StreamBenchOptions(
    transactions=2_000,
    batch_size=200,  # ten batches: the end-to-end window runs from the first commit to the last
    rate=200.0,
    seconds=3.0,
    training_transactions=2_000,
    partitions=4,
    session_timeout_ms=2_000,
)


def test_a_short_run_against_the_test_servers_reports_sane_figures(
    kafka_broker: KafkaBroker, redis_server: RedisServer, redis_url: str
) -> None:
    servers = RunningServers(redis_url, kafka_broker.bootstrap, redis_server.pid, kafka_broker.pid)
    steps: list[int] = []
    result = bench_stream(SMALL, servers, progress=steps.append)

    assert steps == [1, 2, 3, 4, 5, 6, 7]
    in_process = (result.in_process, result.in_process_detector, result.in_process_redis)
    assert [rate.transactions for rate in in_process] == [2_000] * 3
    # The end-to-end rate leaves out what was committed when the first commit was seen.
    assert 0 < result.end_to_end.transactions < 2_000
    assert result.score_records >= 2_000
    for rate in (*in_process, result.end_to_end):
        assert rate.transactions_per_second > 0
    assert result.end_to_end.cores.workers is not None
    assert result.end_to_end.cores.workers > 0
    assert result.in_process_redis.cores.redis is not None
    assert result.start_up_seconds > 0
    assert result.produced_per_second > 0
    latency = result.latency
    assert latency.sent == 600
    assert 0 < latency.p50_ms <= latency.p95_ms <= latency.p99_ms <= latency.max_ms
    assert latency.achieved_rate > 0
    assert len(result.targets()) == 3
    assert result.model_version.startswith(f"{DEFAULT_LEARNER}+")
    with redis.Redis.from_url(redis_url) as client:
        assert client.keys("fraudstream:bench*") == [], "the run's keys were left behind"


def test_the_workers_are_configured_as_the_in_process_detector(
    monkeypatch: pytest.MonkeyPatch, redis_url: str
) -> None:
    servers = RunningServers(redis_url, "127.0.0.1:9092")
    environment = worker_settings(SMALL, servers, "bench0.", "a-bench-secret-of-at-least-32-bytes")
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert key_prefix(settings) == worker_key_prefix("bench0.")
    with redis.Redis.from_url(redis_url) as client:
        learner = OnlineLearner(settings.learner)
        theirs, _, _ = redis_detector(settings, client, learner, deferred=False)
        ours = scoring_detector(SMALL, learner, client, key_prefix(settings))
    assert ours.policy == theirs.policy
    assert ours.alerting.config == theirs.alerting.config
    assert ours.features.spec == theirs.features.spec
    assert ours.state.spec == theirs.state.spec


def test_the_command_starts_its_own_servers_and_prints_the_tables() -> None:
    command = [
        str(Path(sys.executable).with_name("fraudstream")),
        *("bench", "stream", "--local", "--transactions", "1000"),
        *("--rate", "100", "--seconds", "1"),
    ]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FRAUDSTREAM_")}
    done = subprocess.run(
        command, env=environment, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2_000:]
    headings = ("worker path, memory", "detector only", "end to end", "p99 ms", "targets")
    for heading in (*headings, "status"):
        assert heading in done.stdout


def test_the_command_asks_for_servers_when_none_are_named() -> None:
    unset: dict[str, str | None] = {
        "FRAUDSTREAM_KAFKA_BOOTSTRAP": None,
        "FRAUDSTREAM_REDIS_URL": None,
    }
    result = CliRunner().invoke(app, ["bench", "stream"], env=unset)
    assert result.exit_code == 2
    assert "--local" in result.output
