"""Every route's declared access rule and body type, checked before its handler runs.

A route declares who may call it with ``openapi_extra=access(Access.ADMIN)`` (the rule is also
published in the OpenAPI schema as ``x-fraudstream-access``); `GuardedRoute`, the route class
of every router, refuses to build a route without one, so none is open by omission. Before the
handler (and before FastAPI solves its dependencies) it checks the key (401/403) and, for a
state-changing method, that the body has the media type the route documents (415): a page on
another site can send ``text/plain``, a form or an untyped blob without asking first, but never
``application/json`` or ``application/octet-stream``.

The framework's own routes (the API docs) and the static assets are not API routes; their
rules are declared in `FRAMEWORK_RULES`.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from enum import StrEnum
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from service.auth import Role, authorize
from service.bodies import JSON_MEDIA_TYPE, require_media_type

ACCESS_KEY = "x-fraudstream-access"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Access(StrEnum):
    """Who may call a route when API keys are configured (with none, everyone may)."""

    PUBLIC = "public"
    """Nobody needs a key: liveness, readiness, the dashboard page and its static assets."""
    ANY_KEY = "any-key"
    """Any known key, whatever its roles: the read-only routes."""
    SCORE = "score"
    LABEL = "label"
    ADMIN = "admin"

    @property
    def role(self) -> Role | None:
        """The role a key needs (an admin's key has every role); None: any known key."""
        return None if self in (Access.PUBLIC, Access.ANY_KEY) else Role(self.value)


FRAMEWORK_RULES: Mapping[str, Access] = {
    # The API's shape is the open-source project's, and holds no data; a browser cannot send a
    # bearer key when it opens a page (`service.routers.api_docs` serves the pages).
    "/openapi.json": Access.PUBLIC,
    # The dashboard's script, style sheet and icon: the same files as in the repository.
    "/static": Access.PUBLIC,
}
"""Rules of the routes that are not `GuardedRoute`s, by path; all public, so nothing to check."""


class MissingAccessRuleError(TypeError):
    """A route was defined without ``openapi_extra=access(...)``."""


def access(rule: Access, **openapi: Any) -> dict[str, Any]:
    """The ``openapi_extra`` of a route with ``rule`` (and any other OpenAPI it declares)."""
    return {**openapi, ACCESS_KEY: rule.value}


def access_of(route: BaseRoute) -> Access | None:
    """The declared rule of any route of the app, or None if it has none."""
    if isinstance(route, APIRoute):
        declared = (route.openapi_extra or {}).get(ACCESS_KEY)
        return None if declared is None else Access(declared)
    path = getattr(route, "path", None)
    return None if path is None else FRAMEWORK_RULES.get(path)


def documented_body(route: APIRoute) -> tuple[str | None, bool]:
    """The media type of the body ``route`` documents, and whether it is required.

    A body read by the handler itself is documented in ``openapi_extra``; one FastAPI reads is
    JSON; a route with neither takes no body.
    """
    content = (route.openapi_extra or {}).get("requestBody", {})
    if content:
        media_type = next(iter(content["content"]))
        return media_type, bool(content.get("required", False))
    if route.body_field is not None:
        return JSON_MEDIA_TYPE, route.body_field.field_info.is_required()
    return None, False


Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class GuardedRoute(APIRoute):
    """An API route that checks its declared access rule and body type before its handler."""

    def get_route_handler(self) -> Handler:
        rule = access_of(self)
        methods = self.methods or set()
        if rule is None:
            raise MissingAccessRuleError(
                f"{sorted(methods)} {self.path} declares no access rule: "
                "add openapi_extra=access(Access....)"
            )
        handler = super().get_route_handler()
        role = rule.role
        public = rule is Access.PUBLIC
        media_type, required = documented_body(self)
        checks_body = not methods <= SAFE_METHODS

        async def guarded(request: Request) -> Response:
            if not public:
                authorize(request, role)
            if checks_body:
                require_media_type(request, media_type, required=required)
            return await handler(request)

        return guarded
