"""What the scorers and the learner share in Redis besides feature state.

- The vectors awaiting their labels (`RedisPendingStore`): a worker stores what it scored, the
  learner finds it days later, and a replayed transaction finds its first answer there.
- The cooldown book (`RedisCooldownBook`): one alert per card per cooldown, whichever worker
  scores the card.
- Delivered-alert marks (`DeliveredAlerts`): a replay after a crash re-emits a score but not an
  alert that already reached the topic.

Each batch costs at most one round trip per store: reads are prefetched together, writes are
buffered and flushed together (a batch's pending vectors in one script call, the rest in one
pipeline), by whoever drives the batch (`pipelines.state.buffering`). Every key carries a TTL,
so nothing grows without end.

A stream worker makes a batch's writes on a thread of its own while it scores the next batch
(`flushing`): until Redis acknowledges them, this process's reads of the pending vectors and
cooldowns are laid over with them (`WritesInFlight`).
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from importlib.resources import files
from typing import Any

import orjson
import redis
from redis.commands.core import Script
from redis.exceptions import NoScriptError

from models.explain import ReasonCode
from models.pending import PendingEntry
from models.schemas import Decision
from models.scored import Scored
from pipelines.state.writes_in_flight import WritesInFlight

Pipeline = redis.client.Pipeline

_STORE_CHUNK = 5_000
"""Vectors per script call when flushing: bounds one call's arguments and its time in Redis."""


def encode_entry(entry: PendingEntry) -> bytes:
    """A pending entry as compact JSON (floats round-trip exactly through orjson).

    Examples
    --------
    >>> from array import array
    >>> scored = Scored("t1", 0.25, "logistic+3", Decision.PASS, 0.5,
    ...                 (ReasonCode("amount", 20.0, 0.1),))
    >>> entry = PendingEntry(array("d", [20.0, 0.1]), "p1", 1_700_000_000, scored, True, "c1",
    ...                      (("forest", 0.75),), bytes(range(8)), 1)
    >>> decode_entry(encode_entry(entry)) == entry
    True

    The digest and the corrections come last, and an entry written without them reads back
    with none (``None`` and 0).
    """
    scored = entry.scored
    return orjson.dumps(
        [
            list(entry.values),
            entry.terminal_id,
            entry.second,
            [
                scored.transaction_id,
                scored.score,
                scored.model_version,
                scored.decision.value,
                scored.threshold,
                [list(reason) for reason in scored.reasons],
            ],
            entry.verdict,
            entry.card_id,
            [list(pair) for pair in entry.shadow],
            None if entry.digest is None else entry.digest.hex(),
            entry.corrections,
        ]
    )


def decode_entry(raw: bytes | str) -> PendingEntry:
    values, terminal_id, second, scored, verdict, card_id, shadow, *rest = orjson.loads(raw)
    digest, corrections = rest if rest else (None, 0)
    transaction_id, score, version, decision, threshold, reasons = scored
    return PendingEntry(
        array("d", values),
        terminal_id,
        second,
        Scored(
            transaction_id,
            score,
            version,
            Decision(decision),
            threshold,
            tuple(ReasonCode(*reason) for reason in reasons),
        ),
        verdict,
        card_id,
        tuple((name, score) for name, score in shadow),
        None if digest is None else bytes.fromhex(digest),
        corrections,
    )


class RedisPendingStore:
    """`PendingStore` in Redis: one key per transaction, expiring after the pending TTL.

    Entries read or written in this process are cached until the next `flushing`, so a batch
    sees its own writes (two labels for one transaction in one batch) without a round trip. With
    ``deferred``, `flushing` writes nothing: the learner writes the verdicts itself, in the same
    transaction as the model version that learned them (`queue_flush`, then `discard`).
    """

    def __init__(
        self, client: redis.Redis, *, prefix: str, ttl_seconds: int, deferred: bool = False
    ) -> None:
        self._client = client
        self._deferred = deferred
        self._prefix = f"{prefix}pending:"
        self._ttl = ttl_seconds
        self._cache: dict[str, PendingEntry | None] = {}
        self._dirty: dict[str, PendingEntry] = {}
        self._in_flight = WritesInFlight[str, PendingEntry]()
        source = files("pipelines.state").joinpath("lua", "store_pending.lua")
        self._store = client.register_script(source.read_text(encoding="utf-8"))

    @property
    def awaiting_label(self) -> int | None:
        """Unknown: counting Redis keys by state would cost a scan."""
        return None

    def prefetch(self, transaction_ids: Iterable[str]) -> None:
        wanted = [tid for tid in dict.fromkeys(transaction_ids) if tid not in self._cache]
        if not wanted:
            return
        in_flight = self._in_flight.overlay(wanted)
        raw = self._client.mget([self._prefix + tid for tid in wanted])
        for tid, value in zip(wanted, raw, strict=True):
            if tid in in_flight:
                self._cache[tid] = in_flight[tid]
            else:
                self._cache[tid] = None if value is None else decode_entry(value)

    def get(self, transaction_id: str) -> PendingEntry | None:
        if transaction_id not in self._cache:
            self.prefetch([transaction_id])
        return self._cache[transaction_id]

    def put(self, transaction_id: str, entry: PendingEntry) -> None:
        self._cache[transaction_id] = entry
        self._dirty[transaction_id] = entry

    def set_verdict(self, entry: PendingEntry, verdict: bool) -> bool | None:
        previous, entry.verdict = entry.verdict, verdict
        self._dirty[entry.scored.transaction_id] = entry
        return previous

    def expire(self, watermark: int) -> None:
        """Nothing to do: Redis expires each entry by its own TTL."""

    def queue_flush(self, pipeline: Pipeline) -> None:
        """Queue the buffered writes onto ``pipeline`` (the learner's atomic publication)."""
        for tid, entry in self._dirty.items():
            pipeline.set(self._prefix + tid, encode_entry(entry), ex=self._ttl)

    def discard(self) -> None:
        """Drop the cache and the buffered writes: after a flush, or a batch that failed."""
        self._cache.clear()
        self._dirty.clear()

    def flushing(self) -> Callable[[], None]:
        """The buffered writes, taken now (the buffer empties), encoded and written when called
        (a `RedisWrite`): off the caller's thread, when it makes them on another. This store's
        reads see them meanwhile; the entries must not change until they are written."""
        if self._deferred:
            return _nothing
        dirty, self._dirty = self._dirty, {}
        self.discard()
        if not dirty:
            return _nothing
        token = self._in_flight.add(dirty)

        def queue(pipeline: Pipeline) -> None:
            items = list(dirty.items())
            for start in range(0, len(items), _STORE_CHUNK):
                arguments: list[bytes | str | int] = [self._ttl]
                for tid, entry in items[start : start + _STORE_CHUNK]:
                    arguments += (self._prefix + tid, encode_entry(entry))
                pipeline.evalsha(self._store.sha, 0, *arguments)

        return RedisWrite(
            self._client, queue, partial(self._in_flight.settle, token, dirty), (self._store,)
        )


class RedisCooldownBook:
    """`CooldownBook` in Redis: the second each card was last alerted, for every worker."""

    def __init__(self, client: redis.Redis, *, prefix: str, cooldown_seconds: int) -> None:
        self._client = client
        self._prefix = f"{prefix}cooldown:"
        # The key outlives the cooldown by a day: the cooldown is judged in event time, which
        # may lag the wall clock that expires keys.
        self._ttl = max(cooldown_seconds, 1) + 86_400
        self._known: dict[str, int | None] = {}
        self._marks: dict[str, int] = {}
        self._in_flight = WritesInFlight[str, int]()

    def prefetch(self, card_ids: Iterable[str]) -> None:
        wanted = list(dict.fromkeys(card_ids))
        self._known = self._read(wanted) if wanted else {}

    def last(self, card_id: str) -> int | None:
        if card_id not in self._known:
            self._known.update(self._read([card_id]))
        return self._known[card_id]

    def _read(self, cards: list[str]) -> dict[str, int | None]:
        """The cards' last alerts: in Redis, or on their way there from this process."""
        in_flight = self._in_flight.overlay(cards)
        raw = self._client.mget([self._prefix + card for card in cards])
        read = {
            card: None if value is None else int(value)
            for card, value in zip(cards, raw, strict=True)
        }
        read.update(in_flight)
        return read

    def mark(self, card_id: str, second: int) -> None:
        self._known[card_id] = second
        self._marks[card_id] = second

    def discard(self) -> None:
        """Drop the cards loaded and the marks buffered: the batch failed and is scored again."""
        self._known = {}
        self._marks = {}

    def flushing(self) -> Callable[[], None]:
        """The buffered marks, taken now, written when called (a `RedisWrite`); this book's
        reads see them meanwhile."""
        marks, self._marks = self._marks, {}
        if not marks:
            return _nothing
        token = self._in_flight.add(marks)

        def queue(pipeline: Pipeline) -> None:
            for card, second in marks.items():
                pipeline.set(self._prefix + card, second, ex=self._ttl)

        return RedisWrite(self._client, queue, partial(self._in_flight.settle, token, marks))


class DeliveredAlerts:
    """Which alerts reached the alerts topic, so a replay does not send them twice.

    A mark is written after the producer's acknowledgement and before the offsets are committed;
    only a crash in between those two steps can still repeat an alert.
    """

    def __init__(self, client: redis.Redis, *, prefix: str, ttl_seconds: int) -> None:
        self._client = client
        self._prefix = f"{prefix}alerted:"
        self._ttl = ttl_seconds

    def undelivered(self, transaction_ids: list[str]) -> list[str]:
        if not transaction_ids:
            return []
        raw = self._client.mget([self._prefix + tid for tid in transaction_ids])
        return [tid for tid, value in zip(transaction_ids, raw, strict=True) if value is None]

    def mark(self, transaction_ids: Iterable[str]) -> None:
        pipeline = self._client.pipeline(transaction=False)
        for tid in transaction_ids:
            pipeline.set(self._prefix + tid, 1, ex=self._ttl)
        pipeline.execute()


def redis_client(url: str, **options: Any) -> redis.Redis:
    """A client for ``url`` that returns bytes and fails fast when the server is unreachable."""
    defaults: dict[str, Any] = {"socket_connect_timeout": 2.0, "socket_timeout": 10.0}
    return redis.Redis.from_url(url, **(defaults | options))


def _nothing() -> None:
    """Nothing to write."""


@dataclass(frozen=True)
class RedisWrite:
    """A store's writes, taken from its buffer: queued on a pipeline, then settled once Redis
    has them (`WritesInFlight`). Called, it makes them in a round trip of its own;
    `written_together` makes several in one."""

    client: redis.Redis
    queue: Callable[[Pipeline], None]
    settle: Callable[[], None]
    scripts: tuple[Script, ...] = ()
    """The scripts it calls by SHA, loaded if Redis answers that it does not know them."""

    def __call__(self) -> None:
        _execute([self])


def written_together(writes: Iterable[Callable[[], None]]) -> Callable[[], None]:
    """One call making ``writes``: the `RedisWrite`s on one client in one pipeline, in their
    order, one round trip (each in a round trip of its own waits behind whatever script Redis
    is running: a batch's writes then waited behind two), then any others."""
    by_client: dict[int, list[RedisWrite]] = {}
    others: list[Callable[[], None]] = []
    for write in writes:
        if isinstance(write, RedisWrite):
            by_client.setdefault(id(write.client), []).append(write)
        else:
            others.append(write)

    def write_all() -> None:
        for together in by_client.values():
            _execute(together)
        for other in others:
            other()

    return write_all


def _execute(writes: list[RedisWrite]) -> None:
    client = writes[0].client
    for attempt in range(2):
        pipeline = client.pipeline(transaction=False)
        for write in writes:
            write.queue(pipeline)
        try:
            pipeline.execute()
            break
        except NoScriptError:
            # Nothing of the script ran (Redis restarted, say): load it, make them all again.
            if attempt:
                raise
            for script in {id(s): s for write in writes for s in write.scripts}.values():
                script.sha = client.script_load(script.script)
    for write in writes:
        write.settle()
