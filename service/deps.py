"""Named dependencies the routes declare: settings and the ready runtime."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from pipelines.runtime.protocol import Runtime
from service.errors import NotReadyError
from service.settings import Settings

# Dependencies are ``async`` so FastAPI calls them on the loop, not through its thread pool.


async def _settings(request: Request) -> Settings:
    """The settings the app was built with (held in its state, read once per process)."""
    settings: Settings = request.app.state.settings
    return settings


async def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def ready_runtime(request: Request) -> Runtime:
    """The runtime, once ready: a plain call for the hot routes, which skip dependency solving."""
    runtime: Runtime = request.app.state.runtime
    if not runtime.ready:
        raise NotReadyError(runtime.unready_reason)
    return runtime


async def _ready_runtime(request: Request) -> Runtime:
    return ready_runtime(request)


SettingsDep = Annotated[Settings, Depends(_settings)]
RuntimeDep = Annotated[Runtime, Depends(_runtime)]
ReadyRuntimeDep = Annotated[Runtime, Depends(_ready_runtime)]
