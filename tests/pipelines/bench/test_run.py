"""What every bench notes besides its figures: its steps, and the machine it ran on."""

from __future__ import annotations

from pipelines.bench.run import cores, load_average, step_counter


def test_each_step_reports_how_many_are_done_so_far() -> None:
    reported: list[int] = []
    advance = step_counter(reported.append)
    for _ in range(3):
        advance()
    assert reported == [1, 2, 3]


def test_each_counter_counts_its_own_steps() -> None:
    first: list[int] = []
    second: list[int] = []
    advance_first, advance_second = step_counter(first.append), step_counter(second.append)
    advance_first()
    advance_first()
    advance_second()
    assert (first, second) == ([1, 2], [1])


def test_steps_without_a_progress_bar_are_counted_for_nobody() -> None:
    advance = step_counter(None)
    assert [advance() for _ in range(2)] == [None, None]


def test_the_machine_is_described_by_its_cores_and_load() -> None:
    assert cores() >= 1
    load = load_average()
    assert load is not None  # Linux keeps one
    assert load >= 0
