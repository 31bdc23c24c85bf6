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
    initial_seconds: float = 0.1
    max_seconds: float = 5.0


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
    delay = backoff.initial_seconds
    while True:
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
            delay = min(delay * 2, backoff.max_seconds)
            continue
        on_health(True)
        return True
