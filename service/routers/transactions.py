"""Transactions accepted for asynchronous scoring: the path the Kafka topic also feeds."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, status

from models.schemas import Transaction
from service.access import Access, GuardedRoute, access
from service.bodies import one_or_many
from service.deps import ReadyRuntimeDep, SettingsDep
from service.responses import Accepted

router = APIRouter(prefix="/v1/transactions", tags=["transactions"], route_class=GuardedRoute)


@router.post("", status_code=status.HTTP_202_ACCEPTED, openapi_extra=access(Access.SCORE))
async def accept(
    body: Annotated[Any, Body(description="A transaction, or an array of them")],
    runtime: ReadyRuntimeDep,
    settings: SettingsDep,
) -> Accepted:
    """Queue transactions for scoring; their alerts reach `/v1/alerts` and the stream."""
    transactions = one_or_many(Transaction, body, settings.max_batch, runtime.input_context())
    await runtime.accept(transactions)
    return Accepted(accepted=len(transactions), backlog=runtime.backlog)
