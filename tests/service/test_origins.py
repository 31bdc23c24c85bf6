"""Which host names and web origins the API answers: the rules, and allowed origins' CORS."""

from __future__ import annotations

import pytest

from service.origins import CrossSiteGuard, allowed_hosts
from service.settings import Settings
from tests.service.client import api_client, transaction

LABEL = {
    "transaction_id": "tx-1",
    "is_fraud": False,
    "labelled_at": "2026-12-01T00:00:00Z",
    "source": "analyst",
}


async def _nothing(scope: object, receive: object, send: object) -> None:
    raise AssertionError("not called")


def _scope(method: str, host: str, scheme: str = "http", **headers: str) -> dict[str, object]:
    pairs = [(b"host", host.encode())]
    pairs += [(name.replace("_", "-").encode(), value.encode()) for name, value in headers.items()]
    return {"type": "http", "method": method, "scheme": scheme, "headers": pairs}


@pytest.mark.parametrize(
    ("scope", "refused"),
    [
        (_scope("POST", "localhost:8000", origin="http://localhost:8000"), False),
        (_scope("POST", "LOCALHOST:8000", origin="http://localhost:8000/"), False),
        (_scope("POST", "localhost", origin="http://localhost:80"), False),
        (_scope("POST", "x.org:443", "https", origin="https://x.org"), False),
        (_scope("POST", "localhost:8000", origin="https://localhost:8000"), True),
        (_scope("POST", "localhost:8000", origin="http://localhost:8001"), True),
        (_scope("POST", "localhost:8000", origin="null"), True),
        (_scope("GET", "localhost:8000", origin="http://elsewhere.example"), True),
        (_scope("POST", "localhost:8000", origin="https://ops.example.org"), False),
        (_scope("POST", "localhost:8000", sec_fetch_site="cross-site"), True),
        (_scope("DELETE", "localhost:8000", sec_fetch_site="cross-site"), True),
        (_scope("POST", "localhost:8000", sec_fetch_site="same-site"), False),
        # A link to the dashboard from another site is a navigation, not an action.
        (_scope("GET", "localhost:8000", sec_fetch_site="cross-site"), False),
        (_scope("POST", "localhost:8000"), False),  # not a browser: neither header
    ],
)
def test_what_the_guard_refuses(scope: dict[str, object], refused: bool) -> None:
    guard = CrossSiteGuard(_nothing, allowed_origins=["https://ops.example.org/"])
    assert (guard.refusal(scope) is not None) is refused


def test_allowed_hosts_default_to_localhost_names_and_a_specific_bind_host() -> None:
    local = ["localhost", "127.0.0.1", "[::1]"]
    assert allowed_hosts(Settings(host="127.0.0.1")) == local
    assert allowed_hosts(Settings(host="0.0.0.0")) == local
    assert allowed_hosts(Settings(host="::")) == local
    assert allowed_hosts(Settings(host="::1")) == local
    assert allowed_hosts(Settings(host="Fraud.Internal")) == [*local, "fraud.internal"]
    assert allowed_hosts(Settings(allowed_hosts=["*"])) == ["*"]


@pytest.mark.anyio
async def test_an_allowed_origin_gets_cors_answers_and_others_none() -> None:
    ops = "https://ops.example.org"
    async with api_client(allowed_origins=[ops]) as (client, _):
        preflight = await client.options(
            "/v1/labels",
            headers={
                "origin": ops,
                "access-control-request-method": "POST",
                "access-control-request-headers": "content-type, authorization",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == ops
        sent = await client.post("/v1/score", json=transaction(1), headers={"origin": ops})
        assert sent.status_code == 200
        assert sent.headers["access-control-allow-origin"] == ops
        other = await client.post(
            "/v1/labels", json=LABEL, headers={"origin": "https://elsewhere.example"}
        )
        assert other.status_code == 403
        assert "access-control-allow-origin" not in other.headers
        foreign_host = await client.get("/healthz", headers={"host": "elsewhere.example"})
        assert foreign_host.status_code == 400
