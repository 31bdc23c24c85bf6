"""Feature state in the process's memory: the embedded default and the offline replay's store.

Memory is bounded three ways: buckets older than an entity's horizon are dropped as it moves
on; entities idle longer than their horizon are evicted (they hold nothing a window could still
read); and the number of cards, terminals and remembered transaction ids is capped, the least
recently active going first.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TypeVar

from models.schemas import Transaction
from models.state import (
    FraudReport,
    WindowAggregates,
    WindowSpec,
    event_second,
    hundredths,
)
from models.windows import TimeBuckets

Entity = TypeVar("Entity")

MAX_TERMINALS_PER_CARD = 256
"""A card remembers at most this many terminals for the first-use feature; older ones go."""


class _Card:
    __slots__ = ("buckets", "terminals")

    def __init__(self, horizon: int) -> None:
        self.buckets = TimeBuckets(horizon)
        self.terminals: dict[str, int] = {}


class _Terminal:
    __slots__ = ("frauds", "transactions")

    def __init__(self, horizon: int) -> None:
        self.transactions = TimeBuckets(horizon)
        self.frauds: TimeBuckets | None = None
        """Made with the terminal's first fraud report: most terminals never get one, and their
        fraud counts are zeros without a run to search."""


_aggregates = WindowAggregates._make
"""`WindowAggregates` from a ready tuple: cheaper than its constructor, once per transaction."""

EVICTION_STEP_SECONDS = 3_600
"""Idle entities are swept when event time has moved on by this much since the last sweep."""


class InMemoryFeatureState:
    """`FeatureState` held in dictionaries, for one process.

    Parameters
    ----------
    spec
        The windows to aggregate over.
    max_cards, max_terminals
        Caps on the entities kept; the least recently active are evicted beyond them.
    max_transaction_ids
        Cap on the transaction ids remembered to recognise replays.
    dedupe_seconds
        How long (in event time) a transaction id is remembered; defaults to the terminal
        horizon, the longest any window looks back.

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> from models.schemas import Transaction
    >>> state = InMemoryFeatureState(WindowSpec())
    >>> tx = Transaction(transaction_id="t1", timestamp=datetime(2018, 4, 1, 12, tzinfo=UTC),
    ...                  card_id="c1", terminal_id="p1", amount=20.0, currency="EUR")
    >>> [first] = state.observe([tx])
    >>> first.card_counts, first.duplicate
    ([1, 1, 1], False)
    >>> [again] = state.observe([tx])
    >>> again.card_counts, again.duplicate
    ([1, 1, 1], True)
    """

    def __init__(
        self,
        spec: WindowSpec,
        *,
        max_cards: int = 5_000_000,
        max_terminals: int = 1_000_000,
        max_transaction_ids: int = 10_000_000,
        dedupe_seconds: int | None = None,
    ) -> None:
        self._spec = spec
        self._max_cards = max_cards
        self._max_terminals = max_terminals
        self._max_transaction_ids = max_transaction_ids
        self._dedupe_seconds = spec.terminal_horizon if dedupe_seconds is None else dedupe_seconds
        self._cards: OrderedDict[str, _Card] = OrderedDict()
        self._terminals: OrderedDict[str, _Terminal] = OrderedDict()
        self._seen: OrderedDict[str, int] = OrderedDict()
        self._watermark: int | None = None
        self._next_sweep = 0
        self._spans = spec.window_seconds
        self._delay = spec.label_delay_seconds
        self._card_horizon = spec.card_horizon
        self._terminal_horizon = spec.terminal_horizon

    @property
    def spec(self) -> WindowSpec:
        return self._spec

    @property
    def watermark(self) -> int | None:
        """The latest event second observed."""
        return self._watermark

    def sizes(self) -> dict[str, int]:
        """How many cards, terminals and transaction ids are held (for metrics and benches)."""
        return {
            "cards": len(self._cards),
            "terminals": len(self._terminals),
            "transaction_ids": len(self._seen),
        }

    def observe(self, transactions: Sequence[Transaction]) -> list[WindowAggregates]:
        results = [self._observe_one(tx) for tx in transactions]
        watermark = self._watermark
        if watermark is not None and (
            watermark >= self._next_sweep
            or len(self._cards) > self._max_cards
            or len(self._terminals) > self._max_terminals
            or len(self._seen) > self._max_transaction_ids
        ):
            self._evict(watermark)
            self._next_sweep = watermark + EVICTION_STEP_SECONDS
        return results

    def record_frauds(self, reports: Sequence[FraudReport]) -> None:
        for report in reports:
            terminal = self._terminals.get(report.terminal_id)
            if terminal is None:
                terminal = self._terminals[report.terminal_id] = _Terminal(self._terminal_horizon)
            if terminal.frauds is None:
                terminal.frauds = TimeBuckets(self._terminal_horizon)
            terminal.frauds.add(report.second, count=report.change)

    def _observe_one(self, tx: Transaction) -> WindowAggregates:
        second = event_second(tx.timestamp)
        transaction_id, card_id, terminal_id = tx.transaction_id, tx.card_id, tx.terminal_id
        seen = self._seen
        duplicate = transaction_id in seen
        cards, terminals = self._cards, self._terminals
        card = cards.get(card_id)
        if card is None:
            card = cards[card_id] = _Card(self._card_horizon)
        else:
            cards.move_to_end(card_id)
        terminal = terminals.get(terminal_id)
        if terminal is None:
            terminal = terminals[terminal_id] = _Terminal(self._terminal_horizon)
        else:
            terminals.move_to_end(terminal_id)

        frauds = terminal.frauds
        buckets = card.buckets
        terminals_used = card.terminals
        last_use = terminals_used.get(terminal_id)
        spans = self._spans
        shifted = second - self._delay
        if duplicate:
            # Read-only: the transaction already counts once. Its own earlier record sits in
            # its second, so its predecessor is the latest second before that one.
            previous = buckets.previous(second - 1)
            card_counts, card_totals = buckets.windows(second, spans)
        else:
            seen[transaction_id] = second
            watermark = self._watermark
            if watermark is None or second > watermark:
                self._watermark = second
            previous, card_counts, card_totals = buckets.observe(
                second, hundredths(tx.amount), spans
            )
            terminal.transactions.add(second)
            if last_use is None or last_use < second:
                terminals_used[terminal_id] = second
            if len(terminals_used) > MAX_TERMINALS_PER_CARD:
                del terminals_used[min(terminals_used, key=terminals_used.__getitem__)]
        return _aggregates(
            (
                card_counts,
                card_totals,
                None if previous is None else second - previous,
                last_use is not None and last_use > second - self._card_horizon,
                terminal.transactions.counts(shifted, spans),
                [0] * len(spans) if frauds is None else frauds.counts(shifted, spans),
                duplicate,
            )
        )

    def _evict(self, watermark: int) -> None:
        _evict_idle(
            self._cards,
            watermark - self._card_horizon,
            self._max_cards,
            lambda card: card.buckets.newest,
        )
        _evict_idle(
            self._terminals,
            watermark - self._terminal_horizon,
            self._max_terminals,
            lambda terminal: terminal.transactions.newest,
        )
        cutoff = watermark - self._dedupe_seconds
        seen = self._seen
        while seen and (
            len(seen) > self._max_transaction_ids or next(iter(seen.values())) <= cutoff
        ):
            seen.popitem(last=False)


def _evict_idle(
    entities: OrderedDict[str, Entity],
    cutoff: int,
    cap: int,
    newest: Callable[[Entity], int | None],
) -> None:
    """Pop least recently active entities while over the cap or idle past the cutoff.

    Entities are ordered by last activity, so the scan stops at the first one still in use.
    """
    while entities:
        key, entity = next(iter(entities.items()))
        last = newest(entity)
        if len(entities) <= cap and last is not None and last > cutoff:
            return
        del entities[key]
