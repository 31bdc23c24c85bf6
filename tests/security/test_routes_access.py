"""Every route of the app has a declared access rule, and a running server keeps it.

The routes are read off the app itself (`fastapi.routing.iter_route_contexts`), not listed by
hand: a route added tomorrow without a rule fails here, and one with a rule is checked against
no key, a key nobody configured and each role's key on a real ``fraudstream serve``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import BaseRoute, Mount

from pipelines.bench.server_process import ServerProcess, serve
from service.access import Access, GuardedRoute, access_of, documented_body
from service.app import create_app
from service.auth import hash_key
from service.settings import Settings

KEYS = {"score": "k-score", "label": "k-label", "admin": "k-admin"}
"""One key per role: the name is the role."""
ALLOWED = {
    Access.PUBLIC: {"score", "label", "admin"},
    Access.ANY_KEY: {"score", "label", "admin"},
    Access.SCORE: {"score", "admin"},
    Access.LABEL: {"label", "admin"},
    Access.ADMIN: {"admin"},
}
PUBLIC_PATHS = {"/healthz", "/readyz", "/", "/static", "/openapi.json", "/docs"}
PUBLIC_PATHS |= {"/redoc", "/docs/assets/{name}"}
"""What may be public: probes, the dashboard page and its assets, the API's documentation."""
SERVER_SETTINGS = {
    "FRAUDSTREAM_API_KEYS": json.dumps({hash_key(key): [role] for role, key in KEYS.items()}),
    "FRAUDSTREAM_BENCH_ENDPOINTS": "true",  # every route the app can have
    "FRAUDSTREAM_LOG_LEVEL": "warning",
}


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    rule: Access
    media_type: str | None

    def request(self, client: httpx.Client, key: str | None, media_type: str | None) -> int:
        headers = {} if key is None else {"authorization": f"Bearer {key}"}
        content = None
        if media_type is not None:
            headers["content-type"] = media_type
            content = b"{}" if media_type == "application/json" else b"not an artefact"
        with client.stream(self.method, self.path, headers=headers, content=content) as answer:
            return answer.status_code  # an event stream is left unread: its status is enough


def _app_routes() -> list[tuple[str, str, BaseRoute]]:
    app = create_app(Settings(bench_endpoints=True, data_dir=Path("unused")))
    found: list[tuple[str, str, BaseRoute]] = []
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        methods = sorted(getattr(route, "methods", None) or {"GET"})
        for method in methods:
            if method != "HEAD":
                found.append((method, context.path or "", route))
    return found


def _calls() -> list[Call]:
    calls = []
    for method, path, route in _app_routes():
        rule = access_of(route)
        assert rule is not None, f"{method} {path} has no declared access rule"
        media_type = documented_body(route)[0] if isinstance(route, APIRoute) else None
        asked = f"{path}/dashboard.js" if isinstance(route, Mount) else path
        # Path parameters get a value of their shape; a 404 or 409 behind the check is fine.
        calls.append(Call(method, re.sub(r"\{[^}]+\}", "m000001", asked), rule, media_type))
    return calls


def test_every_route_of_the_app_declares_a_rule_and_only_probes_and_pages_are_public() -> None:
    routes = _app_routes()
    assert len(routes) >= 25  # the list really is the app's
    for method, path, route in routes:
        rule = access_of(route)
        assert rule is not None, f"{method} {path} has no declared access rule"
        if isinstance(route, APIRoute):
            assert isinstance(route, GuardedRoute), f"{method} {path} does not check its rule"
        if rule is Access.PUBLIC:
            assert path in PUBLIC_PATHS, f"{method} {path} is public"
    app = create_app(Settings(data_dir=Path("unused")))
    for path, operations in app.openapi()["paths"].items():
        for method, operation in operations.items():
            assert operation["x-fraudstream-access"] in set(Access), (method, path)


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with serve(settings=SERVER_SETTINGS) as process:
        yield process


@pytest.mark.parametrize("call", _calls(), ids=lambda call: f"{call.method} {call.path}")
def test_each_route_against_no_key_a_wrong_key_and_each_role(
    server: ServerProcess, call: Call
) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        nobody = call.request(client, None, call.media_type)
        stranger = call.request(client, "a-key-nobody-configured", call.media_type)
        if call.rule is Access.PUBLIC:
            assert nobody not in (401, 403)
            assert stranger not in (401, 403)
        else:
            assert nobody == 401
            assert stranger == 401
        for role, key in KEYS.items():
            status = call.request(client, key, call.media_type)
            if role in ALLOWED[call.rule]:
                assert status not in (401, 403), role
                assert status < 500, role
            else:
                assert status == 403, role


SIMPLE_MEDIA_TYPES = ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data")
"""What a page of another site can send without the browser asking the server first."""
STATE_CHANGING = [call for call in _calls() if call.method not in ("GET", "HEAD", "OPTIONS")]


@pytest.mark.parametrize("call", STATE_CHANGING, ids=lambda call: f"{call.method} {call.path}")
def test_each_state_changing_route_refuses_another_content_type_naming_its_own(
    server: ServerProcess, call: Call
) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for media_type in (
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        ):
            answer = client.request(
                call.method,
                call.path,
                content=b'{"a": 1}',
                headers={"content-type": media_type, "authorization": f"Bearer {KEYS['admin']}"},
            )
            assert answer.status_code == 415, media_type
            assert (call.media_type or "application/json") in answer.json()["detail"]
        untyped = client.request(
            call.method,
            call.path,
            content=b"\x80\x04 an untyped blob",
            headers={"authorization": f"Bearer {KEYS['admin']}"},
        )
        assert untyped.status_code == 415
