"""`fraudstream bench memory`: a small population, each store measured in a fresh process.

Memory figures are never compared with thresholds here: they depend on the interpreter and its
allocator. What is asserted is the stream's shape (distinct cards, a few payments each, in event
time), that every store cost something, and that eviction and the caps bound what is held.
"""

from __future__ import annotations

from collections import Counter

import pytest
from typer.testing import CliRunner

from models.state import DAY, event_second
from pipelines.bench.memory import (
    BUDGET_BYTES_PER_CARD,
    MemoryBenchOptions,
    bench_memory,
    card_stream,
    process_memory,
)
from service.cli import app


def test_the_stream_holds_distinct_cards_paying_a_few_times_in_event_time() -> None:
    options = MemoryBenchOptions(cards=2_000, terminals=500)
    stream = [tx for batch in card_stream(options) for tx in batch]
    payments = Counter(tx.card_id for tx in stream)
    assert len(payments) == options.cards
    assert set(payments.values()) == {options.payments_per_card}
    assert len({tx.transaction_id for tx in stream}) == options.transactions
    assert len({tx.terminal_id for tx in stream}) <= options.terminals
    seconds = [event_second(tx.timestamp) for tx in stream]
    assert seconds == sorted(seconds)
    span_days = (seconds[-1] - seconds[0]) / DAY
    assert span_days == pytest.approx(options.arrival_days + options.active_days, rel=0.01)


def test_a_small_population_costs_memory_and_stays_within_its_caps() -> None:
    options = MemoryBenchOptions(cards=10_000, terminals=2_000, cap=1_000)
    result = bench_memory(options)
    for variant in (result.state, result.capped, result.pending):
        assert variant.transactions == options.transactions, variant.variant
        assert variant.growth_bytes > 0, variant.variant
        assert variant.bytes_per_entity > 0, variant.variant
    state, capped, pending = result.state, result.capped, result.pending
    # Every card is held at the peak; the first to arrive were idle long enough to be evicted.
    assert state.peak_held["cards"] == options.cards
    assert 0 < state.end_held["cards"] < options.cards
    assert state.end_held["transaction_ids"] < options.transactions
    assert capped.peak_held["cards"] <= 1_000
    assert capped.peak_held["transaction_ids"] <= 1_000 * options.payments_per_card
    assert 0 < pending.end_held["entries"] <= pending.peak_held["entries"] <= result.pending_cap
    assert pending.peak_held["entries"] < options.transactions, "the TTL let entries go"
    assert options.budget_bytes == BUDGET_BYTES_PER_CARD * options.cards
    assert result.budget_met == (state.growth_bytes <= options.budget_bytes)


def test_the_command_prints_each_store_and_the_budget() -> None:
    result = CliRunner().invoke(app, ["bench", "memory", "--cards", "1000", "--budget-mb", "500"])
    assert result.exit_code == 0, result.output
    for store in ("eviction on", "capped", "pending vectors"):
        assert store in result.output
    assert "500 MB for 1,000 cards" in result.output
    assert ": met" in result.output, "a thousand cards fit in 500 MB"


def test_this_process_memory_is_read() -> None:
    memory = process_memory()
    assert memory is not None
    assert memory.peak >= memory.resident > 0


@pytest.mark.parametrize("name", ["cards", "payments_per_card", "terminals", "cap", "budget_mb"])
def test_options_refuse_an_empty_population(name: str) -> None:
    with pytest.raises(ValueError, match=name):
        MemoryBenchOptions(**{name: 0})
