"""The pending vectors and the cooldown book in a real Redis: writes taken to be made later are
read back by the process that took them before Redis has them, and from Redis after."""

from __future__ import annotations

from array import array
from collections.abc import Iterator

import pytest
import redis

from models.pending import PendingEntry
from models.schemas import Decision
from models.scored import Scored
from pipelines.redis_stores import RedisCooldownBook, RedisPendingStore

PREFIX = "fraudstream:test:"


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(redis_url) as connected:
        yield connected


def make_book(client: redis.Redis) -> RedisCooldownBook:
    return RedisCooldownBook(client, prefix=PREFIX, cooldown_seconds=3_600)


def make_store(client: redis.Redis) -> RedisPendingStore:
    return RedisPendingStore(client, prefix=PREFIX, ttl_seconds=86_400)


def make_entry(transaction_id: str, score: float) -> PendingEntry:
    scored = Scored(transaction_id, score, "logistic+1", Decision.PASS, 0.5, ())
    return PendingEntry(array("d", [score, 1.0]), "terminal-1", 1_000, scored, None, "card-1", ())


def test_cooldowns_on_their_way_are_read_by_their_book_alone_until_redis_has_them(
    client: redis.Redis,
) -> None:
    book, elsewhere = make_book(client), make_book(client)
    book.mark("card-1", 100)
    write = book.flushing()

    elsewhere.prefetch(["card-1"])
    assert elsewhere.last("card-1") is None  # not in Redis yet
    book.prefetch(["card-1", "card-2"])
    assert (book.last("card-1"), book.last("card-2")) == (100, None)

    write()
    elsewhere.prefetch(["card-1"])
    assert elsewhere.last("card-1") == 100
    # Once Redis has it, the book reads Redis again (here, a value another worker wrote).
    client.set(f"{PREFIX}cooldown:card-1", 250)
    book.prefetch(["card-1"])
    assert book.last("card-1") == 250


def test_a_later_mark_on_its_way_outlives_the_earlier_ones_acknowledgement(
    client: redis.Redis,
) -> None:
    book = make_book(client)
    book.mark("card-1", 100)
    first = book.flushing()
    book.mark("card-1", 200)
    second = book.flushing()

    first()  # Redis says 100; 200 is still on its way
    book.prefetch(["card-1"])
    assert book.last("card-1") == 200
    second()
    assert client.get(f"{PREFIX}cooldown:card-1") == b"200"


def test_nothing_to_write_writes_nothing(client: redis.Redis) -> None:
    book, store = make_book(client), make_store(client)
    book.flushing()()
    store.flushing()()
    assert client.dbsize() == 0


def test_vectors_on_their_way_are_found_by_their_store_before_redis_has_them(
    client: redis.Redis,
) -> None:
    store, elsewhere = make_store(client), make_store(client)
    entry = make_entry("t1", 0.25)
    store.put("t1", entry)
    write = store.flushing()

    assert elsewhere.get("t1") is None
    elsewhere.discard()
    store.prefetch(["t1", "t2"])
    assert (store.get("t1"), store.get("t2")) == (entry, None)

    write()
    assert elsewhere.get("t1") == entry
    assert make_store(client).get("t1") == entry
