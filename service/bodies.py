"""Request bodies: JSON only, validated against the contract, errors naming the field.

The scoring endpoints read their body themselves and validate the raw bytes in one pass with
pydantic's own JSON parser, instead of FastAPI's parse-then-validate: it is the hot path, and
the difference is a large share of a request's cost. The others take FastAPI's ``Body``.
"""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.datastructures import Headers

from service.errors import UnsupportedMediaTypeError

Model = TypeVar("Model", bound=BaseModel)
Value = TypeVar("Value")

JSON_MEDIA_TYPE = "application/json"


def require_media_type(request: Request, expected: str | None, *, required: bool) -> None:
    """The body has the media type its route documents, else 415 naming it.

    A route without a body (``expected`` None) accepts none, or a JSON one it ignores; an
    optional body may be left out, but a body without a content type is never guessed at.
    """
    headers = request.headers
    media_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type == (expected or JSON_MEDIA_TYPE):
        return
    if not media_type and not required and _no_body(headers):
        return
    wanted = expected or f"{JSON_MEDIA_TYPE}, or none with no body (this route reads none)"
    raise UnsupportedMediaTypeError(f"content-type must be {wanted}, not {media_type or 'missing'}")


def _no_body(headers: Headers) -> bool:
    return headers.get("content-length", "0") == "0" and "transfer-encoding" not in headers


async def json_body(
    request: Request, adapter: TypeAdapter[Value], context: dict[str, Any] | None = None
) -> Value:
    """The request's JSON body validated by ``adapter`` (with ``context``, e.g. the event times
    accepted now); a 422 names the field at fault.

    Its content type was checked by the route (`service.access.GuardedRoute`).
    """
    try:
        return adapter.validate_json(await request.body(), context=context)
    except ValidationError as error:
        raise RequestValidationError(_located(error, ("body",))) from None


def body_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI for a JSON body read by `json_body` (FastAPI cannot see it in the signature)."""
    return {"requestBody": {"required": True, "content": {JSON_MEDIA_TYPE: {"schema": schema}}}}


def one_or_many(
    model: type[Model], body: Any, limit: int, context: dict[str, Any] | None = None
) -> list[Model]:
    """Validate a JSON object or an array of objects (with ``context``, as `json_body`); errors
    name the body path at fault.

    A union type would report every field twice (once per branch), so the shape is chosen
    from the JSON first, and each item of an array is reported under its index.
    """
    if not isinstance(body, list):
        try:
            return [model.model_validate(body, context=context)]
        except ValidationError as error:
            raise RequestValidationError(_located(error, ("body",))) from None
    if not body:
        raise RequestValidationError([_problem("at least one item is needed", "too_short")])
    if len(body) > limit:
        message = f"at most {limit} items per request, got {len(body)}"
        raise RequestValidationError([_problem(message, "too_long")])
    items: list[Model] = []
    problems: list[dict[str, Any]] = []
    for index, item in enumerate(body):
        try:
            items.append(model.model_validate(item, context=context))
        except ValidationError as error:
            problems.extend(_located(error, ("body", index)))
    if problems:
        raise RequestValidationError(problems)
    return items


def _problem(message: str, kind: str) -> dict[str, Any]:
    return {"loc": ("body",), "msg": message, "type": kind}


def _located(error: ValidationError, prefix: tuple[str | int, ...]) -> list[dict[str, Any]]:
    return [
        {"loc": (*prefix, *item["loc"]), "msg": item["msg"], "type": item["type"]}
        for item in error.errors()
    ]
