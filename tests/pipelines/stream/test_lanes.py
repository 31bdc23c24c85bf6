"""A lane runs each batch's step only in its turn, and other work between two turns."""

from __future__ import annotations

import math
import threading
import time

import pytest

from models.state import WindowAggregates
from pipelines.stream import lanes
from pipelines.stream.lanes import Lane, OutOfTurnError, Signal, gated


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
        assert await lane.run_in_turn(0, lambda: step("first")) == "first"
        failing = lane.run_in_turn(1, lambda: step("second", fail=True))
        behind = lane.run_in_turn(2, lambda: step("third"))
        with pytest.raises(RuntimeError, match="second failed"):
            await failing
        with pytest.raises(OutOfTurnError, match="batch 2 before batch 1"):
            await behind
        # Other work runs between turns; then the failed turn is redone and the line moves on.
        assert await lane.run_between_turns(lambda: step("between")) == "between"
        assert await lane.run_in_turn(1, lambda: step("second")) == "second"
        assert await lane.run_in_turn(2, lambda: step("third")) == "third"
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
        relayed = state.run_in_turn_then(0, lambda: 20, scoring, next_step)
        # The event loop is held up here (as by decoding a batch): the hand-over goes on.
        assert handed_over.wait(5)
        assert await relayed == 21

        handed_over.clear()
        with pytest.raises(RuntimeError, match="recording failed"):
            await state.run_in_turn_then(1, _fail, scoring, next_step)
        assert not handed_over.is_set()  # the next lane never ran
        # Both lanes keep their turns: the failed step is redone, and its successor follows.
        assert await state.run_in_turn_then(1, lambda: 1, scoring, lambda n: n * 2) == 2
    finally:
        state.close()
        scoring.close()


def _fail() -> int:
    raise RuntimeError("recording failed")


def test_a_batch_ahead_that_never_loads_holds_the_next_one_back_only_so_long(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The wait before recording is for speed alone: it must never wedge the state lane."""
    monkeypatch.setattr(lanes, "RECORD_GATE_SECONDS", 0.05)
    first = TimedObservation()
    ahead = Signal()
    started = time.monotonic()
    gated(ahead, first)
    assert first.answered - started >= 0.04
    # The request is ready before the wait, and sent by the waiting thread once it gives up.
    assert first.answered - first.prepared >= 0.04
    assert first.started_by == [threading.current_thread().name]
    ahead.set()  # too late: it was sent already, and is not sent again
    assert first.started_by == [threading.current_thread().name]


def test_the_batch_ahead_sends_the_next_ones_request_the_moment_it_has_loaded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The thread that raises the signal sends the request: the waiting thread need not win
    the GIL first."""
    monkeypatch.setattr(lanes, "RECORD_GATE_SECONDS", 60.0)
    observation = TimedObservation()
    ahead = Signal()
    recorder = threading.Thread(target=gated, args=(ahead, observation), name="state")
    recorder.start()
    while not ahead._hooks:  # the state lane is waiting, its request hung on the signal
        time.sleep(0.001)
    assert observation.started_by == []
    started = time.monotonic()
    ahead.set()
    assert observation.started_by == [threading.current_thread().name]
    recorder.join(5)
    assert observation.answered - started < 30
    # Already loaded: the request goes at once, from the state lane itself.
    late = TimedObservation()
    gated(ahead, late)
    assert late.started_by == [threading.current_thread().name]


class TimedObservation:
    """An observation that notes when it was prepared and answered, and who started it."""

    def __init__(self) -> None:
        self.prepared = time.monotonic()
        self.answered = math.inf
        self.started_by: list[str] = []

    def start(self) -> None:
        if not self.started_by:
            self.started_by.append(threading.current_thread().name)

    def __call__(self) -> list[WindowAggregates]:
        self.start()
        self.answered = time.monotonic()
        return []
