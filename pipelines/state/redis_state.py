"""Feature state in Redis, shared by every worker of a deployment: one round trip per batch.

`RedisFeatureState` answers exactly what `InMemoryFeatureState` answers for the same stream:
late events, same-second events, repeated ids and fraud retractions included. Each series
(a card's transactions, a terminal's transactions, a terminal's frauds) is a run of one-second
buckets holding running totals, dropped behind the series' horizon into a base total exactly
as `models.windows.TimeBuckets` does it, so every window is the same integer difference of the
same totals (see ``lua/buckets.lua`` for the layouts).

Why a Lua script per batch
    A transaction needs a dozen reads and writes that depend on one another (a late event
    shifts the running totals after it). Done from Python that is a dozen round trips per
    transaction; one script call per batch makes it one per batch, and the script runs
    atomically, so two workers can never interleave inside a transaction's update. A batch
    sent again (a retry after a lost reply) changes nothing: its ids are known. Fraud counts
    have no ids, so `queue_frauds` lets a learner apply them in the MULTI/EXEC transaction
    that records its own progress.
Why two layouts of a series
    A series of up to ``packed_buckets`` buckets (a card or terminal with fewer distinct seconds
    in one horizon: most of them) is one packed string. The script reads every series of a
    batch with one MGET, searches each in place and writes each changed series back once:
    about 6 commands per transaction, counted on the bench's stream. But a string is copied
    whenever it changes, which grows with its size: measured from Lua, 4 µs at 128 buckets,
    28 µs at 1,000. So a series that outgrows the limit moves to a sorted set, where every
    window's lookup is a command of its own, about 1.5 µs whatever the set's size. Measured
    on the whole script, a batch whose transactions all use one terminal costs 30 µs a
    transaction when the terminal holds 200 buckets, 32 at 1,000 and 41 at 20,000 (50 at
    20,000 with every series sorted). It stays there until its keys expire.
Cost on the Redis side
    Redis runs scripts on its one command thread, and a batch holds every other client up while
    it runs. Measured on Redis 7.0 on the bench's stream (most series packed): about 25 µs of
    Redis CPU per transaction in the script, 31 µs with reading the request and writing the
    reply; with every series sorted, about 44 µs in the script.
Time to live
    Keys expire instead of the in-memory state's idle eviction and caps: each key's TTL is its
    entity's horizon plus `TTL_MARGIN_SECONDS`, refreshed on every write, and a transaction id
    is remembered for ``dedupe_seconds``. TTLs run on the wall clock while windows run on event
    time; in live operation the two advance together, the margin absorbing consumer lag. A
    replay faster than real time keeps everything, as an in-memory state that never evicts.
Where the answers may differ from the in-memory state's
    Only where the in-memory state has evicted an entity (idle for a whole horizon, or over
    its caps) or forgotten an id (after ``dedupe_seconds`` of event time) that Redis still
    holds, or the reverse when a key expired first: one answers for a new entity or id, the
    other from what it kept (the kept buckets answer as `TimeBuckets` would). Totals are held
    as Lua doubles, exact while an entity's running totals stay below 2^53 (amounts in
    hundredths).
One Redis, not a Cluster
    The scripts name the keys of each card and terminal they meet, which a Cluster cannot
    route; run one Redis (with replicas if need be). Run it with ``maxmemory-policy
    noeviction``: an evicted key would silently lose part of an entity.

Keys, under the prefix (ids hold no spaces and ``:`` may appear in them, but each kind of
key ends in its own suffix, none a suffix of another, so no two entities share a key):

- ``answer:{transaction id}``: the first sighting's answer as msgpack integers, set once per id;
- ``card:{card id}:series``: the card's transaction counts and amount sums, packed, or the
  marker ``sorted`` when they are in ``card:{card id}:series:sorted``;
- ``card:{card id}:terminals``: a hash, terminal id -> ``"last second:insertion number"``;
- ``terminal:{terminal id}:series``: the terminal's transaction counts, likewise (and
  ``:series:sorted``);
- ``terminal:{terminal id}:fraud-series``: the terminal's fraud counts, likewise (and
  ``:fraud-series:sorted``).

The series had other names in earlier layouts (``:buckets`` and ``:frauds`` with text members,
then ``:totals`` and ``:fraud-totals`` as sorted sets only), so a Redis holding state of an
earlier layout is never misread: after an upgrade the old keys expire by their TTL and windows
start afresh for the entities they held.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

import redis
import redis.client

from models.memory_state import MAX_TERMINALS_PER_CARD
from models.schemas import Transaction
from models.state import (
    DAY,
    FraudReport,
    WindowAggregates,
    WindowSpec,
    event_second,
    hundredths,
)
from pipelines.state.observation import Observation, RunWhenCalled
from pipelines.state.script_call import ScriptCall

TTL_MARGIN_SECONDS = DAY
"""Added to each entity's horizon in its keys' TTL: how far the stream may lag the wall clock."""

PACKED_BUCKETS = 128
"""Buckets a series holds as one packed string before it moves to a sorted set."""

MAX_PACKED_BUCKETS = 1_000
"""Past this a packed series costs several times a sorted set's lookups on every change."""

_FIELDS_PER_TRANSACTION = 3
"""Per transaction the script returns these, then four totals per window."""


class RedisStateError(RuntimeError):
    """Redis answered a batch with something other than the script's integers."""


@cache
def script_source(name: str) -> str:
    """The Lua of one script: the shared bucket functions, then the script itself."""
    lua = files("pipelines.state").joinpath("lua")
    shared = lua.joinpath("buckets.lua").read_text(encoding="utf-8")
    return shared + "\n" + lua.joinpath(f"{name}.lua").read_text(encoding="utf-8")


def card_keys(prefix: str, card_id: str) -> tuple[str, str]:
    """The keys of a card: its series of running totals and its terminals.

    >>> card_keys("fraudstream:", "c1")
    ('fraudstream:card:c1:series', 'fraudstream:card:c1:terminals')
    """
    return f"{prefix}card:{card_id}:series", f"{prefix}card:{card_id}:terminals"


def terminal_keys(prefix: str, terminal_id: str) -> tuple[str, str]:
    """The keys of a terminal: its transactions' and its frauds' series of running totals.

    >>> terminal_keys("fraudstream:", "p1")
    ('fraudstream:terminal:p1:series', 'fraudstream:terminal:p1:fraud-series')
    """
    return f"{prefix}terminal:{terminal_id}:series", f"{prefix}terminal:{terminal_id}:fraud-series"


def sorted_key(series_key: str) -> str:
    """Where a series outgrown its packed string keeps its buckets, as a sorted set.

    >>> sorted_key("fraudstream:terminal:p1:series")
    'fraudstream:terminal:p1:series:sorted'
    """
    return f"{series_key}:sorted"


def answer_key(prefix: str, transaction_id: str) -> str:
    """The key remembering a transaction id, with its first sighting's answer.

    >>> answer_key("fraudstream:", "t1")
    'fraudstream:answer:t1'
    """
    return f"{prefix}answer:{transaction_id}"


def transaction_arguments(transactions: Sequence[Transaction]) -> list[str | int]:
    """The script arguments for a batch: id, second, amount in hundredths, card, terminal."""
    arguments: list[str | int] = []
    for tx in transactions:
        arguments += (
            tx.transaction_id,
            event_second(tx.timestamp),
            hundredths(tx.amount),
            tx.card_id,
            tx.terminal_id,
        )
    return arguments


def fraud_arguments(reports: Sequence[FraudReport]) -> list[str | int]:
    """The script arguments for fraud reports: terminal, second, change."""
    arguments: list[str | int] = []
    for report in reports:
        arguments += (report.terminal_id, report.second, report.change)
    return arguments


def decode_aggregates(reply: object, transactions: int, windows: int) -> list[WindowAggregates]:
    """Split the script's flat integers into one `WindowAggregates` per transaction.

    Per transaction: duplicate (0/1), seconds since the previous transaction (-1 for none),
    card used the terminal before (0/1), then card counts, card amount sums, terminal counts
    and terminal frauds, ``windows`` of each.

    >>> [first] = decode_aggregates([0, -1, 1, 2, 350, 0, 1], transactions=1, windows=1)
    >>> first.card_counts, first.card_amount_hundredths, first.seconds_since_previous
    ([2], [350], None)
    >>> first.card_used_terminal_before, first.terminal_counts, first.terminal_frauds
    (True, [0], [1])
    """
    stride = _FIELDS_PER_TRANSACTION + 4 * windows
    if not isinstance(reply, list) or len(reply) != transactions * stride:
        raise RedisStateError(
            f"expected {transactions * stride} integers for {transactions} transactions, "
            f"got {reply!r:.200}"
        )
    results: list[WindowAggregates] = []
    for start in range(0, len(reply), stride):
        duplicate, since, used_before = reply[start : start + _FIELDS_PER_TRANSACTION]
        cards = start + _FIELDS_PER_TRANSACTION
        sums = cards + windows
        terminals = sums + windows
        frauds = terminals + windows
        results.append(
            WindowAggregates(
                reply[cards:sums],
                reply[sums:terminals],
                None if since < 0 else since,
                used_before == 1,
                reply[terminals:frauds],
                reply[frauds : frauds + windows],
                duplicate == 1,
            )
        )
    return results


@dataclass(frozen=True)
class _ScriptObservation:
    """A batch's state script, sent ahead by `start`, answered and decoded when called."""

    call: ScriptCall
    transactions: int
    windows: int

    def start(self) -> None:
        self.call.start()

    def __call__(self) -> list[WindowAggregates]:
        return decode_aggregates(self.call.answer(), self.transactions, self.windows)


class RedisFeatureState:
    """`FeatureState` in one Redis, for every worker of a deployment.

    Parameters
    ----------
    client
        A synchronous client; each `observe` or `record_frauds` call is one script call on it.
    spec
        The windows to aggregate over.
    prefix
        Prepended to every key, so that deployments can share a Redis.
    dedupe_seconds
        How long (on the wall clock) a transaction id is remembered; defaults to the terminal
        horizon, the longest any window looks back.
    packed_buckets
        How many buckets a series holds as one packed string before it moves to a sorted set.
    """

    def __init__(
        self,
        client: redis.Redis,
        spec: WindowSpec,
        *,
        prefix: str = "fraudstream:",
        dedupe_seconds: int | None = None,
        packed_buckets: int = PACKED_BUCKETS,
    ) -> None:
        dedupe = spec.terminal_horizon if dedupe_seconds is None else dedupe_seconds
        if dedupe <= 0:
            raise ValueError("dedupe_seconds must be positive: it is a key's time to live")
        if not 0 <= packed_buckets <= MAX_PACKED_BUCKETS:
            raise ValueError(f"packed_buckets must be within 0..{MAX_PACKED_BUCKETS}")
        self._spec = spec
        spans = spec.window_seconds
        terminal_ttl = spec.terminal_horizon + TTL_MARGIN_SECONDS
        self._observe_head: tuple[str | int, ...] = (
            prefix,
            spec.card_horizon,
            spec.terminal_horizon,
            spec.label_delay_seconds,
            dedupe,
            spec.card_horizon + TTL_MARGIN_SECONDS,
            terminal_ttl,
            MAX_TERMINALS_PER_CARD,
            packed_buckets,
            len(spans),
            *spans,
        )
        self._frauds_head: tuple[str | int, ...] = (
            prefix,
            spec.terminal_horizon,
            terminal_ttl,
            packed_buckets,
        )
        self._client = client
        # Scripts are sent by SHA (EVALSHA) and loaded on the server's first NOSCRIPT answer.
        self._observe_script = client.register_script(script_source("observe"))
        self._frauds_script = client.register_script(script_source("record_frauds"))

    @property
    def spec(self) -> WindowSpec:
        return self._spec

    def observe(self, transactions: Sequence[Transaction]) -> list[WindowAggregates]:
        if not transactions:
            return []
        reply = self._observe_script(args=self._observe_arguments(transactions))
        return decode_aggregates(reply, len(transactions), len(self._spec.windows_days))

    def observing(self, transactions: Sequence[Transaction]) -> Observation:
        """The script's request built and packed now (a few milliseconds a thousand
        transactions), on a connection of its own (`ScriptCall`)."""
        if not transactions:
            return RunWhenCalled(list)
        call = ScriptCall(self._client, self._observe_script, self._observe_arguments(transactions))
        return _ScriptObservation(call, len(transactions), len(self._spec.windows_days))

    def _observe_arguments(self, transactions: Sequence[Transaction]) -> list[str | int]:
        return [*self._observe_head, *transaction_arguments(transactions)]

    def record_frauds(self, reports: Sequence[FraudReport]) -> None:
        if reports:
            self._frauds_script(args=[*self._frauds_head, *fraud_arguments(reports)])

    def queue_frauds(self, pipeline: redis.client.Pipeline, reports: Sequence[FraudReport]) -> None:
        """Queue `record_frauds` on the caller's pipeline, to run in its transaction."""
        if reports:
            self._frauds_script(
                args=[*self._frauds_head, *fraud_arguments(reports)], client=pipeline
            )
