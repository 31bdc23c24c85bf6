"""Rules beside the model: the set in force, its versions, and (admin) writing and rolling back.

A write sends the whole set and makes one new version: an administrator's change to several
rules is applied at once or not at all, and a rollback is one step back to any version. Every
text is parsed by the rules' grammar before anything is stored; a rule that is not one is a
422 naming its field (``body.rules.2.text``) and the grammar's message.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from models.rules.grammar import MAX_RULE_CHARS, RuleSyntaxError
from models.rules.ruleset import MAX_RULES, RULE_NAME, Rule
from pipelines.rules.book import (
    InForce,
    InvalidRuleError,
    RuleBook,
    UnknownVersionError,
    WriteConflictError,
)
from pipelines.rules.sealed import RuleSetRecord, RuleSpec, TamperedRulesError
from pipelines.runtime.protocol import Runtime
from service.access import Access, GuardedRoute, access
from service.deps import ReadyRuntimeDep
from service.errors import NotFoundError, ServiceError

router = APIRouter(prefix="/v1/rules", tags=["rules"], route_class=GuardedRoute)
reader = access(Access.ANY_KEY)
admin = access(Access.ADMIN)


class RulesUnavailableError(ServiceError):
    status_code = 501


class RulesConflictError(ServiceError):
    status_code = 409


class RuleBody(BaseModel):
    """One rule as written: e.g. ``amount > 1000 and card_terminal_first_use == 1 -> review``."""

    model_config = ConfigDict(strict=True, extra="forbid")

    name: Annotated[str, StringConstraints(pattern=RULE_NAME.pattern)]
    text: Annotated[str, StringConstraints(min_length=1, max_length=MAX_RULE_CHARS)]
    enabled: bool = True


class RuleSetBody(BaseModel):
    """The whole rule set, in the order ties are broken in."""

    model_config = ConfigDict(strict=True, extra="forbid")

    rules: Annotated[list[RuleBody], Field(max_length=MAX_RULES)]


class RuleResponse(BaseModel):
    name: str
    text: str
    enabled: bool
    action: str | None = Field(
        description="alert, review or allow; null for a kept version whose text no longer "
        "parses (a field it reads is gone)"
    )


class RuleSetResponse(BaseModel):
    version: int = Field(description="0: no rule set was ever written")
    written_at: datetime | None
    key_id: str | None = Field(description="Which signing key wrote this version")
    rules: list[RuleResponse]


def book_of(runtime: Runtime) -> RuleBook:
    if runtime.rules is None:
        raise RulesUnavailableError("this process keeps no rules")
    return runtime.rules


def _rule(spec: RuleSpec, book: RuleBook) -> RuleResponse:
    try:
        action: str | None = Rule.parse(spec.name, spec.text, book.fields).action.value
    except RuleSyntaxError:
        action = None
    return RuleResponse(name=spec.name, text=spec.text, enabled=spec.enabled, action=action)


def _record(record: RuleSetRecord, book: RuleBook) -> RuleSetResponse:
    return RuleSetResponse(
        version=record.version,
        written_at=record.written_at,
        key_id=record.key_id,
        rules=[_rule(spec, book) for spec in record.rules],
    )


def _in_force(in_force: InForce, book: RuleBook) -> RuleSetResponse:
    if in_force.record is None:
        return RuleSetResponse(version=0, written_at=None, key_id=None, rules=[])
    return _record(in_force.record, book)


def _invalid(error: InvalidRuleError) -> RequestValidationError:
    location: tuple[str | int, ...] = ("body", "rules")
    if error.index is not None:
        location += (error.index, error.field or "text")
    return RequestValidationError(
        [{"loc": location, "msg": str(error), "type": "rule_syntax", "input": None}]
    )


@router.get("", openapi_extra=reader)
async def rules_in_force(runtime: ReadyRuntimeDep) -> RuleSetResponse:
    """The rule set in force and its version."""
    book = book_of(runtime)
    try:
        in_force = await asyncio.to_thread(book.current)
    except (TamperedRulesError, InvalidRuleError) as error:
        raise RulesConflictError(
            f"the stored rule set was refused ({error}); no rule applies until a new "
            "version is written"
        ) from None
    return _in_force(in_force, book)


@router.get("/versions", openapi_extra=reader)
async def rule_versions(runtime: ReadyRuntimeDep) -> list[RuleSetResponse]:
    """The versions kept, newest first (``FRAUDSTREAM_RULES_HISTORY`` of them)."""
    book = book_of(runtime)
    records = await asyncio.to_thread(book.versions)
    return [_record(record, book) for record in records]


@router.put("", openapi_extra=admin)
async def write_rules(body: RuleSetBody, runtime: ReadyRuntimeDep) -> RuleSetResponse:
    """Put the whole set in force as a new version, applied by every scorer within about a
    second."""
    book = book_of(runtime)
    specs = [RuleSpec(rule.name, rule.text, rule.enabled) for rule in body.rules]
    try:
        in_force = await asyncio.to_thread(book.write, specs)
    except InvalidRuleError as error:
        raise _invalid(error) from None
    except WriteConflictError as error:
        raise RulesConflictError(str(error)) from None
    return _in_force(in_force, book)


@router.post("/rollback/{version}", openapi_extra=admin)
async def roll_back(
    version: Annotated[int, Path(ge=1, description="A kept version, e.g. 3")],
    runtime: ReadyRuntimeDep,
) -> RuleSetResponse:
    """Put the rules of an earlier version in force again, as a new version."""
    book = book_of(runtime)
    try:
        in_force = await asyncio.to_thread(book.rollback, version)
    except UnknownVersionError:
        raise NotFoundError(f"no rule set version {version} is kept") from None
    except InvalidRuleError as error:
        raise RulesConflictError(f"version {version} no longer parses: {error}") from None
    except WriteConflictError as error:
        raise RulesConflictError(str(error)) from None
    return _in_force(in_force, book)
