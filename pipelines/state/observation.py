"""A batch's recording in feature state, prepared on one thread and sent from another.

The stream worker records a batch in feature state on its state lane, once the batch ahead has
read what it needs from Redis. The request is built when the batch is decoded (`observing`),
so that it is ready the moment the wait ends.

Threads
    `Observation.start` is called once the wait ends, by the thread that ends it: the scoring
    lane's thread when it signals that the batch ahead has loaded its reads, or the state lane's
    thread itself when the batch ahead had loaded already or the wait gave up. Calling the
    observation (`__call__`) reads the answer, on the state lane's thread only, and sends the
    request first if nobody has. A second `start` does nothing, so the two threads may race
    to send.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache, partial
from typing import Protocol, cast

from models.schemas import Transaction
from models.state import FeatureState, WindowAggregates


class Observation(Protocol):
    """A batch's observation, prepared: sent by `start`, answered when called."""

    def start(self) -> None:
        """Send the request now; once (a later call does nothing)."""
        ...

    def __call__(self) -> list[WindowAggregates]:
        """The answers, the request sent first if nobody has."""
        ...


@dataclass(frozen=True)
class RunWhenCalled:
    """An `Observation` with nothing to send ahead: it runs when called (in memory)."""

    run: Callable[[], list[WindowAggregates]]

    def start(self) -> None:
        """Nothing to send."""

    def __call__(self) -> list[WindowAggregates]:
        return self.run()


class PreparedState(Protocol):
    """A feature state that can prepare a batch's request ahead (`RedisFeatureState`)."""

    def observing(self, transactions: Sequence[Transaction]) -> Observation: ...


def observing(state: FeatureState, transactions: Sequence[Transaction]) -> Observation:
    """`FeatureState.observe` of ``transactions`` in steps: prepared now, sent by `start`,
    answered when called; a state with nothing to prepare observes when called."""
    if _prepares(type(state)):
        return cast(PreparedState, state).observing(transactions)
    return RunWhenCalled(partial(state.observe, transactions))


@cache
def _prepares(kind: type) -> bool:
    """Whether states of ``kind`` follow `PreparedState` (asked once a batch: answered once)."""
    return callable(getattr(kind, "observing", None))
