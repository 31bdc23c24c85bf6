"""Live scores: one transaction, or a batch, answered synchronously.

Handlers are ``async`` on purpose: scoring is a few microseconds of river on the event loop,
and one thread keeps the learner and the feature state single-writer.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter

from models.schemas import Transaction
from service.access import Access, GuardedRoute, access
from service.bodies import body_schema, json_body
from service.deps import SettingsDep, ready_runtime
from service.responses import BatchScoreResponse, ScoreResponse, json_response, score_document

router = APIRouter(prefix="/v1/score", tags=["scoring"], route_class=GuardedRoute)


TRANSACTION = TypeAdapter(Transaction)
TRANSACTIONS = TypeAdapter(list[Transaction])
_TRANSACTION_SCHEMA = {"$ref": "#/components/schemas/Transaction"}


@router.post(
    "",
    response_model=ScoreResponse,
    openapi_extra=access(Access.SCORE, **body_schema(_TRANSACTION_SCHEMA)),
    responses={415: {"description": "The body is not JSON"}},
)
async def score(request: Request) -> Response:
    """Score one transaction; it also updates feature state like any transaction."""
    runtime = ready_runtime(request)
    transaction = await json_body(request, TRANSACTION, runtime.input_context())
    started = time.perf_counter()
    [result] = await runtime.score_request([transaction])
    return json_response(score_document(result, (time.perf_counter() - started) * 1_000))


@router.post(
    "/batch",
    response_model=BatchScoreResponse,
    openapi_extra=access(
        Access.SCORE, **body_schema({"type": "array", "items": _TRANSACTION_SCHEMA})
    ),
    responses={415: {"description": "The body is not JSON"}},
)
async def score_batch(request: Request, settings: SettingsDep) -> Response:
    """Score up to ``FRAUDSTREAM_MAX_BATCH`` transactions in order, in one call."""
    runtime = ready_runtime(request)
    transactions = await json_body(request, TRANSACTIONS, runtime.input_context())
    started = time.perf_counter()
    if not 0 < len(transactions) <= settings.max_batch:
        message = f"between 1 and {settings.max_batch} transactions per batch"
        raise RequestValidationError([{"loc": ("body",), "msg": message, "type": "length"}])
    results = await runtime.score_request(transactions)
    latency = (time.perf_counter() - started) * 1_000
    scores = [score_document(result, latency) for result in results]
    return json_response({"scores": scores, "latency_ms": latency})
