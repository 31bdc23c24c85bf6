"""Backtest before enabling: a draft rule or alert threshold over the offline store's matured
days, beside today's model and rules at the threshold in force (see `service.backtesting`).

Administrators only, as rules are managed: a draft can single out one card or terminal and so
read back its stored labels, and each backtest reads the feature columns of every matured row
of the window. A rule that does not parse, or reads a field the store does not keep, is a 422
naming the ``rule`` field. The store is read off the event loop.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Body
from fastapi.exceptions import RequestValidationError

from models.rules.grammar import RuleSyntaxError
from pipelines.rules.book import rules_at_start
from service.access import Access, GuardedRoute, access
from service.backtesting import BacktestRequest, BacktestResponse, run_backtest
from service.deps import ReadyRuntimeDep, SettingsDep

router = APIRouter(tags=["rules"], route_class=GuardedRoute)


@router.post("/v1/rules/backtest", openapi_extra=access(Access.ADMIN))
async def backtest(
    runtime: ReadyRuntimeDep, settings: SettingsDep, request: Annotated[BacktestRequest, Body()]
) -> BacktestResponse:
    """Alerts a day, precision and recall (per transaction and per card-day), the frauds the
    draft adds or loses and the legitimate cards it bothers or spares, over the last matured
    days, with the draft and by today's model and rules, overall and day by day."""
    try:
        draft = request.draft(settings)
    except RuleSyntaxError as error:
        raise RequestValidationError(
            [{"loc": ("body", "rule"), "msg": str(error), "type": "rule_syntax"}]
        ) from None
    # The live threshold in force: it follows the scores when an alert budget is set.
    in_force = runtime.alert_threshold()
    rules = runtime.rules
    # A stored set that does not verify applies nowhere (GET /v1/rules says why): none here.
    in_force_rules = () if rules is None else rules_at_start(rules).rules
    found = await asyncio.to_thread(
        run_backtest, settings, draft, request.days, in_force, in_force_rules
    )
    return BacktestResponse.of(request, draft, in_force, found)
