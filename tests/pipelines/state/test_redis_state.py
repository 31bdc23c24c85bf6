"""Redis feature state against a real redis-server: the in-memory state's answers, bounded.

The in-memory state is the reference: every `WindowAggregates` must be equal, field by field,
for the same stream of batches and fraud reports.
"""

from __future__ import annotations

import random
import struct
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from itertools import pairwise
from typing import Any, ClassVar

import pytest
import redis

from models.memory_state import MAX_TERMINALS_PER_CARD, InMemoryFeatureState
from models.schemas import Transaction
from models.state import DAY, FraudReport, WindowAggregates, WindowSpec, event_second
from pipelines.state.redis_state import (
    MAX_PACKED_BUCKETS,
    PACKED_BUCKETS,
    TTL_MARGIN_SECONDS,
    RedisFeatureState,
    RedisStateError,
    answer_key,
    card_keys,
    decode_aggregates,
    fraud_arguments,
    sorted_key,
    terminal_keys,
    transaction_arguments,
)
from tests.builders import START, make_tx

HOUR = 3_600
PREFIX = "fraudstream:"


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(redis_url) as connected:
        yield connected


# A stream as the workers see it: batches, with fraud reports arriving between them.


@dataclass
class Stream:
    batches: list[list[Transaction]]
    reports: list[list[FraudReport]]
    """Reports applied after the batch of the same index."""
    late: int = 0
    repeats: int = 0
    retractions: int = 0
    card_gaps: list[int] = field(default_factory=list)


def generate_stream(seed: int, *, transactions: int = 6_000, days: int = 60) -> Stream:
    """Transactions over ``days`` with ties, late arrivals and repeated ids, and fraud reports.

    Most transactions arrive in time; one in ten arrives up to three hours late; one in fifty
    is sent again within two hours. Labels arrive one to ten days after the transaction, and
    one in ten is later withdrawn (``change=-1``).
    """
    rng = random.Random(seed)
    cards, terminals = 300, 40
    favourites = {card: rng.sample(range(terminals), 4) for card in range(cards)}
    seconds = sorted(rng.randrange(days * DAY) for _ in range(transactions))
    rows: list[tuple[int, int, int]] = []  # second, card, terminal
    for index, drawn in enumerate(seconds):
        second, card = drawn, rng.randrange(cards)
        if index and rng.random() < 0.05:  # a same-second tie, for one card or across cards
            second = rows[-1][0]
            if rng.random() < 0.5:
                card = rows[-1][1]
        terminal = rng.choice(favourites[card]) if rng.random() < 0.8 else rng.randrange(terminals)
        rows.append((second, card, terminal))

    arrivals: list[tuple[int, int, Transaction]] = []
    late = repeats = 0
    for index, (second, card, terminal) in enumerate(rows):
        tx = Transaction(
            transaction_id=f"t{index}",
            timestamp=START + timedelta(seconds=second),
            card_id=f"c{card}",
            terminal_id=f"p{terminal}",
            amount=round(rng.uniform(0.01, 500.0), 2),
            currency="EUR",
        )
        delay = rng.randrange(3 * HOUR) if rng.random() < 0.1 else 0
        late += delay > 0
        arrivals.append((second + delay, len(arrivals), tx))
        if rng.random() < 0.02:
            repeats += 1
            arrivals.append((second + delay + rng.randrange(2 * HOUR), len(arrivals), tx))
    arrivals.sort(key=lambda arrival: arrival[:2])

    stream = Stream([], [], late=late, repeats=repeats)
    pending: list[tuple[int, FraudReport]] = []  # (arrives at, report)
    position = 0
    while position < len(arrivals):
        size = rng.randint(1, 300)
        batch = arrivals[position : position + size]
        position += size
        stream.batches.append([tx for _, _, tx in batch])
        now = batch[-1][0]
        for _, _, tx in batch:
            if rng.random() < 0.03:
                report = FraudReport(tx.terminal_id, event_second(tx.timestamp))
                labelled = now + rng.randrange(DAY, 10 * DAY)
                pending.append((labelled, report))
                if rng.random() < 0.1:
                    stream.retractions += 1
                    withdrawn = FraudReport(report.terminal_id, report.second, -1)
                    pending.append((labelled + rng.randrange(1, 3 * DAY), withdrawn))
        pending.sort(key=lambda item: item[0])
        due = [report for at, report in pending if at <= now]
        pending = [(at, report) for at, report in pending if at > now]
        stream.reports.append(due)

    by_card: defaultdict[int, list[int]] = defaultdict(list)
    for second, card, _ in rows:
        by_card[card].append(second)
    stream.card_gaps = [b - a for times in by_card.values() for a, b in pairwise(times)]
    return stream


def replay(state: Any, stream: Stream) -> list[WindowAggregates]:
    results: list[WindowAggregates] = []
    for batch, reports in zip(stream.batches, stream.reports, strict=True):
        results += state.observe(batch)
        state.record_frauds(reports)
    return results


def assert_same(got: Sequence[WindowAggregates], expected: Sequence[WindowAggregates]) -> None:
    assert len(got) == len(expected)
    for index, (mine, reference) in enumerate(zip(got, expected, strict=True)):
        assert mine == reference, f"transaction {index} of the stream"


# (1) The in-memory state's answers.


def sorted_series(client: redis.Redis) -> int:
    """How many series have moved from their packed string to a sorted set."""
    return sum(1 for _ in client.scan_iter(match=f"{PREFIX}*:sorted", count=1_000))


@pytest.mark.parametrize("packed_buckets", [PACKED_BUCKETS, 3])
def test_a_long_disordered_stream_gets_the_in_memory_answers(
    client: redis.Redis, packed_buckets: int
) -> None:
    spec = WindowSpec()
    stream = generate_stream(seed=11)
    # In-memory eviction would otherwise differ from key TTLs (see the module docstring of
    # pipelines/state/redis_state.py): no card stays idle for a whole card horizon here.
    assert max(stream.card_gaps) < spec.card_horizon - DAY
    in_memory = replay(InMemoryFeatureState(spec), stream)
    got = replay(RedisFeatureState(client, spec, packed_buckets=packed_buckets), stream)
    # A first sighting gets the in-memory answer; a repeat gets its first sighting's again.
    first: dict[str, WindowAggregates] = {}
    expected: list[WindowAggregates] = []
    for tx, reference in zip(
        [tx for batch in stream.batches for tx in batch], in_memory, strict=True
    ):
        original = first.setdefault(tx.transaction_id, reference)
        expected.append(original._replace(duplicate=True) if reference.duplicate else reference)
    assert_same(got, expected)
    assert got != in_memory, "some repeat should read differently now than at first sight"
    # The stream holds what it is meant to test.
    assert stream.late > 300
    assert stream.repeats > 50
    assert stream.retractions > 5
    assert sum(result.duplicate for result in expected) == stream.repeats
    assert sum(result.seconds_since_previous == 0 for result in expected) > 50
    assert sum(any(result.terminal_frauds) for result in expected) > 1_000
    assert 0 < sum(result.card_used_terminal_before for result in expected) < len(expected)
    # Either every busy series left its packed string early, late events and retractions
    # arriving in both layouts and across the move, or a few of the terminals did.
    moved = sorted_series(client)
    if packed_buckets == PACKED_BUCKETS:
        assert 0 < moved < 40
    else:
        assert moved > 300


def test_a_card_over_its_terminal_cap_forgets_the_least_recent_first_inserted_first(
    client: redis.Redis,
) -> None:
    spec = WindowSpec()
    # Two terminals per second, named against their order of first use: a tie between them
    # must go to the one used first, as in the dict, not to the one sorting first. An odd
    # number of evictions leaves one pair split, which the revisits start with.
    count = MAX_TERMINALS_PER_CARD + 45
    names = [f"p{count - index:03d}" for index in range(count)]
    first_uses = [
        make_tx(index, hours=(index // 2) / 60, terminal=name) for index, name in enumerate(names)
    ]
    rng = random.Random(3)
    revisited = [names[45], names[44], *(rng.choice(names) for _ in range(2 * count))]
    revisits = [
        make_tx(10_000 + index, hours=10 + index / 60, terminal=name)
        for index, name in enumerate(revisited)
    ]
    memory, in_redis = InMemoryFeatureState(spec), RedisFeatureState(client, spec)
    expected = memory.observe(first_uses) + memory.observe(revisits)
    got = in_redis.observe(first_uses) + in_redis.observe(revisits)
    assert_same(got, expected)
    # names[44], used first of its pair, went first; names[45] stayed.
    assert [result.card_used_terminal_before for result in expected[count : count + 2]] == [
        True,
        False,
    ]
    assert 0 < sum(result.card_used_terminal_before for result in expected[count:]) < len(revisits)
    _, terminals = card_keys(PREFIX, "c1")
    assert client.hlen(terminals) == MAX_TERMINALS_PER_CARD + 1  # and the insertion counter


def test_a_late_use_does_not_move_a_terminals_last_use_back(client: redis.Redis) -> None:
    spec = WindowSpec()
    memory, in_redis = InMemoryFeatureState(spec), RedisFeatureState(client, spec)
    for tx in [
        make_tx(1, terminal="p"),
        make_tx(2, hours=10 * 24, terminal="p"),
        make_tx(3, hours=5 * 24, terminal="p"),  # late: the last use stays at day 10
        make_tx(4, hours=36 * 24, terminal="p"),  # within 30 days of day 10, not of day 5
    ]:
        [result] = in_redis.observe([tx])
        assert result == memory.observe([tx])[0]
    assert result.card_used_terminal_before


def test_fraud_counts_queued_in_a_transaction_count_as_recorded_ones(client: redis.Redis) -> None:
    spec = WindowSpec(windows_days=(1, 7), label_delay_seconds=7 * DAY)
    memory, in_redis = InMemoryFeatureState(spec), RedisFeatureState(client, spec)
    old = make_tx(1, terminal="p")
    second = event_second(old.timestamp)
    reports = [FraudReport("p", second), FraudReport("p", second + 5), FraudReport("p", second, -1)]
    memory.observe([old])
    memory.record_frauds(reports)
    in_redis.observe([old])
    with client.pipeline(transaction=True) as pipeline:
        pipeline.set(f"{PREFIX}learner:step", 1)
        in_redis.queue_frauds(pipeline, reports)
        pipeline.execute()
    later = [make_tx(2, hours=7 * 24 + 12, terminal="p")]
    [result] = in_redis.observe(later)
    assert result == memory.observe(later)[0]
    assert result.terminal_frauds == [1, 1]


# (2) Every key expires.


@pytest.mark.parametrize("packed_buckets", [PACKED_BUCKETS, 3])
def test_every_key_the_state_writes_expires(client: redis.Redis, packed_buckets: int) -> None:
    spec = WindowSpec()
    stream = generate_stream(seed=5, transactions=1_500, days=20)
    state = RedisFeatureState(client, spec, dedupe_seconds=6 * HOUR, packed_buckets=packed_buckets)
    replay(state, stream)
    card_ttl = spec.card_horizon + TTL_MARGIN_SECONDS
    terminal_ttl = spec.terminal_horizon + TTL_MARGIN_SECONDS
    kinds: Counter[str] = Counter()
    for raw in client.scan_iter(count=1_000):
        key = raw.decode()
        assert key.startswith(PREFIX)
        entity, rest = key.removeprefix(PREFIX).split(":", 1)
        kind = entity if entity == "answer" else f"{entity}:{rest.split(':', 1)[1]}"
        kinds[kind] += 1
        bound = {"answer": 6 * HOUR, "card": card_ttl}.get(entity, terminal_ttl)
        assert 0 < client.ttl(key) <= bound, key
    transactions = {tx.transaction_id for batch in stream.batches for tx in batch}
    cards = {tx.card_id for batch in stream.batches for tx in batch}
    terminals = {tx.terminal_id for batch in stream.batches for tx in batch}
    frauded = {report.terminal_id for reports in stream.reports for report in reports}
    moved = {kind: kinds.pop(kind) for kind in list(kinds) if kind.endswith(":sorted")}
    assert kinds == {
        "answer": len(transactions),
        "card:series": len(cards),
        "card:terminals": len(cards),
        "terminal:series": len(terminals),
        "terminal:fraud-series": len(frauded),
    }
    if packed_buckets == PACKED_BUCKETS:
        assert not moved  # no series here holds that many seconds
    else:
        assert 0 < moved["card:series:sorted"] <= len(cards)
        assert moved["terminal:series:sorted"] == len(terminals)
        assert 0 < moved["terminal:fraud-series:sorted"] <= len(frauded)
    assert client.exists(answer_key(PREFIX, "t0"), *card_keys(PREFIX, "c0"))


# (3) Buckets stay within the horizon.


BUCKET = struct.Struct("<ddd")
"""A stored bucket: its second (-inf for the base), running count, running sum."""


def stored_buckets(client: redis.Redis, key: str) -> list[tuple[float, float, float]]:
    """A series' buckets, base first, from whichever layout holds it."""
    packed = client.get(key)
    assert isinstance(packed, bytes)
    if packed == b"sorted":
        members = client.zrange(sorted_key(key), 0, -1)
        packed = b"".join(member for member in members if isinstance(member, bytes))
        assert len(packed) == BUCKET.size * len(members)
    assert len(packed) % BUCKET.size == 0
    return list(BUCKET.iter_unpack(packed))


def stored_seconds(client: redis.Redis, key: str) -> list[int]:
    """The seconds of a series' buckets, without its base."""
    [(base, _, _), *buckets] = stored_buckets(client, key)
    assert base == float("-inf")
    return [int(second) for second, _, _ in buckets]


def in_horizon(seconds: Sequence[int], horizon: int) -> list[int]:
    newest = max(seconds)
    return sorted({second for second in seconds if second > newest - horizon})


@pytest.mark.parametrize("packed_buckets", [PACKED_BUCKETS, MAX_PACKED_BUCKETS])
def test_buckets_are_bounded_by_the_distinct_seconds_in_one_horizon(
    client: redis.Redis, packed_buckets: int
) -> None:
    spec = WindowSpec(windows_days=(1, 2), label_delay_seconds=DAY)
    rng = random.Random(2)
    batches: list[list[Transaction]] = [[]]
    reports: list[list[FraudReport]] = [[]]
    hours = 0.0
    while hours < 30 * 24:  # fifteen card horizons
        hours += rng.choice([0.0, rng.uniform(0.01, 0.5)])  # some ties
        tx = make_tx(
            len(batches) * 1_000 + len(batches[-1]), hours=hours, terminal=rng.choice(["p1", "p2"])
        )
        batches[-1].append(tx)
        if rng.random() < 0.1:
            reports[-1].append(FraudReport("p1", event_second(tx.timestamp)))
        if len(batches[-1]) == 500:
            batches.append([])
            reports.append([])
    # Events later than a whole horizon land below the base, as in TimeBuckets.
    stragglers = [make_tx(index, hours=20 * 24 + index, terminal="p3") for index in range(3)]
    batches.append(stragglers)
    reports.append([])
    stream = Stream(batches, reports)
    in_redis = RedisFeatureState(client, spec, packed_buckets=packed_buckets)
    assert_same(replay(in_redis, stream), replay(InMemoryFeatureState(spec), stream))

    transactions = [tx for batch in batches[:-1] for tx in batch]
    seconds = [event_second(tx.timestamp) for tx in transactions]
    card, _ = card_keys(PREFIX, "c1")
    card_seconds = stored_seconds(client, card)
    late = {event_second(tx.timestamp) for tx in stragglers}
    assert card_seconds == sorted({*in_horizon(seconds, spec.card_horizon), *late})
    assert len(card_seconds) < len(set(seconds)) / 10
    [(_, dropped, _), *_] = stored_buckets(client, card)
    assert dropped > 0  # the base: totals of the dropped buckets
    # Past the limit a series is a sorted set, within it a packed string.
    assert client.exists(sorted_key(card)) == (len(card_seconds) > packed_buckets)
    for terminal in ("p1", "p2"):
        buckets, _ = terminal_keys(PREFIX, terminal)
        used = [
            second
            for second, tx in zip(seconds, transactions, strict=True)
            if tx.terminal_id == terminal
        ]
        assert stored_seconds(client, buckets) == in_horizon(used, spec.terminal_horizon)
    _, frauds = terminal_keys(PREFIX, "p1")
    fraud_seconds = [report.second for batch in reports for report in batch]
    assert stored_seconds(client, frauds) == in_horizon(fraud_seconds, spec.terminal_horizon)


# (4) One round trip per batch.


class CountingConnection(redis.Connection):
    """Remembers the name of every command sent on it."""

    sent: ClassVar[list[str]] = []

    def send_command(self, *args: Any, **kwargs: Any) -> None:
        CountingConnection.sent.append(str(args[0]))
        super().send_command(*args, **kwargs)  # type: ignore[no-untyped-call]


def test_a_batch_is_one_script_call(redis_url: str) -> None:
    pool = redis.ConnectionPool.from_url(redis_url, connection_class=CountingConnection)
    with redis.Redis(connection_pool=pool) as counted:
        state = RedisFeatureState(counted, WindowSpec())
        stream = generate_stream(seed=1, transactions=1_000, days=10)
        state.observe(stream.batches[0])  # the first call also loads the script
        state.record_frauds([FraudReport("p1", 0)])
        for batch in stream.batches[1:6]:
            CountingConnection.sent.clear()
            state.observe(batch)
            assert CountingConnection.sent == ["EVALSHA"]
        CountingConnection.sent.clear()
        state.record_frauds([FraudReport("p1", 1), FraudReport("p2", 2, -1)])
        state.observe([])
        state.record_frauds([])
        assert CountingConnection.sent == ["EVALSHA"]
    pool.disconnect()


def evalsha_calls(client: redis.Redis) -> int:
    stats = client.info("commandstats").get("cmdstat_evalsha", {})
    return int(stats.get("calls", 0))


def test_an_observation_prepared_ahead_is_sent_by_start_from_any_thread(redis_url: str) -> None:
    with redis.Redis.from_url(redis_url) as client:
        state = RedisFeatureState(client, WindowSpec(), prefix="prepared:")
        reference = RedisFeatureState(client, WindowSpec(), prefix="called:")
        stream = generate_stream(seed=2, transactions=400, days=5)
        first, second = stream.batches[:2]
        state.observe(first)  # the first call also loads the script
        reference.observe(first)
        expected = reference.observe(second)
        client.config_resetstat()
        prepared = state.observing(second)
        assert evalsha_calls(client) == 0
        sender = threading.Thread(target=prepared.start)
        sender.start()
        sender.join(5)
        deadline = time.monotonic() + 5
        while evalsha_calls(client) == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert evalsha_calls(client) == 1  # run by Redis before anyone asked for its answer
        prepared.start()  # once only
        assert prepared() == expected
        assert evalsha_calls(client) == 1
        assert state.observing([])() == []


def test_an_observation_prepared_ahead_loads_its_script_on_a_server_that_lost_it(
    redis_url: str,
) -> None:
    with redis.Redis.from_url(redis_url) as client:
        state = RedisFeatureState(client, WindowSpec(), prefix="prepared:")
        reference = RedisFeatureState(client, WindowSpec(), prefix="called:")
        stream = generate_stream(seed=3, transactions=300, days=5)
        first, second = stream.batches[:2]
        assert state.observing(first)() == reference.observe(first)
        client.script_flush()  # as after a restart
        assert state.observing(second)() == reference.observe(second)


# (5) Pure helpers, without a server.


def test_arguments_carry_seconds_and_hundredths() -> None:
    tx = make_tx(7, hours=1, card="c9", terminal="p:3", amount=12.34)
    assert transaction_arguments([tx]) == ["t7", event_second(START) + HOUR, 1234, "c9", "p:3"]
    assert fraud_arguments([FraudReport("p1", 5), FraudReport("p2", 6, -1)]) == [
        "p1", 5, 1, "p2", 6, -1
    ]  # fmt: skip


def test_keys_of_different_entities_never_coincide() -> None:
    ids = ["a", "a:series", "a:terminals", "a:fraud-series", "a:sorted", "b:a", "series"]
    keys = [answer_key(PREFIX, entity) for entity in ids]
    for entity in ids:
        card_series, terminals = card_keys(PREFIX, entity)
        terminal_series, frauds = terminal_keys(PREFIX, entity)
        keys += [card_series, terminals, terminal_series, frauds]
        keys += [sorted_key(card_series), sorted_key(terminal_series), sorted_key(frauds)]
    assert len(set(keys)) == len(keys)
    assert all(key.startswith(PREFIX) for key in keys)


def test_replies_decode_per_transaction_and_window() -> None:
    reply = [
        *(0, -1, 0, 1, 2, 500, 700, 3, 4, 0, 1),
        *(1, 0, 1, 2, 2, 800, 800, 0, 0, 0, 0),
    ]
    first, second = decode_aggregates(reply, transactions=2, windows=2)
    assert first == WindowAggregates([1, 2], [500, 700], None, False, [3, 4], [0, 1], False)
    assert second == WindowAggregates([2, 2], [800, 800], 0, True, [0, 0], [0, 0], True)


@pytest.mark.parametrize("reply", [[0, -1, 0], None, b"OK"])
def test_a_reply_of_the_wrong_shape_is_refused(reply: object) -> None:
    with pytest.raises(RedisStateError):
        decode_aggregates(reply, transactions=1, windows=1)


def test_a_dedupe_time_must_be_a_positive_ttl_and_a_packed_series_bounded() -> None:
    client = redis.Redis()  # no connection is made: the constructor does no I/O
    with pytest.raises(ValueError, match="dedupe_seconds"):
        RedisFeatureState(client, WindowSpec(), dedupe_seconds=0)
    for packed_buckets in (-1, MAX_PACKED_BUCKETS + 1):
        with pytest.raises(ValueError, match="packed_buckets"):
            RedisFeatureState(client, WindowSpec(), packed_buckets=packed_buckets)
    client.close()
