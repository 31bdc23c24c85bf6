"""Lanes: threads on which a worker's batches pass strictly in turn, behind `ScoringLanes`.

A stream worker keeps several batches in flight, but what a batch does to shared state must
happen in batch order: a card's transactions are recorded in order, and a card alerted in one
batch is in cooldown for the next. A lane is one thread that runs each batch's step only in its
turn, so the event loop can hand batches over as they come and stay free for fetching and
delivering. `ScoringLanes` is the worker's one handle on them: a batch is recorded in feature
state on the state lane, scored on the scoring lane, and its stores' writes are made on the
writes lane. A batch's steps on consecutive lanes are handed from thread to thread, not
through the event loop (see "Stream worker" in docs/design.md for why).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Generic, TypeVar

from models.schemas import Transaction
from models.state import FeatureState, WindowAggregates
from pipelines.state.observation import Observation, observing

_T = TypeVar("_T")
_U = TypeVar("_U")


class OutOfTurnError(Exception):
    """A batch reached a lane before the batch ahead of it was done there (that one failed)."""


class Lane:
    """One thread for a Redis-bound step; batches pass through it strictly in turn.

    Batch ``n`` runs only once batch ``n - 1`` has succeeded: after a failure the batches
    queued behind it raise `OutOfTurnError` without touching anything, and are submitted again
    once the failed one has been redone. Whatever else runs here (`run_between_turns`) runs
    between two batches.
    """

    def __init__(self, name: str) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._turn = 0  # read and written on the lane's thread only

    def start_in_turn(self, turn: int, step: Callable[[], _T]) -> Future[_T]:
        """`run_in_turn` from any thread, the outcome a thread's future."""
        return self._executor.submit(self._in_turn, turn, step)

    def run_in_turn(self, turn: int, step: Callable[[], _T]) -> asyncio.Future[_T]:
        """Run ``step`` as batch ``turn``'s, once the batches before it are done here."""
        return _awaitable(self.start_in_turn(turn, step))

    def run_in_turn_then(
        self, turn: int, step: Callable[[], _T], following: Lane, then: Callable[[_T], _U]
    ) -> asyncio.Future[_U]:
        """`run_in_turn` ``step``, then ``then`` with its result on ``following`` in the same
        turn, handed over by this lane's thread the moment ``step`` returns."""
        relayed: Future[_U] = Future()

        def hand_over(done: Future[_T]) -> None:
            if done.cancelled():
                relayed.cancel()
                return
            if (error := done.exception()) is not None:
                relayed.set_exception(error)
                return
            try:
                started = following.start_in_turn(turn, partial(then, done.result()))
            except RuntimeError as error:  # the following lane is shut down
                relayed.set_exception(error)
            else:
                started.add_done_callback(partial(_copy_outcome, relayed))

        self.start_in_turn(turn, step).add_done_callback(hand_over)
        return _awaitable(relayed)

    async def run_between_turns(self, step: Callable[[], _T]) -> _T:
        """Run ``step`` on the lane's thread after the turn running now, whatever its turn."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, step)

    def _in_turn(self, turn: int, step: Callable[[], _T]) -> _T:
        if turn != self._turn:
            raise OutOfTurnError(f"batch {turn} before batch {self._turn}")
        result = step()
        self._turn += 1
        return result

    def close(self) -> None:
        self._executor.shutdown(wait=True)


class Signal:
    """A flag one thread raises for another, as `threading.Event`, that also runs what was
    hung on it (`on_set`) on the raising thread: what the other thread would do first on
    waking (send a request) is done without waiting for it to win the GIL."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._hooks: list[Callable[[], object]] = []

    def set(self) -> None:
        with self._lock:
            self._event.set()
            hooks, self._hooks = self._hooks, []
        for hook in hooks:
            hook()

    def on_set(self, hook: Callable[[], object]) -> None:
        """Run ``hook`` when the flag is raised, by the thread raising it; now if it is up."""
        with self._lock:
            if not self._event.is_set():
                self._hooks.append(hook)
                return
        hook()

    def wait(self, timeout: float) -> bool:
        return self._event.wait(timeout)


def _awaitable(future: Future[_T]) -> asyncio.Future[_T]:
    awaitable = asyncio.wrap_future(future)
    # A batch given up on (the worker stopped while one ahead of it failed) is never awaited:
    # its outcome is dropped here rather than logged as never retrieved.
    awaitable.add_done_callback(retrieved)
    return awaitable


def _copy_outcome(target: Future[_T], source: Future[_T]) -> None:
    if source.cancelled():
        target.cancel()
    elif (error := source.exception()) is not None:
        target.set_exception(error)
    else:
        target.set_result(source.result())


def retrieved(future: asyncio.Future[Any]) -> None:
    """A done-callback that reads a future's outcome, so that one nobody awaits is not logged
    as never retrieved."""
    if not future.cancelled():
        future.exception()


RECORD_GATE_SECONDS = 1.0
"""Longest a batch waits, before it is recorded, for the batch ahead to load its reads."""


@dataclass
class InFlight(Generic[_T]):
    """One batch's passage through the lanes; `_T` is what its scoring step returns."""

    turn: int
    transactions: list[Transaction]
    observation: Observation | None
    """Its state request, prepared when it was decoded; taken by its first recording."""
    after: Signal | None
    """The batch ahead's `loaded`: this one is recorded once it is set (or after
    `RECORD_GATE_SECONDS`), its request sent by the thread that sets it."""
    loaded: Signal = field(default_factory=Signal)
    """Set once its scoring has read what it needs from the stores, or has failed: from then
    on the batch leaves Redis to the state script of the batch behind it."""
    scoring: asyncio.Future[_T] | None = None
    writing: Future[None] | None = None
    """Its scoring's writes on the writes lane, started as soon as it is scored."""
    recorded: bool = False
    """Its turn on the state lane is done: any later attempt records it again (as seen)."""


class ScoringLanes:
    """Where batches are recorded in feature state, scored and written, each in batch order.

    A batch is recorded on the state lane once the batch ahead has loaded its reads, and then
    scored on the scoring lane; its scoring step starts the batch's writes on the writes lane
    (`start_writes`). After a failure the batch is done again: `scored` and `written` wait for
    its steps, started again if they failed or were taken out of turn.
    """

    def __init__(self, state: FeatureState) -> None:
        self._feature_state = state
        self._state = Lane("fraudstream-state")
        self._scoring = Lane("fraudstream-scoring")
        self._writes = Lane("fraudstream-writes")

    def start(self, batch: InFlight[_T], score: Callable[[list[WindowAggregates]], _T]) -> None:
        """Record ``batch`` in feature state, then ``score`` what state answered, in its turn."""
        batch.scoring = self._recorded_then_scored(batch, score)

    async def scored(
        self, batch: InFlight[_T], score: Callable[[list[WindowAggregates]], _T]
    ) -> _T:
        """What ``batch``'s scoring step returned; recorded and scored again on a retry."""
        scoring, batch.scoring = batch.scoring, None
        if scoring is None:  # a retry
            scoring = self._recorded_then_scored(batch, score)
        try:
            return await scoring
        except OutOfTurnError:
            # A batch ahead of this one failed and has been done since: now it is its turn.
            return await self._recorded_then_scored(batch, score)

    def start_writes(self, batch: InFlight[Any], writes: Callable[[], None]) -> None:
        """Make ``writes`` on the writes lane in ``batch``'s turn (from its scoring step)."""
        batch.writing = self._writes.start_in_turn(batch.turn, writes)

    async def written(self, batch: InFlight[Any], writes: Callable[[], None]) -> None:
        """Wait for ``batch``'s writes, made again after a failure."""
        writing, batch.writing = batch.writing, None
        if writing is not None:
            try:
                await asyncio.wrap_future(writing)
                return
            except OutOfTurnError:
                pass  # the writes of a batch ahead failed and have been made since
        await self._writes.run_in_turn(batch.turn, writes)

    @staticmethod
    def done(batch: InFlight[Any]) -> bool:
        """Whether ``batch`` is scored and written already, without error."""
        return _succeeded(batch.scoring) and _succeeded(batch.writing)

    async def between_batches(self, step: Callable[[], _T]) -> _T:
        """Run ``step`` on the scoring lane between two batches' scoring."""
        return await self._scoring.run_between_turns(step)

    def close(self) -> None:
        """Finish the steps started, then stop the lanes' threads."""
        self._state.close()
        self._scoring.close()
        self._writes.close()

    def _recorded_then_scored(
        self, batch: InFlight[_T], score: Callable[[list[WindowAggregates]], _T]
    ) -> asyncio.Future[_T]:
        task = asyncio.ensure_future(self._record_then_score(batch, score))
        task.add_done_callback(retrieved)
        return task

    async def _record_then_score(
        self, batch: InFlight[_T], score: Callable[[list[WindowAggregates]], _T]
    ) -> _T:
        state, turn = self._feature_state, batch.turn
        try:
            if batch.recorded:
                # Recorded already, so this is all repeats: their first answers, read between
                # two batches on the state lane, which may be recording later batches meanwhile.
                observe = partial(state.observe, batch.transactions)
                observed = await self._state.run_between_turns(observe)
                return await self._scoring.run_in_turn(turn, partial(score, observed))
            record = partial(_recorded, batch, partial(observing, state))
            return await self._state.run_in_turn_then(turn, record, self._scoring, score)
        except OutOfTurnError:
            if batch.recorded:  # its scoring's turn was taken: it reads nothing until it comes
                batch.loaded.set()
            raise


def _recorded(
    batch: InFlight[Any], observing: Callable[[list[Transaction]], Observation]
) -> list[WindowAggregates]:
    """On the state lane: the batch recorded in feature state, in its turn."""
    observation, batch.observation = batch.observation, None
    if observation is None:  # taken by an attempt that failed
        observation = observing(batch.transactions)
    observed = gated(batch.after, observation)
    batch.recorded = True
    return observed


def gated(after: Signal | None, observation: Observation) -> list[WindowAggregates]:
    """On the state lane: a prepared ``observation`` made once the batch ahead has loaded its
    reads, its request sent by the thread that ends the wait (`Signal.on_set`). The wait is for
    speed alone: it gives up after `RECORD_GATE_SECONDS`."""
    if after is not None:
        after.on_set(observation.start)
        after.wait(RECORD_GATE_SECONDS)
    return observation()


def _succeeded(future: asyncio.Future[Any] | Future[Any] | None) -> bool:
    """Whether ``future`` (of the event loop or of a lane's thread) is done without error."""
    return (
        future is not None
        and future.done()
        and not future.cancelled()
        and future.exception() is None
    )
