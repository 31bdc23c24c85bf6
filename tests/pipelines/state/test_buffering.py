"""Which stores load ahead and write behind: the Redis ones, never the in-memory ones."""

from __future__ import annotations

import redis

from models.alerting import MemoryCooldownBook
from models.pending import PendingVectors
from pipelines.state.buffering import buffered
from pipelines.state.redis_stores import RedisCooldownBook, RedisPendingStore

PREFIX = "fraudstream:buffering-test:"


def test_the_redis_stores_buffer_and_the_memory_stores_act_at_once(redis_url: str) -> None:
    with redis.Redis.from_url(redis_url) as client:
        pending = RedisPendingStore(client, prefix=PREFIX, ttl_seconds=60)
        book = RedisCooldownBook(client, prefix=PREFIX, cooldown_seconds=60)
        assert buffered(pending) is pending
        assert buffered(book) is book
    assert buffered(PendingVectors(ttl_seconds=60)) is None
    assert buffered(MemoryCooldownBook(cooldown_seconds=60)) is None


def test_a_discarded_cooldown_mark_never_reaches_redis(redis_url: str) -> None:
    with redis.Redis.from_url(redis_url) as client:
        client.delete(f"{PREFIX}cooldown:card-1")
        book = RedisCooldownBook(client, prefix=PREFIX, cooldown_seconds=60)
        book.prefetch(["card-1"])
        book.mark("card-1", 30)
        assert book.last("card-1") == 30
        book.discard()
        book.flushing()()
        assert client.get(f"{PREFIX}cooldown:card-1") is None
        assert book.last("card-1") is None
