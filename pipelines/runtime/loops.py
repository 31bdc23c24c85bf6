"""The periodic loops a runtime asks the app to run beside serving (`Runtime.background_tasks`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from models.drift import DriftMonitor
from pipelines.lifecycle.model_lifecycle import ModelLifecycle

logger = logging.getLogger(__name__)

QUALITY_SAMPLE_SECONDS = 5.0
"""How often the dashboard's quality history samples the live model's rolling AP."""

DRIFT_CHECK_SECONDS = 1.0
"""How often ended days waiting for their drift comparison are looked for."""

LIFECYCLE_TICK_SECONDS = 1.0
"""How often the snapshot schedule and the promotion policy are checked."""


async def sample_quality(sample: Callable[[], None]) -> None:
    # On a timer rather than when the dashboard asks: the history is there when someone first
    # opens the page, its points are evenly spaced however many pages poll, and a sample (an AP
    # over at most 10,000 matured labels) costs milliseconds every few seconds.
    while True:
        sample()
        await asyncio.sleep(QUALITY_SAMPLE_SECONDS)


async def tick_lifecycle(lifecycle: ModelLifecycle) -> None:
    """Keep the models' clock where this process owns them: periodic snapshots, promotion."""
    # On the loop, between requests: a snapshot or a promotion never meets a half-scored batch.
    while True:
        await asyncio.sleep(LIFECYCLE_TICK_SECONDS)
        try:
            await lifecycle.tick_in_background()
        except Exception:
            logger.exception("the model lifecycle's periodic step failed; retrying next tick")


async def compare_drift(monitor: DriftMonitor, after: Callable[[], None]) -> None:
    """Make the drift comparisons of the days ended, in a thread: a day's comparison takes
    seconds of numpy, which the event loop must not wait for. ``after`` runs on the loop."""
    while True:
        await asyncio.sleep(DRIFT_CHECK_SECONDS)
        try:
            if await asyncio.to_thread(monitor.run_due):
                after()
        except Exception:
            logger.exception("the drift comparison failed; the next ended day is compared anew")
