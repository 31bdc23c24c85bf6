"""In-memory feature state: once per id, bounded, and labels at event time."""

from __future__ import annotations

from models.memory_state import InMemoryFeatureState
from models.state import DAY, FraudReport, WindowSpec, event_second
from tests.builders import make_tx


def test_repeated_transaction_id_does_not_update_state_twice() -> None:
    state = InMemoryFeatureState(WindowSpec())
    first = make_tx(1, amount=10.0)
    state.observe([first, make_tx(2, hours=1, amount=30.0)])
    [again] = state.observe([first])
    assert again.duplicate
    assert again.card_counts == [1, 1, 1]  # as of its own time, counted once
    [later] = state.observe([make_tx(3, hours=2, amount=20.0)])
    assert later.card_counts == [3, 3, 3]
    assert later.card_amount_hundredths == [6000, 6000, 6000]


def test_duplicate_reads_the_real_predecessor_not_itself() -> None:
    state = InMemoryFeatureState(WindowSpec())
    state.observe([make_tx(1), make_tx(2, hours=1)])
    [again] = state.observe([make_tx(2, hours=1)])
    assert again.seconds_since_previous == 3600


def test_terminal_frauds_count_in_the_window_shifted_by_the_delay() -> None:
    spec = WindowSpec(windows_days=(1, 7), label_delay_seconds=7 * DAY)
    state = InMemoryFeatureState(spec)
    old = make_tx(1, terminal="p")
    state.observe([old])
    state.record_frauds([FraudReport("p", event_second(old.timestamp))])
    [inside] = state.observe([make_tx(2, hours=7 * 24 + 12, terminal="p")])
    assert inside.terminal_counts == [1, 1]
    assert inside.terminal_frauds == [1, 1]
    [beyond_one_day] = state.observe([make_tx(3, hours=9 * 24, terminal="p")])
    assert beyond_one_day.terminal_frauds == [0, 1]
    state.record_frauds([FraudReport("p", event_second(old.timestamp), -1)])
    [retracted] = state.observe([make_tx(4, hours=9 * 24 + 1, terminal="p")])
    assert retracted.terminal_frauds == [0, 0]


def test_recent_transactions_are_not_in_the_shifted_terminal_window() -> None:
    state = InMemoryFeatureState(WindowSpec())
    state.observe([make_tx(1, terminal="p")])
    [now] = state.observe([make_tx(2, hours=1, terminal="p")])
    assert now.terminal_counts == [0, 0, 0]


def test_idle_entities_are_evicted_once_past_their_horizon() -> None:
    spec = WindowSpec(windows_days=(1,), label_delay_seconds=DAY)
    state = InMemoryFeatureState(spec)
    state.observe([make_tx(i, hours=i / 100, card=f"c{i}", terminal=f"p{i}") for i in range(50)])
    assert state.sizes() == {"cards": 50, "terminals": 50, "transaction_ids": 50}
    state.observe([make_tx(99, hours=24 * 3, card="fresh", terminal="fresh")])
    assert state.sizes() == {"cards": 1, "terminals": 1, "transaction_ids": 1}


def test_caps_bound_memory_whatever_the_stream() -> None:
    state = InMemoryFeatureState(
        WindowSpec(), max_cards=10, max_terminals=5, max_transaction_ids=20
    )
    for index in range(200):
        state.observe([make_tx(index, hours=index / 3600, card=f"c{index}", terminal=f"p{index}")])
    sizes = state.sizes()
    assert sizes["cards"] <= 10
    assert sizes["terminals"] <= 5
    assert sizes["transaction_ids"] <= 20


def test_old_buckets_are_dropped_as_the_card_moves_on() -> None:
    state = InMemoryFeatureState(WindowSpec(windows_days=(1, 7, 30)))
    for day in range(100):
        state.observe([make_tx(day, hours=24 * day)])
    [last] = state.observe([make_tx(1000, hours=24 * 100)])
    assert last.card_counts == [1, 7, 30]
    assert last.seconds_since_previous == DAY


def test_first_use_of_a_terminal_is_judged_within_the_card_horizon() -> None:
    state = InMemoryFeatureState(WindowSpec(windows_days=(1, 7)))
    [first] = state.observe([make_tx(1, terminal="p")])
    [second] = state.observe([make_tx(2, hours=24, terminal="p")])
    [after_horizon] = state.observe([make_tx(3, hours=24 * 9, terminal="p")])
    assert (first.card_used_terminal_before, second.card_used_terminal_before) == (False, True)
    assert not after_horizon.card_used_terminal_before
