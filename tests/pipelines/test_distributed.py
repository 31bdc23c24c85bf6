"""Distributed mode end to end: real Tansu, real Redis, workers and the learner as processes.

The in-process path is the reference: on the same stream and model version, the workers must
give every transaction the score and decision it gives, and raise exactly its alerts, through
rebalances, crashes and a Redis restart.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from models.learners import OnlineLearner
from models.scored import Scored
from pipelines.bench.server_process import free_port
from pipelines.stream.dead_letters import read_dead_letter_headers
from pipelines.stream.kafka_clients import KafkaSettings
from pipelines.stream.record_decoding import ORIGINAL_BYTES_HEADER, ORIGINAL_SHA256_HEADER
from pipelines.stream.topics import Topics
from tests.pipelines.stream.distributed_harness import (
    Stream,
    TopicRead,
    distinct_ids_at_least,
    everything,
    expected_scores,
    metrics_page,
    produce,
    produce_transactions,
    publish_model,
    published_model,
    read_topic,
    role_env,
    scores_by_id,
    simulated_stream,
    start_role,
    trained_learner,
    warm_redis_state,
)
from tests.servers.redis_server import RedisServer
from tests.servers.role_process import RoleProcess

LIVE = 20_000
LIMIT = 65_536
"""The workers' default FRAUDSTREAM_MAX_RECORD_BYTES."""


@pytest.fixture(scope="module")
def stream() -> Stream:
    return simulated_stream(LIVE)


@pytest.fixture(scope="module")
def model() -> OnlineLearner:
    return trained_learner()


@pytest.fixture(scope="module")
def expected(model: OnlineLearner, stream: Stream) -> dict[str, Scored]:
    return expected_scores(model, stream)


def assert_same_as_in_process(
    scores: TopicRead, alerts: TopicRead, expected: dict[str, Scored]
) -> None:
    found = scores_by_id(scores)
    assert set(found) == set(expected)
    for transaction_id, documents in found.items():
        # The same model may go by another name here (the learner registers what it finds
        # published): the tests check versions themselves.
        want = {**expected[transaction_id].document(), "model_version": None}
        # A replay re-emits the first answer: repeats are identical, never a second opinion,
        # but for saying they are replays (a crash may leave the replay as the only record).
        assert all(
            {**document, "model_version": None, "replayed": False} == want for document in documents
        ), transaction_id
    alert_ids = [str(document["transaction"]["transaction_id"]) for document in alerts.documents()]  # type: ignore[index]
    assert len(alert_ids) == len(set(alert_ids)), "an alert was raised twice"
    assert set(alert_ids) == {tid for tid, s in expected.items() if s.decision.value == "alert"}


def test_two_workers_and_the_learner_score_like_the_in_process_path(
    kafka_settings: KafkaSettings,
    redis_url: str,
    topics: Topics,
    stream: Stream,
    model: OnlineLearner,
    expected: dict[str, Scored],
    tmp_path: Path,
) -> None:
    publish_model(redis_url, topics, model)
    warm_redis_state(redis_url, topics, stream.warm_up)
    env = role_env(kafka_settings, redis_url, topics, FRAUDSTREAM_DATA_DIR=str(tmp_path))
    roles = [
        start_role("learner", env, tmp_path, "learner"),
        start_role("worker", env, tmp_path, "worker-1"),
        start_role("worker", env, tmp_path, "worker-2"),
    ]
    try:
        # The learner registers the model it finds published as the deployment's first
        # version; the workers follow it before the stream starts.
        version = "m000001+0"
        _wait_for(
            lambda: (m := published_model(redis_url, topics)) is not None and m.version == version,
            what="the learner's first version",
        )
        time.sleep(2.5)  # two model polls
        produce_transactions(kafka_settings, topics, stream.live)
        scores = read_topic(kafka_settings, topics.scores, distinct_ids_at_least(LIVE))
        expected_alerts = sum(s.decision.value == "alert" for s in expected.values())
        assert expected_alerts >= 10, "the stream should raise alerts for the test to mean much"
        alerts = read_topic(
            kafka_settings,
            topics.alerts,
            lambda read: len(read.values) >= expected_alerts,
            settle=1.0,
        )
        assert_same_as_in_process(scores, alerts, expected)
        assert {document["model_version"] for document in scores.documents()} == {version}

        # Labels, days later: the learner learns each from the vector a worker stored, once.
        labelled = stream.live[:5_000]
        labels = [
            (
                None,
                orjson.dumps(
                    {
                        "transaction_id": tx.transaction_id,
                        "is_fraud": stream.is_fraud[tx.transaction_id],
                        "labelled_at": "2026-11-29T12:00:00Z",
                        "source": "chargeback",
                    }
                ),
            )
            for tx in labelled
        ]
        produce(kafka_settings, topics.labels, labels + labels[:500])  # 500 repeated
        want = model.labels_learned + len(labelled)
        learned = _wait_for(
            lambda: (
                (m := published_model(redis_url, topics)) is not None and m.labels_learned == want
            ),
            what=f"a published model with {want} labels",
        )
        assert learned
        newest = published_model(redis_url, topics)
        assert newest is not None
        assert newest.labels_learned == want  # the repeated labels were not learned again

        # The workers pick the new version up without a restart.
        probe = stream.live[-1].model_copy(update={"transaction_id": "probe-after-learning"})
        time.sleep(2.5)  # two model polls
        produce_transactions(kafka_settings, topics, [probe])
        after = read_topic(kafka_settings, topics.scores, distinct_ids_at_least(LIVE + 1))
        assert scores_by_id(after)["probe-after-learning"][0]["model_version"] == newest.version
        for role in roles:
            assert role.stop() == 0, role.log_tail()
    finally:
        for role in roles:
            if role.alive():
                role.kill()


def _one_worker_through_a_fault(
    fault: Callable[[RoleProcess], RoleProcess],
    kafka_settings: KafkaSettings,
    redis_url: str,
    topics: Topics,
    stream: Stream,
    model: OnlineLearner,
    expected: dict[str, Scored],
    tmp_path: Path,
) -> RoleProcess:
    """Stream the live part through one worker; a quarter of the way, ``fault`` strikes and
    returns the worker that goes on. Every score and alert must still be the in-process one."""
    publish_model(redis_url, topics, model)
    warm_redis_state(redis_url, topics, stream.warm_up)
    env = role_env(kafka_settings, redis_url, topics, FRAUDSTREAM_MAX_POLL_RECORDS="200")
    worker = start_role("worker", env, tmp_path, "worker-a")
    try:
        produce_transactions(kafka_settings, topics, stream.live)
        read_topic(kafka_settings, topics.scores, distinct_ids_at_least(LIVE // 4))
        worker = fault(worker)
        scores = read_topic(kafka_settings, topics.scores, distinct_ids_at_least(LIVE))
        alerts = read_topic(kafka_settings, topics.alerts, everything, settle=1.0)
        assert_same_as_in_process(scores, alerts, expected)
        assert {document["model_version"] for document in scores.documents()} == {model.version}
        log = worker.log_tail(100_000)
        assert worker.stop() == 0, log
        return worker
    finally:
        if worker.alive():
            worker.kill()


def test_a_worker_killed_mid_stream_loses_nothing_and_alerts_nothing_twice(
    kafka_settings: KafkaSettings,
    redis_url: str,
    topics: Topics,
    stream: Stream,
    model: OnlineLearner,
    expected: dict[str, Scored],
    tmp_path: Path,
) -> None:
    def kill_and_replace(worker: RoleProcess) -> RoleProcess:
        worker.kill()
        return start_role("worker", worker.env, tmp_path, "worker-b")

    _one_worker_through_a_fault(
        kill_and_replace, kafka_settings, redis_url, topics, stream, model, expected, tmp_path
    )


def test_the_worker_rides_out_a_redis_restart(
    kafka_settings: KafkaSettings,
    redis_url: str,
    redis_server: RedisServer,
    topics: Topics,
    stream: Stream,
    model: OnlineLearner,
    expected: dict[str, Scored],
    tmp_path: Path,
) -> None:
    def restart_redis(worker: RoleProcess) -> RoleProcess:
        redis_server.stop()  # graceful: the append-only file keeps every acknowledged write
        time.sleep(2.0)
        assert worker.alive(), worker.log_tail()
        redis_server.start()
        return worker

    worker = _one_worker_through_a_fault(
        restart_redis, kafka_settings, redis_url, topics, stream, model, expected, tmp_path
    )
    assert "retrying" in worker.log.read_text(errors="replace")


def test_poison_records_go_to_the_dead_letter_topic_and_the_rest_are_scored(
    kafka_settings: KafkaSettings,
    redis_url: str,
    topics: Topics,
    stream: Stream,
    model: OnlineLearner,
    tmp_path: Path,
) -> None:
    publish_model(redis_url, topics, model)
    good = stream.live[:2_000]
    poison: list[tuple[bytes | None, bytes]] = [
        (b"k", b"\x00\xffnot json at all"),
        (b"k", b'{"transaction_id": "t-trunc", "timestamp": "2026-11-29T1'),
        (
            None,
            orjson.dumps({**_document(good[0]), "transaction_id": "wrong-type", "amount": "12"}),
        ),
        (None, orjson.dumps({**_document(good[0]), "transaction_id": "neg", "amount": -5.0})),
        (None, orjson.dumps({**_document(good[0]), "transaction_id": "extra", "loyalty": 3})),
        (
            None,
            orjson.dumps(
                {
                    **_document(good[0]),
                    "transaction_id": "naive",
                    "timestamp": "2026-11-29T12:00:00",
                }
            ),
        ),
        (None, b"[]"),
        (None, b""),
        (None, b"x" * 70_000),  # over the 64 KiB record limit
        (None, os.urandom(1_000_000)),  # a megabyte of noise
    ] * 2 + [(None, orjson.dumps({"transaction_id": "only-an-id"}))] * 2
    records: list[tuple[bytes | None, bytes]] = [
        (tx.card_id.encode(), tx.model_dump_json().encode()) for tx in good
    ]
    for index, bad in enumerate(poison):  # about 1 %, spread through the stream
        records.insert(100 * index + 50, bad)
    metrics_port = free_port()
    env = role_env(kafka_settings, redis_url, topics, FRAUDSTREAM_METRICS_PORT=str(metrics_port))
    worker = start_role("worker", env, tmp_path, "worker")
    try:
        produce(kafka_settings, topics.transactions, records)
        scores = read_topic(kafka_settings, topics.scores, distinct_ids_at_least(len(good)))
        dead = read_topic(kafka_settings, topics.dlq, lambda read: len(read.values) >= len(poison))
        assert set(scores_by_id(scores)) == {tx.transaction_id for tx in good}
        # Dead letters keep the original bytes, cut to the size limit (with the full length
        # and sha256 in headers) when they were over it.
        assert sorted(dead.values) == sorted(value[:LIMIT] for _, value in poison)
        for value, headers in zip(dead.values, dead.headers, strict=True):
            if len(value) == LIMIT:
                named = dict(headers)
                original = next(v for _, v in poison if v[:LIMIT] == value)
                assert named[ORIGINAL_BYTES_HEADER] == str(len(original)).encode()
                sha256 = hashlib.sha256(original).hexdigest().encode()
                assert named[ORIGINAL_SHA256_HEADER] == sha256
        reasons = [read_dead_letter_headers(headers) for headers in dead.headers]
        assert all(info.source_topic == topics.transactions for info in reasons)
        by_value = {value: info.reason for value, info in zip(dead.values, reasons, strict=True)}
        assert (
            "amount"
            in by_value[
                orjson.dumps({**_document(good[0]), "transaction_id": "neg", "amount": -5.0})
            ]
        )
        assert "size limit" in by_value[b"x" * LIMIT]
        # The worker's own metrics count the same, and nothing is left to read.
        oversize = sum(len(value) > LIMIT for _, value in poison)
        series = metrics_page(f"http://127.0.0.1:{metrics_port}/metrics")
        assert series["fraudstream_transactions_scored_total"] == len(good)
        assert series['fraudstream_dlq_records_total{reason="oversize"}'] == oversize
        assert series['fraudstream_dlq_records_total{reason="invalid"}'] == len(poison) - oversize
        assert series["fraudstream_consumer_lag"] == 0
        assert worker.alive()
        assert worker.stop() == 0, worker.log_tail()
    finally:
        if worker.alive():
            worker.kill()


def _document(tx: object) -> dict[str, object]:
    return orjson.loads(tx.model_dump_json())  # type: ignore[attr-defined,no-any-return]


def _wait_for(condition: object, *, what: str, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.25)
    raise AssertionError(f"no {what} after {timeout} s")
