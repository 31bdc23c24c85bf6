"""Rules in distributed mode: the API role writes a rule set to Redis, and a worker applies it
to transactions from the broker within seconds (real Tansu, real Redis, roles as processes)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from models.schemas import Transaction
from pipelines.bench.server_process import serve
from pipelines.stream.kafka_clients import KafkaSettings
from pipelines.stream.topics import Topics
from tests.pipelines.stream.distributed_harness import (
    ADMIN,
    TopicRead,
    poll,
    produce_transactions,
    read_topic,
    role_env,
    scores_by_id,
    start_role,
)

RULES = {
    "rules": [
        {"name": "hot-terminal", "text": 'terminal_id == "T-HOT" -> alert'},
        {"name": "web", "text": 'channel == "ecommerce" -> review'},
    ]
}


def transactions(start: datetime, prefix: str = "") -> list[Transaction]:
    """Four transactions of four cards of their own (one alert per card per cooldown)."""

    def tx(index: int, terminal: str, channel: str | None = None) -> Transaction:
        return Transaction(
            transaction_id=f"{prefix}d-{index}",
            timestamp=start + timedelta(seconds=index),
            card_id=f"{prefix}card-{index}",
            terminal_id=terminal,
            amount=25.0,
            currency="EUR",
            channel=channel,
        )

    return [tx(1, "T-HOT"), tx(2, "T-1", "ecommerce"), tx(3, "T-1"), tx(4, "T-HOT", "pos")]


def test_a_rule_written_through_the_api_role_is_applied_by_a_worker(
    kafka_settings: KafkaSettings, redis_url: str, topics: Topics, tmp_path: Path
) -> None:
    # Threshold 1: the fresh model alerts on nothing, so every alert here is a rule's.
    env = role_env(
        kafka_settings,
        redis_url,
        topics,
        FRAUDSTREAM_DATA_DIR=str(tmp_path),
        FRAUDSTREAM_ALERT_THRESHOLD="1.0",
        FRAUDSTREAM_LOG_LEVEL="info",
    )
    worker = start_role("worker", env, tmp_path, "worker")
    try:
        with (
            serve(settings=env, role="api") as server,
            httpx.Client(base_url=server.url, headers=ADMIN, timeout=30) as http,
        ):
            written = http.put("/v1/rules", json=RULES)
            assert written.status_code == 200, written.text
            assert written.json()["version"] == 1
            # This replica applies what it wrote at once.
            now = datetime.now(UTC) - timedelta(minutes=1)
            here = http.post("/v1/score", json=transactions(now)[0].model_dump(mode="json"))
            assert here.json()["decision"] == "alert"
            assert here.json()["reasons"][0]["feature"] == "rule:hot-terminal"

            poll(
                lambda: "applying rule set version 1" in worker.log_tail(20_000),
                bool,
                what="the worker following the rule set",
            )
            produce_transactions(kafka_settings, topics, transactions(now, "w"))
            scores = scores_by_id(
                read_topic(
                    kafka_settings,
                    topics.scores,
                    lambda read: {f"wd-{i}" for i in range(1, 5)} <= set(scores_by_id(read)),
                )
            )
            decisions = {tid: documents[0]["decision"] for tid, documents in scores.items()}
            assert {tid: d for tid, d in decisions.items() if tid.startswith("wd-")} == {
                "wd-1": "alert",
                "wd-2": "review",
                "wd-3": "pass",
                "wd-4": "alert",
            }
            alerts = read_topic(kafka_settings, topics.alerts, _holds(["wd-1", "wd-2", "wd-4"]))
            by_id = {
                str(document["transaction"]["transaction_id"]): document  # type: ignore[index]
                for document in alerts.documents()
            }
            assert by_id["wd-1"]["decision"] == "alert"
            assert by_id["wd-2"]["decision"] == "review"
            assert by_id["wd-1"]["reasons"][0]["feature"] == "rule:hot-terminal"  # type: ignore[index]
            assert by_id["wd-2"]["reasons"][0]["feature"] == "rule:web"  # type: ignore[index]
            assert "wd-3" not in by_id
            # Investigators see the worker's review beside its alerts, through the API role.
            listed = poll(
                lambda: {
                    a["transaction"]["transaction_id"]: a for a in http.get("/v1/alerts").json()
                },
                lambda found: {"wd-1", "wd-2"} <= set(found),
                what="the worker's alert and review in GET /v1/alerts",
            )
            assert listed["wd-2"]["decision"] == "review"

            # Rules removed: the worker stops applying them within about a second.
            assert http.put("/v1/rules", json={"rules": []}).json()["version"] == 2
            poll(
                lambda: "applying rule set version 2" in worker.log_tail(20_000),
                bool,
                what="the worker following the emptied rule set",
            )
            time.sleep(0.5)
            produce_transactions(kafka_settings, topics, transactions(now, "x"))
            after = scores_by_id(
                read_topic(
                    kafka_settings,
                    topics.scores,
                    lambda read: {f"xd-{i}" for i in range(1, 5)} <= set(scores_by_id(read)),
                )
            )
            assert {after[f"xd-{i}"][0]["decision"] for i in range(1, 5)} == {"pass"}
    finally:
        worker.stop()


def _holds(ids: list[str]) -> Callable[[TopicRead], bool]:
    def done(read: TopicRead) -> bool:
        found = {str(d["transaction"]["transaction_id"]) for d in read.documents()}  # type: ignore[index]
        return set(ids) <= found

    return done
