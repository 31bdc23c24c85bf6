"""The HTTP API of the embedded service: an app factory with a lifespan that wires it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from pipelines.collector import settle_after_start_up
from pipelines.lifecycle.model_lifecycle import ModelLifecycle
from pipelines.retrain.jobs import RetrainJobs
from pipelines.runtime.embedded import EmbeddedRuntime
from pipelines.runtime.simulated_feed import SimulatedFeed
from service.auth import KeyRing
from service.bootstrap import build_feed, build_runtime
from service.errors import install_error_handlers
from service.origins import install_origin_checks
from service.routers import (
    alerts,
    api_docs,
    bench,
    dashboard,
    health,
    labels,
    metrics,
    models,
    retrain,
    scoring,
    transactions,
)
from service.settings import Settings, get_settings

logger = logging.getLogger(__name__)

QUALITY_SAMPLE_SECONDS = 5.0
"""How often the dashboard's quality history samples the live model's rolling AP."""

LIFECYCLE_TICK_SECONDS = 1.0
"""How often the snapshot schedule and the promotion policy are checked."""


async def _sample_quality(runtime: EmbeddedRuntime) -> None:
    # On a timer rather than when the dashboard asks: the history is there when someone first
    # opens the page, its points are evenly spaced however many pages poll, and a sample (an AP
    # over at most 10,000 matured labels) costs milliseconds every few seconds.
    while True:
        runtime.sample_quality()
        await asyncio.sleep(QUALITY_SAMPLE_SECONDS)


async def _tick(lifecycle: ModelLifecycle) -> None:
    # On the loop, between requests: a snapshot or a promotion never meets a half-scored batch.
    while True:
        await asyncio.sleep(LIFECYCLE_TICK_SECONDS)
        try:
            await lifecycle.tick_in_background()
        except Exception:
            logger.exception("the model lifecycle's periodic step failed; retrying next tick")


async def _start(
    runtime: EmbeddedRuntime, feed: SimulatedFeed | None, tasks: list[asyncio.Task[None]]
) -> None:
    if feed is not None and not runtime.resumed:
        # Replaying the history takes seconds of CPU: off the loop, so /healthz answers.
        warmed = await asyncio.to_thread(feed.warm_up)
        logger.info("learned from %d simulated historical transactions", warmed)
    await runtime.start()
    tasks.append(asyncio.create_task(_sample_quality(runtime), name="quality-sampler"))
    if isinstance(runtime.lifecycle, ModelLifecycle):  # elsewhere the learner keeps the time
        tasks.append(asyncio.create_task(_tick(runtime.lifecycle), name="model-lifecycle"))
    settle_after_start_up()
    if feed is not None:
        tasks.append(asyncio.create_task(feed.run(), name="simulated-feed"))


RuntimeBuilder = Callable[[Settings], EmbeddedRuntime]


def create_app(settings: Settings | None = None, build: RuntimeBuilder = build_runtime) -> FastAPI:
    """The API wired to a fresh runtime built from ``settings``: the embedded one by default,
    or the distributed API role's (`service.distributed.build_cluster_runtime`)."""
    settings = settings or get_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = build(settings)
        feed = await asyncio.to_thread(build_feed, settings, runtime)
        app.state.runtime = runtime
        app.state.feed = feed
        tasks: list[asyncio.Task[None]] = []
        tasks.append(asyncio.create_task(_start(runtime, feed, tasks), name="start-up"))
        # Jobs run here only where this process owns the models; an API replica asks the learner.
        jobs = runtime.retrain if isinstance(runtime.retrain, RetrainJobs) else None
        if jobs is not None and settings.retrain_every is not None:
            schedule = jobs.run_schedule(settings.retrain_every)
            tasks.append(asyncio.create_task(schedule, name="retrain-schedule"))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if jobs is not None:
                await jobs.close()
            await runtime.stop()

    app = FastAPI(
        title="fraudstream",
        summary="Real-time card fraud scores from online learners that learn from late labels.",
        version="0.1.0",
        lifespan=lifespan,
        max_body_size=settings.max_body_bytes,
        # Served by `service.routers.api_docs` with local assets, not FastAPI's CDN-loaded pages.
        docs_url=None,
        redoc_url=None,
    )
    # Held in state, not as a dependency override: while overrides exist FastAPI re-inspects
    # every dependency's signature on every request.
    app.state.settings = settings
    app.state.keys = KeyRing(dict(settings.api_keys))
    if app.state.keys.open:
        logger.warning(
            "no API key is configured: every endpoint, admin ones included, is open to whoever "
            "reaches %s:%d (set FRAUDSTREAM_API_KEYS to require keys)",
            settings.host,
            settings.port,
        )
    install_error_handlers(app)
    install_origin_checks(app, settings)
    # Each route checks its declared access rule and body type (`service.access.GuardedRoute`).
    for router in (
        transactions.router,
        labels.router,
        scoring.router,
        alerts.router,
        models.router,
        retrain.router,
        health.router,
        metrics.router,
        dashboard.router,
        api_docs.router,
    ):
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=dashboard.STATIC_DIR), name="static")
    if settings.bench_endpoints:
        app.include_router(bench.router)
    return app
