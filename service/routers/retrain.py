"""Batch retraining: start a job (admin), follow it (any known key).

A job trains off the event loop and changes what serves only at its end, so scoring goes on
while it runs. One at a time: a second trigger is answered 409 with the running job's id. In
distributed mode the learner runs the jobs: an API replica asks it to start one (waiting off
the loop for its answer) and reads the jobs' states from Redis.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body, Path, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from pipelines.retrain.book import Retraining, RetrainJob, RetrainRunningError
from pipelines.runtime.protocol import Runtime
from service.access import Access, GuardedRoute, access
from service.deps import ReadyRuntimeDep
from service.errors import NotFoundError, ServiceError

router = APIRouter(tags=["retrain"], route_class=GuardedRoute)


class RetrainUnavailableError(ServiceError):
    status_code = 501


class RetrainRequest(BaseModel):
    """Options of one retrain; an absent body or field takes the settings' value."""

    model_config = ConfigDict(extra="forbid")

    warm_restart: bool | None = Field(
        default=None,
        strict=True,
        description="Also replay a fresh online learner over the training window and shadow "
        "it as a challenger (default: FRAUDSTREAM_RETRAIN_WARM_RESTART)",
    )


class RetrainJobResponse(BaseModel):
    """A retrain job: its state, progress, and once done its figures and model version."""

    id: str
    trigger: str
    state: str
    progress: float
    step: str
    created_at: datetime
    as_of: datetime | None
    finished_at: datetime | None
    decision: str | None
    version: str | None
    metrics: dict[str, object]
    error: str | None
    warm_restart: bool
    warm_restart_version: str | None


class RetrainConflict(BaseModel):
    detail: str
    running_job_id: str


def _jobs(runtime: Runtime) -> Retraining:
    if runtime.retraining is None:
        raise RetrainUnavailableError("this process does not run retrain jobs")
    return runtime.retraining


def _response(job: RetrainJob) -> RetrainJobResponse:
    return RetrainJobResponse(
        id=job.id,
        trigger=job.trigger,
        state=job.state,
        progress=job.progress,
        step=job.step,
        created_at=job.created_at,
        as_of=job.as_of,
        finished_at=job.finished_at,
        decision=job.decision,
        version=job.version,
        metrics=job.metrics,
        error=job.error,
        warm_restart=job.warm_restart,
        warm_restart_version=job.warm_restart_version,
    )


@router.post(
    "/v1/retrain",
    openapi_extra=access(Access.ADMIN),
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RetrainJobResponse,
    responses={409: {"model": RetrainConflict, "description": "a retrain is already running"}},
)
async def start_retrain(
    runtime: ReadyRuntimeDep, options: Annotated[RetrainRequest | None, Body()] = None
) -> RetrainJobResponse | JSONResponse:
    """Start a batch retrain at the current event time; follow it at ``GET /v1/retrain/{id}``."""
    jobs = _jobs(runtime)
    warm_restart = None if options is None else options.warm_restart
    try:
        if jobs.remote:
            job = await asyncio.to_thread(jobs.submit, "api", warm_restart=warm_restart)
        else:
            job = jobs.submit("api", warm_restart=warm_restart)
    except RetrainRunningError as error:
        body = RetrainConflict(detail=str(error), running_job_id=error.running)
        return JSONResponse(body.model_dump(), status_code=status.HTTP_409_CONFLICT)
    return _response(job)


@router.get("/v1/retrain/{job_id}", openapi_extra=access(Access.ANY_KEY))
async def get_retrain(
    runtime: ReadyRuntimeDep, job_id: Annotated[str, Path(max_length=64)]
) -> RetrainJobResponse:
    """A job's state (queued, running, succeeded, failed), progress, metrics and version."""
    jobs = _jobs(runtime)
    job = await asyncio.to_thread(jobs.get, job_id) if jobs.remote else jobs.get(job_id)
    if job is None:
        raise NotFoundError(f"no retrain job {job_id!r}")
    return _response(job)
