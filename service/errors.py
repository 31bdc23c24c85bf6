"""Every error the API answers with, mapped to its HTTP status in one place.

``ServiceError`` is the root of the service's own errors; each subclass carries its status.
Validation errors keep FastAPI's shape (``detail`` is a list naming each field at fault), and
anything unexpected is a bug: logged with its traceback, answered 500 without one.
"""

from __future__ import annotations

import logging

from aiokafka.errors import KafkaError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError

from models.idempotency import ConflictingRepeatError
from models.learners import LearnerError
from pipelines.lifecycle.model_commands import LearnerUnavailableError
from pipelines.lifecycle.model_lifecycle import SchemaMismatchError
from pipelines.lifecycle.registry import (
    ChampionRetireError,
    RetiredVersionError,
    TamperedArtefactError,
    UnknownVersionError,
)
from pipelines.runtime.protocol import QueueFullError

logger = logging.getLogger(__name__)

MAX_REPORTED_ERRORS = 20
"""Validation errors listed in a 422; the rest are counted."""


class ServiceError(Exception):
    """An error with a meaning for the client."""

    status_code = 400
    headers: dict[str, str] = {}  # noqa: RUF012 - read only, overridden per class


class NotReadyError(ServiceError):
    """The model and state are still loading."""

    status_code = 503


class UnsupportedMediaTypeError(ServiceError):
    status_code = 415


class NotFoundError(ServiceError):
    status_code = 404


# What the model registry and lifecycle refuse, as HTTP statuses.
_REFUSALS: dict[type[Exception], int] = {
    UnknownVersionError: 404,
    SchemaMismatchError: 409,
    ChampionRetireError: 409,
    RetiredVersionError: 409,
    TamperedArtefactError: 422,
    LearnerError: 422,
    LearnerUnavailableError: 503,
    ConflictingRepeatError: 409,
}


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": message})


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def service_error(_: Request, error: ServiceError) -> JSONResponse:
        response = _error(error.status_code, str(error))
        response.headers.update(error.headers)
        return response

    @app.exception_handler(QueueFullError)
    async def queue_full(_: Request, error: QueueFullError) -> JSONResponse:
        return _error(503, str(error))

    async def refused(request: Request, error: Exception) -> JSONResponse:
        status = _REFUSALS[type(error)]
        if status == 422 and isinstance(error, TamperedArtefactError):
            logger.error("%s %s refused: %s", request.method, request.url.path, error)
        return _error(status, str(error))

    for refusal in _REFUSALS:
        app.add_exception_handler(refusal, refused)

    @app.exception_handler(RedisError)
    @app.exception_handler(KafkaError)
    async def server_down(request: Request, error: Exception) -> JSONResponse:
        # Distributed mode: Redis or the broker is unreachable. Nothing was lost (the request
        # is refused whole); the client retries, and /readyz says when to.
        logger.error(
            "%s %s: %s unavailable: %s",
            request.method,
            request.url.path,
            "Redis" if isinstance(error, RedisError) else "Kafka",
            error,
        )
        return _error(503, "a backing server is unavailable; retry shortly")

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        # FastAPI's own shape, without echoing inputs (which may be megabytes) or contexts
        # holding exception objects that JSON cannot carry.
        errors = error.errors()
        details = [
            {"loc": list(item["loc"]), "msg": item["msg"], "type": item["type"]}
            for item in errors[:MAX_REPORTED_ERRORS]
        ]
        if len(errors) > MAX_REPORTED_ERRORS:
            # A body of a hundred thousand bad fields must not earn a response ten times its
            # size: the first errors say what is wrong, the count says how much.
            details.append(
                {
                    "loc": ["body"],
                    "msg": f"and {len(errors) - MAX_REPORTED_ERRORS} more errors",
                    "type": "too_many_errors",
                }
            )
        return JSONResponse(status_code=422, content={"detail": details})

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return _error(500, "internal error")
