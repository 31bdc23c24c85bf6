"""Request bodies that are one object or a bounded list of them."""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

Model = TypeVar("Model", bound=BaseModel)


def one_or_many(model: type[Model], body: Any, limit: int) -> list[Model]:
    """Validate a JSON object or an array of objects; errors name the body path at fault.

    A union type would report every field twice (once per branch), so the shape is chosen
    from the JSON first, and each item of an array is reported under its index.
    """
    if not isinstance(body, list):
        try:
            return [model.model_validate(body)]
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
            items.append(model.model_validate(item))
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
