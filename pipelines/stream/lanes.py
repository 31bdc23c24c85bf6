"""Lanes: threads on which a worker's batches pass strictly in turn.

A stream worker keeps several batches in flight, but what a batch does to shared state must
happen in batch order: a card's transactions are recorded in order, and a card alerted in one
batch is in cooldown for the next. A lane is one thread that runs each batch's step only in its
turn, so the event loop can hand batches over as they come and stay free for fetching and
delivering. A batch's steps on consecutive lanes are handed from thread to thread
(`Lane.submit_then`, `Lane.start`), not through the event loop, where each hand-over waited
behind whatever the loop was doing: 2 to 4 ms a batch on the path every batch takes.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

_T = TypeVar("_T")
_U = TypeVar("_U")


class OutOfTurnError(Exception):
    """A batch reached a lane before the batch ahead of it was done there (that one failed)."""


class Lane:
    """One thread for a Redis-bound step; batches pass through it strictly in turn.

    Batch ``n`` runs only once batch ``n - 1`` has succeeded: after a failure the batches
    queued behind it raise `OutOfTurnError` without touching anything, and are submitted again
    once the failed one has been redone. Whatever else runs here (`call`) runs between two batches.
    """

    def __init__(self, name: str) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._turn = 0  # read and written on the lane's thread only

    def start(self, turn: int, step: Callable[[], _T]) -> Future[_T]:
        """`submit` from any thread, the outcome a thread's future."""
        return self._executor.submit(self._in_turn, turn, step)

    def submit(self, turn: int, step: Callable[[], _T]) -> asyncio.Future[_T]:
        return _awaitable(self.start(turn, step))

    def submit_then(
        self, turn: int, step: Callable[[], _T], following: Lane, then: Callable[[_T], _U]
    ) -> asyncio.Future[_U]:
        """`submit` ``step``, then ``then`` with its result on ``following`` in the same turn,
        handed over by this lane's thread the moment ``step`` returns."""
        relayed: Future[_U] = Future()

        def hand_over(done: Future[_T]) -> None:
            if done.cancelled():
                relayed.cancel()
                return
            if (error := done.exception()) is not None:
                relayed.set_exception(error)
                return
            try:
                started = following.start(turn, partial(then, done.result()))
            except RuntimeError as error:  # the following lane is shut down
                relayed.set_exception(error)
            else:
                started.add_done_callback(partial(_copy_outcome, relayed))

        self.start(turn, step).add_done_callback(hand_over)
        return _awaitable(relayed)

    async def call(self, step: Callable[[], _T]) -> _T:
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


@dataclass
class Lanes:
    """Where a batch is recorded in feature state, where it is then scored, and where the
    stores' writes of its scoring are made."""

    state: Lane = field(default_factory=lambda: Lane("fraudstream-state"))
    scoring: Lane = field(default_factory=lambda: Lane("fraudstream-scoring"))
    writes: Lane = field(default_factory=lambda: Lane("fraudstream-writes"))

    def close(self) -> None:
        self.state.close()
        self.scoring.close()
        self.writes.close()
