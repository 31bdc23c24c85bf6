"""A lane runs each batch's step only in its turn, and other work between two turns."""

from __future__ import annotations

import pytest

from pipelines.lanes import Lane, OutOfTurnError


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
