"""The drift alarm in distributed mode: a worker process over the real broker and Redis
watches the stream it scores, shows the alarm in its metrics and writes it to the
deployment's event log (the registry's index in Redis), where `GET /v1/models/events` reads it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import redis

from models.schemas import Transaction
from pipelines.bench.server_process import free_port
from pipelines.lifecycle.registry_index import RedisIndex
from pipelines.stream.kafka_clients import KafkaSettings
from pipelines.stream.topics import Topics
from service.distributed import key_prefix
from tests.pipelines.stream.distributed_harness import (
    distinct_ids_at_least,
    metrics_page,
    poll,
    produce_transactions,
    read_topic,
    role_env,
    settings_for,
    start_role,
)
from tests.service.test_drift import day_of_traffic

DRIFT = {
    "FRAUDSTREAM_DRIFT_REFERENCE_DAYS": "2",
    "FRAUDSTREAM_DRIFT_GAP_DAYS": "0",
    "FRAUDSTREAM_DRIFT_WARMUP_DAYS": "0",
    "FRAUDSTREAM_DRIFT_CELL_FEATURES": "2",
    "FRAUDSTREAM_DRIFT_MIN_CARDS": "5",
}


def test_a_worker_raises_the_drift_alarm_in_its_metrics_and_the_event_log(
    kafka_settings: KafkaSettings, redis_url: str, topics: Topics, tmp_path: Path
) -> None:
    rng = np.random.default_rng(0)
    days = [day_of_traffic(rng, 0), day_of_traffic(rng, 1), day_of_traffic(rng, 2, crowd=20)]
    days.append(day_of_traffic(rng, 3))
    port = free_port()
    env = role_env(
        kafka_settings,
        redis_url,
        topics,
        FRAUDSTREAM_METRICS_PORT=str(port),
        FRAUDSTREAM_DATA_DIR=str(tmp_path / "data"),
        **DRIFT,
    )
    worker = start_role("worker", env, tmp_path, "worker")
    try:
        sent = 0
        # Day by day, each scored before the next is sent: event time moves on as it would.
        for bodies in days:
            produce_transactions(
                kafka_settings, topics, [Transaction.model_validate(body) for body in bodies]
            )
            sent += len(bodies)
            read_topic(kafka_settings, topics.scores, distinct_ids_at_least(sent), timeout=300)
        with redis.Redis.from_url(redis_url) as client:
            index = RedisIndex(client, key_prefix(settings_for(topics)))
            events = poll(
                lambda: index.events(100),
                lambda found: any(e["event"] == "drift_alarm_raised" for e in found),
                what="the drift alarm in the event log",
            )
        raised = [event for event in events if event["event"] == "drift_alarm_raised"]
        assert len(raised) == 1
        assert raised[0]["detail"].startswith("2026-11-03: ")
        series = metrics_page(f"http://127.0.0.1:{port}/metrics")
        assert series["fraudstream_drift_alarm"] == 1.0
        assert series["fraudstream_drift_surprise"] > 4.0
        assert series["fraudstream_drift_novelty_surprise"] >= 0.0
        assert 'fraudstream_drift_psi{feature="amount"}' in series
        assert worker.stop() == 0, worker.log_tail()
    finally:
        if worker.alive():
            worker.kill()
