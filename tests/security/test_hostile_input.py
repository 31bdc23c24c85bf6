"""Hostile input that would move state: times out of range, ids reused, verdicts flipped.

Each test plays a finding of the trust review against a running service (the app over HTTP,
or a real worker and learner on the real broker and Redis) and checks the safe outcome: a
clear refusal naming what is wrong, and the state as it was.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from models.schemas import Transaction
from pipelines.bench.server_process import serve
from pipelines.runtime.embedded import EmbeddedRuntime
from pipelines.stream.dead_letters import read_dead_letter_headers
from pipelines.stream.kafka_clients import KafkaSettings
from pipelines.stream.topics import Topics
from tests.pipelines.stream.distributed_harness import (
    produce,
    read_topic,
    role_env,
    scores_by_id,
    start_learner,
    start_role,
)
from tests.service.client import api_client, transaction

pytestmark = pytest.mark.anyio

FAR_FUTURE = "9999-12-31T23:59:59Z"
OUT_OF_CALENDAR = ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"]


def _now() -> datetime:
    return datetime.now(UTC)


def _at(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _tx(index: int, *, minutes_ago: float = 60.0, **fields: Any) -> dict[str, Any]:
    """The shared client's transaction, dated ``minutes_ago`` before now."""
    dated = {"timestamp": _at(_now() - timedelta(minutes=minutes_ago))}
    return transaction(index, **(dated | fields))


def _label(transaction_id: str, is_fraud: bool, **fields: Any) -> dict[str, Any]:
    return {
        "transaction_id": transaction_id,
        "is_fraud": is_fraud,
        "labelled_at": _at(_now()),
        "source": "analyst",
        **fields,
    }


def _runtime(app: Any) -> EmbeddedRuntime:
    runtime: EmbeddedRuntime = app.state.runtime
    return runtime


def _locations(response: httpx.Response) -> list[list[str | int]]:
    return [problem["loc"] for problem in response.json()["detail"]]


async def test_a_far_future_transaction_is_refused_and_the_label_backlog_stays() -> None:
    async with api_client() as (client, app):
        runtime = _runtime(app)
        batch = [_tx(index, minutes_ago=120 - index) for index in range(100)]
        assert (await client.post("/v1/score/batch", json=batch)).status_code == 200
        backlog, watermark = runtime.detector.pending.awaiting_label, runtime.detector.watermark
        assert backlog == 100

        for path, body in (
            ("/v1/score", _tx(1_000, timestamp=FAR_FUTURE)),
            ("/v1/score/batch", [_tx(1_001), _tx(1_002, timestamp=FAR_FUTURE)]),
            ("/v1/transactions", _tx(1_003, timestamp=FAR_FUTURE)),
        ):
            response = await client.post(path, json=body)
            assert response.status_code == 422, path
            [location] = _locations(response)
            assert location[-1] == "timestamp"
            assert "ahead of the service's clock" in response.json()["detail"][0]["msg"]

        # A whole batch is refused with its bad item: the good one in it was not scored.
        assert runtime.detector.vector_of("tx-1001") is None
        assert runtime.detector.pending.awaiting_label == backlog
        assert runtime.detector.watermark == watermark
        labels = [_label(f"tx-{index}", index % 10 == 0) for index in range(50)]
        learned = (await client.post("/v1/labels", json=labels)).json()
        assert (learned["learned"], learned["unknown"]) == (50, [])


async def test_time_before_the_floor_and_labels_out_of_range_are_refused_naming_the_field() -> None:
    async with api_client() as (client, _):
        old = await client.post("/v1/score", json=_tx(1, timestamp="1999-12-31T23:59:59Z"))
        assert old.status_code == 422
        assert "earliest event time" in old.json()["detail"][0]["msg"]
        await client.post("/v1/score", json=_tx(2))
        for labelled_at in (FAR_FUTURE, "0001-01-01T00:00:00Z"):
            response = await client.post(
                "/v1/labels", json=_label("tx-2", True, labelled_at=labelled_at)
            )
            assert response.status_code == 422
            assert _locations(response) == [["body", "labelled_at"]]
        assert (await client.post("/v1/labels", json=_label("tx-2", True))).json()["learned"] == 1


async def test_the_skew_and_the_floor_are_settings() -> None:
    async with api_client(max_clock_skew="2d", min_event_time="2026-01-01T00:00:00Z") as (
        client,
        _,
    ):
        tomorrow = _tx(1, timestamp=_at(_now() + timedelta(days=1)))
        assert (await client.post("/v1/score", json=tomorrow)).status_code == 200
        last_year = _tx(2, timestamp="2025-12-31T00:00:00Z")
        assert (await client.post("/v1/score", json=last_year)).status_code == 422


@pytest.mark.parametrize("timestamp", OUT_OF_CALENDAR)
async def test_a_time_outside_the_calendar_in_utc_is_a_422_never_a_500(timestamp: str) -> None:
    async with api_client() as (client, _):
        for path, body in (
            ("/v1/score", _tx(1, timestamp=timestamp)),
            ("/v1/score/batch", [_tx(2, timestamp=timestamp)]),
            ("/v1/transactions", [_tx(3, timestamp=timestamp)]),
            ("/v1/labels", _label("tx-1", True, labelled_at=timestamp)),
        ):
            response = await client.post(path, json=body)
            assert response.status_code == 422, path
            assert response.json()["detail"][0]["type"] == "datetime_out_of_range"


async def test_a_repeat_is_answered_as_replayed_and_another_transaction_under_its_id_is_409() -> (
    None
):
    async with api_client() as (client, app):
        runtime = _runtime(app)
        body = _tx(1)
        first = (await client.post("/v1/score", json=body)).json()
        assert first["replayed"] is False
        again = (await client.post("/v1/score", json=body)).json()
        assert again["replayed"] is True
        keep = ("score", "model_version", "decision", "reasons", "threshold")
        assert {name: again[name] for name in keep} == {name: first[name] for name in keep}
        scored = runtime.board.scored

        edited = {**body, "amount": 4_200.0}
        for path, payload in (
            ("/v1/score", edited),
            ("/v1/score/batch", [_tx(2), edited]),
            ("/v1/transactions", [edited]),
        ):
            response = await client.post(path, json=payload)
            assert response.status_code == 409, path
            assert "tx-1" in response.json()["detail"]
            assert "different content" in response.json()["detail"]
        assert runtime.board.scored == scored
        # The first answer stands: sent again, the original is still a replay of it.
        third = (await client.post("/v1/score", json=body)).json()
        assert (third["score"], third["replayed"]) == (first["score"], True)
        # The batch's other transaction was not answered; sent again it is.
        retried = await client.post("/v1/score/batch", json=[_tx(2)])
        assert retried.status_code == 200


async def test_a_repeated_alerting_transaction_raises_no_second_alert() -> None:
    async with api_client(alert_threshold=0.0) as (client, _):
        body = _tx(1)
        first = (await client.post("/v1/score", json=body)).json()
        assert first["decision"] == "alert"
        for path, payload in (("/v1/score", body), ("/v1/score/batch", [body])):
            response = await client.post(path, json=payload)
            assert response.status_code == 200, path
        alerts = (await client.get("/v1/alerts", params={"limit": 100})).json()
        assert [alert["transaction"]["transaction_id"] for alert in alerts] == ["tx-1"]


async def test_a_thousand_alternating_labels_for_one_id_move_the_model_once() -> None:
    async with api_client() as (client, _):
        # A model that has learned some legitimate traffic scores a large payment low.
        warm = [_tx(100 + i, minutes_ago=300 - i, amount=20.0 + i % 30) for i in range(300)]
        await client.post("/v1/score/batch", json=warm)
        await client.post("/v1/labels", json=[_label(tx["transaction_id"], False) for tx in warm])
        target, similar = _tx(1, amount=900.0), _tx(2, amount=900.0, card_id="card-1")
        await client.post("/v1/score", json=target)
        before = (await client.post("/v1/score", json=similar)).json()["score"]
        assert before < 0.1
        models_before = (await client.get("/v1/models")).json()["models"][0]["labels_learned"]

        flips = [_label("tx-1", index % 2 == 0) for index in range(1_000)]
        outcome = (await client.post("/v1/labels", json=flips)).json()
        assert outcome["statuses"][:3] == ["learned", "corrected", "refused"]
        assert (outcome["learned"], outcome["corrected"]) == (2, 1)
        assert outcome["refused"] == ["tx-1"] * outcome["statuses"].count("refused")
        assert outcome["repeated"] + len(outcome["refused"]) == 998
        models = (await client.get("/v1/models")).json()["models"]
        assert models[0]["labels_learned"] == models_before + 2

        # Another request flipping it again is refused too, label by label.
        more = (await client.post("/v1/labels", json=[_label("tx-1", True)])).json()
        assert more["statuses"] == ["refused"]
        # Unbounded, these flips took the same transaction from about 0 to 0.57.
        rescored = await client.post("/v1/score", json={**similar, "transaction_id": "tx-3"})
        assert rescored.json()["score"] < 0.1


async def test_the_simulated_feed_runs_on_its_own_clock() -> None:
    async with api_client() as (client, app):
        runtime = _runtime(app)
        next_month = _tx(1, timestamp=_at(_now() + timedelta(days=30)))
        assert (await client.post("/v1/score", json=next_month)).status_code == 422
        # The simulator submits straight to the runtime, its event time ahead of the clock.
        runtime.enqueue([Transaction.model_validate({**next_month, "transaction_id": "sim-1"})])
        await runtime.drain()
        assert runtime.detector.vector_of("sim-1") is not None


def test_on_kafka_times_out_of_range_and_conflicting_repeats_are_dead_lettered(
    kafka_settings: KafkaSettings, redis_url: str, topics: Topics, tmp_path: Path
) -> None:
    env = role_env(kafka_settings, redis_url, topics, FRAUDSTREAM_DATA_DIR=str(tmp_path))
    learner = start_learner(env, tmp_path, redis_url, topics)
    worker = start_role("worker", env, tmp_path, "worker")
    try:
        good = _tx(1, card_id="card-k")
        bad = {
            "future": _tx(2, card_id="card-k", transaction_id="future", timestamp=FAR_FUTURE),
            "year-1": _tx(
                3, card_id="card-k", transaction_id="year-1", timestamp=OUT_OF_CALENDAR[0]
            ),
            "year-9999": _tx(
                4, card_id="card-k", transaction_id="year-9999", timestamp=OUT_OF_CALENDAR[1]
            ),
            "year-9999-east": _tx(
                5,
                card_id="card-k",
                transaction_id="year-9999-east",
                timestamp="9999-12-31T23:59:59+14:00",
            ),
        }
        edited = {**good, "amount": 4_200.0}
        records = [(b"card-k", orjson.dumps(body)) for body in (good, *bad.values(), good, edited)]
        produce(kafka_settings, topics.transactions, records)
        label = _label("tx-1", True, labelled_at=FAR_FUTURE)
        produce(kafka_settings, topics.labels, [(None, orjson.dumps(label))])

        dead = read_topic(
            kafka_settings, topics.dlq, lambda read: len(read.values) >= 6, settle=1.0
        )
        assert len(dead.values) == 6
        transactions = [
            (value, header)
            for value, header in zip(dead.values, dead.headers, strict=True)
            if read_dead_letter_headers(header).source_topic == topics.transactions
        ]
        by_reason: dict[str, list[str]] = {}
        for value, header in transactions:
            reason = read_dead_letter_headers(header).reason
            by_reason.setdefault(orjson.loads(value)["transaction_id"], []).append(reason)
        assert set(by_reason) == {*bad, "tx-1"}
        assert "ahead of the service's clock" in by_reason["future"][0]
        assert "ahead of the service's clock" in by_reason["year-9999-east"][0]
        assert "outside the years 1 to 9999" in by_reason["year-1"][0]
        assert "outside the years 1 to 9999" in by_reason["year-9999"][0]
        assert by_reason["tx-1"] == [
            "transaction_id: tx-1 was already scored with different content"
        ]
        assert [value for value, _ in transactions if b"4200" in value] == [orjson.dumps(edited)]
        [label_letter] = [
            read_dead_letter_headers(header)
            for header in dead.headers
            if read_dead_letter_headers(header).source_topic == topics.labels
        ]
        assert label_letter.reason.startswith("labelled_at: ")

        scores = scores_by_id(
            read_topic(kafka_settings, topics.scores, lambda read: len(read.values) >= 2)
        )
        assert [document["replayed"] for document in scores["tx-1"]] == [False, True]
        assert scores["tx-1"][0]["score"] == scores["tx-1"][1]["score"]
    finally:
        try:
            worker.stop()
        finally:
            learner.stop()


@pytest.mark.parametrize("moment", ["2026-01-01T00:00:00", *OUT_OF_CALENDAR])
async def test_alert_filters_refuse_naive_and_out_of_calendar_times_with_a_422(moment: str) -> None:
    async with api_client(alert_threshold=0.0) as (client, _):
        await client.post("/v1/score", json=_tx(1))
        for name in ("since", "until"):
            response = await client.get("/v1/alerts", params={name: moment})
            assert response.status_code == 422
            assert _locations(response) == [["query", name]]
        assert (
            len((await client.get("/v1/alerts", params={"since": "2000-01-01T00:00:00Z"})).json())
            == 1
        )


def _label_backlog(client: httpx.Client) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("fraudstream_label_backlog "):
            return float(line.split()[1])
    raise AssertionError("no fraudstream_label_backlog in /metrics")


def test_a_real_server_refuses_hostile_times_and_keeps_its_backlog() -> None:
    with (
        serve(settings={"FRAUDSTREAM_LOG_LEVEL": "warning"}) as server,
        httpx.Client(base_url=server.url, timeout=30, trust_env=False) as client,
    ):
        batch = [_tx(index, minutes_ago=200 - index) for index in range(150)]
        assert client.post("/v1/score/batch", json=batch).status_code == 200
        assert _label_backlog(client) == 150
        for timestamp in (FAR_FUTURE, *OUT_OF_CALENDAR):
            response = client.post("/v1/score", json=_tx(1_000, timestamp=timestamp))
            assert response.status_code == 422, timestamp
            assert _locations(response) == [["body", "timestamp"]]
        assert _label_backlog(client) == 150
        labels = [_label(f"tx-{index}", False) for index in range(100)]
        assert client.post("/v1/labels", json=labels).json()["learned"] == 100
        assert _label_backlog(client) == 50


def test_a_real_server_with_simulated_traffic_still_feeds_it_and_bounds_clients() -> None:
    settings = {
        "FRAUDSTREAM_LOG_LEVEL": "warning",
        "FRAUDSTREAM_SIMULATE_RATE": "200",
        "FRAUDSTREAM_SIMULATE_CUSTOMERS": "100",
        "FRAUDSTREAM_SIMULATE_TERMINALS": "200",
        "FRAUDSTREAM_SIMULATE_HISTORY_DAYS": "3",
        "FRAUDSTREAM_ALERT_THRESHOLD": "0",  # every card alerts: alerts show the feed's times
    }
    with (
        serve(settings=settings) as server,
        httpx.Client(base_url=server.url, timeout=30, trust_env=False) as client,
    ):
        scored = [client.get("/v1/dashboard").json()["transactions_scored"]]
        deadline = time.monotonic() + 60
        while scored[-1] < scored[0] + 100 and time.monotonic() < deadline:
            time.sleep(0.5)
            scored.append(client.get("/v1/dashboard").json()["transactions_scored"])
        assert scored[-1] >= scored[0] + 100, "the simulated feed stopped"
        # Simulated event time runs faster than the clock, past what a client may send.
        ahead = _now() + timedelta(hours=1)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            alerts = client.get("/v1/alerts", params={"limit": 1_000}).json()
            times = [datetime.fromisoformat(a["transaction"]["timestamp"]) for a in alerts]
            if max(times, default=ahead) > ahead:
                break
            time.sleep(0.5)
        else:
            raise AssertionError("the simulated feed never ran ahead of the clock")
        assert client.post("/v1/score", json=_tx(1)).status_code == 200
        assert client.post("/v1/score", json=_tx(2, timestamp=FAR_FUTURE)).status_code == 422
