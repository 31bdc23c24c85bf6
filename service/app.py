"""The HTTP API: an app factory whose lifespan builds a runtime, starts it and stops it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from pipelines.collector import settle_after_start_up
from pipelines.runtime.protocol import Runtime
from service.auth import KeyRing
from service.bootstrap import build_runtime
from service.errors import install_error_handlers
from service.origins import install_origin_checks
from service.routers import (
    alerts,
    api_docs,
    backtest,
    bench,
    dashboard,
    drift,
    health,
    labels,
    metrics,
    models,
    retrain,
    rules,
    scoring,
    transactions,
    whatif,
)
from service.settings import Settings, get_settings

logger = logging.getLogger(__name__)

RuntimeBuilder = Callable[[Settings], Runtime]


async def _start(runtime: Runtime, tasks: list[asyncio.Task[None]]) -> None:
    await runtime.start()
    for name, loop in runtime.background_tasks().items():
        tasks.append(asyncio.create_task(loop, name=name))
    # Before any of those tasks has run: start-up's objects are frozen, not the traffic's.
    settle_after_start_up()


def create_app(settings: Settings | None = None, build: RuntimeBuilder = build_runtime) -> FastAPI:
    """The API wired to a fresh runtime built from ``settings``: the embedded one by default,
    or the distributed API role's (`service.distributed.build_cluster_runtime`)."""
    settings = settings or get_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Off the loop: resuming the models or simulating the feed's history takes seconds.
        runtime = await asyncio.to_thread(build, settings)
        app.state.runtime = runtime
        tasks: list[asyncio.Task[None]] = []
        tasks.append(asyncio.create_task(_start(runtime, tasks), name="start-up"))
        # Jobs run here only where this process owns the models; an API replica asks the learner.
        jobs = runtime.local_jobs
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
        # Before any /v1/rules/{name} route, which would take "backtest" for a rule's name.
        backtest.router,
        rules.router,
        health.router,
        metrics.router,
        dashboard.router,
        drift.router,
        whatif.router,
        api_docs.router,
    ):
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=dashboard.STATIC_DIR), name="static")
    if settings.bench_endpoints:
        app.include_router(bench.router)
    return app
