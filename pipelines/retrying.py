"""Retrying a step while a server is down: capped backoff, interruptible, never giving up.

A worker that exited when Redis or the broker went away would be restarted by its orchestrator
into the same outage (a crash loop); one that skipped the step would lose data. So a failed
step is retried with exponential backoff capped at a few seconds, until it succeeds or the
process is asked to stop, and the caller reports itself unhealthy meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiokafka.errors import KafkaError
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

TRANSIENT_ERRORS = (RedisError, KafkaError, OSError, asyncio.TimeoutError)
"""Failures of a server rather than of the code: the step is retried, not dropped."""


@dataclass(frozen=True)
class Backoff:
    """Waits that start at ``initial_s`` and double up to ``maximum_s``; at most ``attempts``
    tries when bounded (a client connecting at start-up), unbounded for `retry_until_done`.

    Examples
    --------
    >>> Backoff(attempts=6, initial_s=0.1, maximum_s=0.5).delays()
    (0.1, 0.2, 0.4, 0.5, 0.5)
    >>> Backoff(attempts=1).delays()
    ()
    >>> Backoff(initial_s=1.0, maximum_s=3.0).delay(4)
    3.0
    """

    initial_s: float = 0.1
    maximum_s: float = 5.0
    attempts: int | None = None

    def __post_init__(self) -> None:
        if (self.attempts is not None and self.attempts < 1) or not (
            0 <= self.initial_s <= self.maximum_s
        ):
            raise ValueError(f"a backoff needs attempts >= 1 and 0 <= initial <= max: {self}")

    def delay(self, retry: int) -> float:
        """The wait after failure number ``retry`` (counted from 0)."""
        return min(self.initial_s * 2.0**retry, self.maximum_s)

    def delays(self) -> tuple[float, ...]:
        """The waits between a bounded backoff's attempts: one fewer than the attempts."""
        if self.attempts is None:
            raise ValueError("an unbounded backoff has no last delay")
        return tuple(self.delay(retry) for retry in range(self.attempts - 1))


async def retry_until_done(
    step: Callable[[], Awaitable[None]],
    stop: asyncio.Event,
    backoff: Backoff,
    *,
    what: str,
    on_health: Callable[[bool], None],
    before_retry: Callable[[], None] = lambda: None,
) -> bool:
    """Run ``step`` until it succeeds (True) or ``stop`` is set after a failure (False)."""
    retry = 0
    while True:
        delay = backoff.delay(retry)
        try:
            await step()
        except TRANSIENT_ERRORS as error:
            on_health(False)
            logger.warning(
                "%s failed (%s: %s); retrying in %.1f s", what, type(error).__name__, error, delay
            )
            before_retry()
            if stop.is_set():
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
            retry += 1
            continue
        on_health(True)
        return True
