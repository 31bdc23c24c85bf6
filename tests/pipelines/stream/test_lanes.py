"""A lane runs each batch's step only in its turn, and other work between two turns."""

from __future__ import annotations

import threading

import pytest

from pipelines.stream.lanes import Lane, OutOfTurnError


@pytest.mark.anyio
async def test_turns_run_in_order_and_a_failed_turn_holds_back_the_ones_behind_it() -> None:
    lane = Lane("test-lane")
    ran: list[str] = []

    def step(name: str, fail: bool = False) -> str:
        if fail:
            raise RuntimeError(f"{name} failed")
        ran.append(name)
        return name

    try:
        assert await lane.submit(0, lambda: step("first")) == "first"
        failing = lane.submit(1, lambda: step("second", fail=True))
        behind = lane.submit(2, lambda: step("third"))
        with pytest.raises(RuntimeError, match="second failed"):
            await failing
        with pytest.raises(OutOfTurnError, match="batch 2 before batch 1"):
            await behind
        # Other work runs between turns; then the failed turn is redone and the line moves on.
        assert await lane.call(lambda: step("between")) == "between"
        assert await lane.submit(1, lambda: step("second")) == "second"
        assert await lane.submit(2, lambda: step("third")) == "third"
        assert ran == ["first", "between", "second", "third"]
    finally:
        lane.close()


@pytest.mark.anyio
async def test_a_step_hands_its_result_to_the_next_lane_without_the_event_loop() -> None:
    state, scoring = Lane("test-state"), Lane("test-scoring")
    handed_over = threading.Event()

    def next_step(n: int) -> int:
        handed_over.set()
        return n + 1

    try:
        relayed = state.submit_then(0, lambda: 20, scoring, next_step)
        # The event loop is held up here (as by decoding a batch): the hand-over goes on.
        assert handed_over.wait(5)
        assert await relayed == 21

        handed_over.clear()
        with pytest.raises(RuntimeError, match="recording failed"):
            await state.submit_then(1, _fail, scoring, next_step)
        assert not handed_over.is_set()  # the next lane never ran
        # Both lanes keep their turns: the failed step is redone, and its successor follows.
        assert await state.submit_then(1, lambda: 1, scoring, lambda n: n * 2) == 2
    finally:
        state.close()
        scoring.close()


def _fail() -> int:
    raise RuntimeError("recording failed")
