"""Retrain jobs in distributed mode: the lock and the job book in the real redis-server, the
learner's schedule on the time of the labels it learns, and an API replica's view of a job."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis

from pipelines.lifecycle.model_commands import ModelCommands
from pipelines.lifecycle.redis_retrain import RedisJobBook, RedisRetrainLock, RemoteRetrainJobs
from pipelines.offline.evaluation import EvaluationOptions, build_detector
from pipelines.retrain.book import RetrainRunningError
from pipelines.retrain.job import RetrainOptions, RetrainResult
from pipelines.retrain.jobs import RetrainJobs
from pipelines.retrain.offline_store import LabelClock, MemoryOfflineStore
from tests.builders import START, make_label, make_tx
from tests.pipelines.retrain.retrain_data import DELAY, replayed_store

PREFIX = "fraudstream:test:"


@pytest.fixture
def clients(redis_url: str) -> Iterator[tuple[redis.Redis, redis.Redis]]:
    """Two connections: the learner's and another process's (an API replica, a second learner)."""
    with redis.Redis.from_url(redis_url) as first, redis.Redis.from_url(redis_url) as second:
        yield first, second


def test_the_lock_names_its_holder_is_renewed_while_held_and_lapses_without_one(
    clients: tuple[redis.Redis, redis.Redis],
) -> None:
    learner = RedisRetrainLock(clients[0], prefix=PREFIX, ttl_seconds=0.3)
    other = RedisRetrainLock(clients[1], prefix=PREFIX, ttl_seconds=0.3)
    learner.acquire("job-a")
    with pytest.raises(RetrainRunningError) as refused:
        other.acquire("job-b")
    assert refused.value.running == "job-a"
    time.sleep(1.0)  # three TTLs: only the renewal keeps it
    assert other.holder() == "job-a"
    other.release("job-b")  # not its lock: nothing happens
    assert other.holder() == "job-a"
    learner.release("job-a")
    assert other.holder() is None
    # A holder that died leaves its key with the TTL it last set: the lock lapses with it.
    clients[0].set(learner.key, "dead-job", px=300)
    with pytest.raises(RetrainRunningError):
        other.acquire("job-c")
    time.sleep(0.4)
    other.acquire("job-c")
    assert learner.holder() == "job-c"
    other.release("job-c")


@pytest.mark.anyio
async def test_the_learners_schedule_follows_its_labels_and_any_client_sees_the_job(
    clients: tuple[redis.Redis, redis.Redis],
) -> None:
    store, now = replayed_store()
    options = RetrainOptions(
        train_days=7, test_days=3, delay=DELAY, algorithm="logistic", min_labels=100
    )
    applied: list[RetrainResult] = []

    def apply(result: RetrainResult) -> str:
        applied.append(result)
        return "m000042"

    # The learner scores nothing: its event time is that of the latest label it learned.
    clock = LabelClock(MemoryOfflineStore(store.feature_names), latest=now - timedelta(days=3))
    jobs = RetrainJobs(
        store,
        options,
        RedisRetrainLock(clients[0], prefix=PREFIX),
        apply,
        clock.now,
        book=RedisJobBook(clients[0], prefix=PREFIX),
    )
    replica = RemoteRetrainJobs(
        ModelCommands(clients[1], prefix=PREFIX),
        RedisJobBook(clients[1], prefix=PREFIX),
        RedisRetrainLock(clients[1], prefix=PREFIX),
    )
    schedule = asyncio.create_task(jobs.run_schedule(timedelta(days=2), check_seconds=0.02))
    try:
        await asyncio.sleep(0.2)
        assert replica.lock.holder() is None  # event time has not moved two days yet
        detector = build_detector(EvaluationOptions(label_delay=DELAY))
        hours = (now - START).total_seconds() / 3_600
        detector.score(make_tx(1, hours=hours - 24 * 7))
        detector.learn([make_label(1, False, hours=hours)], on_learned=clock.append)
        assert clock.now() == now
        deadline = time.monotonic() + 5
        while (running := replica.lock.holder()) is None:
            assert time.monotonic() < deadline, "the schedule started no job"
            await asyncio.sleep(0.02)
        seen = replica.get(running)
        assert seen is not None
        assert (seen.trigger, seen.state) in {("schedule", "queued"), ("schedule", "running")}
        second_learner = RetrainJobs(
            store, options, RedisRetrainLock(clients[1], prefix=PREFIX), apply, clock.now
        )
        with pytest.raises(RetrainRunningError) as refused:
            second_learner.submit("api")
        assert refused.value.running == running
        await jobs.wait()
    finally:
        schedule.cancel()
        await asyncio.gather(schedule, return_exceptions=True)
    done = replica.get(running)
    assert done is not None
    assert (done.state, done.version, done.progress) == ("succeeded", "m000042", 1.0), done.error
    assert done.as_of == now
    assert done.metrics["rows"] == applied[0].rows
    assert replica.lock.holder() is None
    # A job left running by a learner that died (its lock lapsed) is shown failed.
    RedisJobBook(clients[0], prefix=PREFIX).save(
        dataclasses.replace(done, id="orphan", state="running", version=None)
    )
    orphan = replica.get("orphan")
    assert orphan is not None
    assert orphan.state == "failed"
    assert orphan.error == "the learner stopped before the job finished"
    assert replica.get("never-was") is None
