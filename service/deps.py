"""Named dependencies the routes declare: settings and the ready runtime."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from pipelines.runtime import EmbeddedRuntime
from service.errors import NotReadyError
from service.settings import Settings, get_settings


def _runtime(request: Request) -> EmbeddedRuntime:
    runtime: EmbeddedRuntime = request.app.state.runtime
    return runtime


def _ready_runtime(runtime: Annotated[EmbeddedRuntime, Depends(_runtime)]) -> EmbeddedRuntime:
    if not runtime.ready:
        raise NotReadyError("the model and feature state are still loading")
    return runtime


SettingsDep = Annotated[Settings, Depends(get_settings)]
RuntimeDep = Annotated[EmbeddedRuntime, Depends(_runtime)]
ReadyRuntimeDep = Annotated[EmbeddedRuntime, Depends(_ready_runtime)]
