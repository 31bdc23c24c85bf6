"""`fraudstream api`: the HTTP API over Redis and Kafka, as a real process on real servers."""

from __future__ import annotations

import asyncio
import time

import httpx
import orjson
import pytest
import redis

from models.learners import OnlineLearner
from models.scored import Scored
from pipelines.bench.server_process import serve
from pipelines.stream.kafka_clients import KafkaSettings
from pipelines.stream.topics import Topics
from tests.pipelines.stream.distributed_harness import (
    ADMIN,
    Stream,
    copy_of,
    expected_scores,
    poll,
    publish_model,
    read_topic,
    role_env,
    simulated_stream,
    trained_learner,
    warm_redis_state,
)
from tests.servers.redis_server import RedisServer

LIVE = 3_000


@pytest.fixture(scope="module")
def stream() -> Stream:
    return simulated_stream(LIVE, seed=23)


@pytest.fixture(scope="module")
def model() -> OnlineLearner:
    return trained_learner()


@pytest.fixture(scope="module")
def expected(model: OnlineLearner, stream: Stream) -> dict[str, Scored]:
    return expected_scores(model, stream)


def _json(tx: object) -> object:
    return orjson.loads(tx.model_dump_json())  # type: ignore[attr-defined]


def test_the_api_role_scores_like_the_in_process_path_and_hands_the_rest_to_kafka(
    kafka_settings: KafkaSettings,
    redis_url: str,
    topics: Topics,
    stream: Stream,
    model: OnlineLearner,
    expected: dict[str, Scored],
) -> None:
    version = publish_model(redis_url, topics, model)
    warm_redis_state(redis_url, topics, stream.warm_up)
    env = role_env(kafka_settings, redis_url, topics)
    with (
        serve(settings=env, role="api") as server,
        httpx.Client(base_url=server.url, headers=ADMIN) as http,
    ):
        # Scores: the in-process path's, transaction by transaction, in batches.
        for start in range(0, LIVE, 500):
            batch = stream.live[start : start + 500]
            answer = http.post("/v1/score/batch", json=[_json(tx) for tx in batch])
            assert answer.status_code == 200, answer.text
            for got in answer.json()["scores"]:
                want = expected[got["transaction_id"]]
                assert (got["score"], got["decision"], got["model_version"]) == (
                    want.score,
                    want.decision.value,
                    version,
                )
        # A scored id sent again: the same content is answered as a replay (published marked
        # so, with no second alert), other content is refused.
        alerted = {tid for tid, s in expected.items() if s.decision.value == "alert"}
        assert alerted
        repeat = next(tx for tx in stream.live if tx.transaction_id in alerted)
        again = http.post("/v1/score", json=_json(repeat))
        assert again.status_code == 200, again.text
        assert (again.json()["score"], again.json()["replayed"]) == (
            expected[repeat.transaction_id].score,
            True,
        )
        altered = repeat.model_copy(update={"amount": repeat.amount + 1})
        refused = http.post("/v1/score", json=_json(altered))
        assert refused.status_code == 409, refused.text
        assert repeat.transaction_id in refused.text

        # ... and they are published too, alerts included.
        scores = read_topic(
            kafka_settings, topics.scores, lambda read: len(read.values) >= LIVE + 1
        )
        replays = [doc for doc in scores.documents() if doc["replayed"]]
        assert [doc["transaction_id"] for doc in replays] == [repeat.transaction_id]
        assert len({doc["transaction_id"] for doc in scores.documents()}) == LIVE
        alerts = read_topic(
            kafka_settings,
            topics.alerts,
            lambda read: len(read.values) >= len(alerted),
            settle=1.0,
        )
        assert len(alerts.values) == len(alerted)
        assert {
            document["transaction"]["transaction_id"]  # type: ignore[index]
            for document in alerts.documents()
        } == alerted

        # Transactions and labels are handed to their topics for the workers and the learner.
        later = stream.live[-1].model_copy(update={"transaction_id": "via-topic"})
        accepted = http.post("/v1/transactions", json=_json(later))
        assert accepted.status_code == 202, accepted.text
        label = {
            "transaction_id": "via-topic",
            "is_fraud": True,
            "labelled_at": "2026-11-29T12:00:00Z",
            "source": "analyst",
        }
        queued = http.post("/v1/labels", json=label)
        assert queued.status_code == 202, queued.text
        assert queued.json()["accepted"] == 1
        on_topic = read_topic(kafka_settings, topics.transactions, lambda read: bool(read.values))
        assert on_topic.documents()[0]["transaction_id"] == "via-topic"
        labels = read_topic(kafka_settings, topics.labels, lambda read: bool(read.values))
        assert labels.documents()[0]["transaction_id"] == "via-topic"

        # The alert feed follows the alerts topic (the local scores reach it from there).
        poll(
            lambda: http.get("/v1/alerts", params={"limit": 1_000}).json(),
            lambda shown: {alert["transaction"]["transaction_id"] for alert in shown} == alerted,
            what="every alert in GET /v1/alerts",
        )
        # An analyst's verdict on one goes to the learner through the labels topic.
        judged = http.post(f"/v1/alerts/{repeat.transaction_id}/verdict", json={"is_fraud": True})
        assert judged.status_code == 202, judged.text
        assert judged.json()["status"] == "accepted"
        verdicts = read_topic(kafka_settings, topics.labels, lambda read: len(read.values) >= 2)
        assert (repeat.transaction_id, "analyst", True) in {
            (doc["transaction_id"], doc["source"], doc["is_fraud"]) for doc in verdicts.documents()
        }
        shown = http.get("/v1/alerts", params={"card_id": repeat.card_id}).json()
        assert {a["transaction"]["transaction_id"]: a["verdict"] for a in shown}[
            repeat.transaction_id
        ] == "fraud"

        # A newly published version is picked up without a restart.
        newer = copy_of(model)
        newer.learn({"amount": 1.0}, is_fraud=False)
        publish_model(redis_url, topics, newer)
        probe = stream.live[0].model_copy(update={"transaction_id": "after-publish"})
        poll(
            lambda: http.post(
                "/v1/score",
                json=_json(
                    probe.model_copy(
                        update={"transaction_id": f"after-publish-{time.monotonic_ns()}"}
                    )
                ),
            ).json()["model_version"],
            lambda seen: seen == newer.version,
            what="a score by the newly published version",
        )


def test_the_api_is_not_ready_while_redis_is_down_and_recovers(
    kafka_settings: KafkaSettings,
    redis_url: str,
    redis_server: RedisServer,
    topics: Topics,
    model: OnlineLearner,
    stream: Stream,
) -> None:
    publish_model(redis_url, topics, model)
    env = role_env(kafka_settings, redis_url, topics)
    with (
        serve(settings=env, role="api") as server,
        httpx.Client(base_url=server.url, headers=ADMIN) as http,
    ):
        tx = _json(stream.live[0])
        assert http.post("/v1/score", json=tx).status_code == 200
        redis_server.stop()
        try:
            poll(lambda: http.get("/readyz").status_code, lambda code: code == 503, what="503")
            refused = http.post("/v1/score", json={**tx, "transaction_id": "while-down"})  # type: ignore[dict-item]
            assert refused.status_code == 503
            assert "unavailable" in refused.json()["detail"]
        finally:
            redis_server.start()
        poll(lambda: http.get("/readyz").status_code, lambda code: code == 200, what="ready")
        again = http.post("/v1/score", json={**tx, "transaction_id": "after-restart"})  # type: ignore[dict-item]
        assert again.status_code == 200, again.text


_BUSY_FOR_MS = """
local started = redis.call('TIME')
local until_us = started[1] * 1000000 + started[2] + tonumber(ARGV[1]) * 1000
repeat
  local now = redis.call('TIME')
until now[1] * 1000000 + now[2] >= until_us
return 1
"""


def test_a_score_waiting_on_a_busy_redis_holds_up_no_other_request(
    kafka_settings: KafkaSettings,
    redis_url: str,
    topics: Topics,
    stream: Stream,
    model: OnlineLearner,
) -> None:
    publish_model(redis_url, topics, model)
    env = role_env(kafka_settings, redis_url, topics)
    finished: list[str] = []

    async def requests(url: str) -> None:
        async with httpx.AsyncClient(base_url=url, headers=ADMIN, timeout=30) as http:

            async def score() -> None:
                await asyncio.sleep(0.2)  # Redis is busy by then
                probe = stream.live[0].model_copy(update={"transaction_id": "while-busy"})
                answer = await http.post("/v1/score", json=_json(probe))
                assert answer.status_code == 200, answer.text
                finished.append("score")

            async def health() -> None:
                await asyncio.sleep(0.6)  # the score waits on Redis by then
                answer = await http.get("/healthz")
                assert answer.status_code == 200
                finished.append("healthz")

            busy = redis.Redis.from_url(redis_url)
            # One script keeps Redis to itself for two seconds, as a slow network might.
            await asyncio.gather(
                asyncio.to_thread(busy.eval, _BUSY_FOR_MS, 0, 2_000), score(), health()
            )
            busy.close()

    with serve(settings=env, role="api") as server:
        poll(
            lambda: httpx.get(f"{server.url}/readyz").status_code,
            lambda status: status == 200,
            what="the API replica ready",
        )
        asyncio.run(requests(server.url))
    # The health check was answered while the score still waited on Redis.
    assert finished == ["healthz", "score"]
