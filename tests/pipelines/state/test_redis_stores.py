"""The pending vectors and the cooldown book in a real Redis: writes taken to be made later are
read back by the process that took them before Redis has them, and from Redis after."""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import redis

from models.pending import PendingEntry
from models.schemas import Decision
from models.scored import Scored
from pipelines.state.redis_stores import (
    RedisCooldownBook,
    RedisPendingStore,
    decode_entry,
    written_together,
)

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


class CountingConnection(redis.Connection):
    """Counts what it sends to the server: one packed send is one round trip."""

    sends = 0

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        CountingConnection.sends += 1
        super().send_packed_command(command, check_health)  # type: ignore[no-untyped-call]


def test_a_batchs_writes_are_made_together_in_one_round_trip(redis_url: str) -> None:
    pool = redis.ConnectionPool.from_url(redis_url, connection_class=CountingConnection)
    with redis.Redis(connection_pool=pool) as client:
        store, book = make_store(client), make_book(client)
        client.ping()
        for round_ in range(2):
            if round_:
                client.script_flush()  # as after a restart: the vectors' script is loaded again
            tid = f"t{round_}"
            store.put(tid, make_entry(tid, 0.5))
            book.mark(f"card-{round_}", 60)
            write = written_together([store.flushing(), book.flushing()])
            CountingConnection.sends = 0
            write()
            # One round trip, or three when Redis lost the script (write, load, write again).
            assert CountingConnection.sends == (3 if round_ else 1)
            assert make_store(client).get(tid) == make_entry(tid, 0.5)
            assert client.get(f"{PREFIX}cooldown:card-{round_}") == b"60"
            # Settled: nothing is laid over the reads any more.
            client.delete(f"{PREFIX}cooldown:card-{round_}")
            book.prefetch([f"card-{round_}"])
            assert book.last(f"card-{round_}") is None
    pool.disconnect()


def test_an_entry_written_before_digests_reads_back_without_one() -> None:
    entry = decode_entry(
        orjson.dumps([[1.0], "p1", 5, ["t1", 0.5, "v+0", "pass", 0.5, []], None, "c1", []])
    )
    assert (entry.digest, entry.corrections, entry.scored.replayed) == (None, 0, False)
