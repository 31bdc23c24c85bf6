"""Who may do what: every role against every endpoint, and the refusal to start unsafely."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from typer.testing import CliRunner

from service.cli import app
from tests.service.client import api_client, transaction

KEYS = {"score": "k-score", "label": "k-label", "admin": "k-admin", "both": "k-both"}
ROLES = {"score": ["score"], "label": ["label"], "admin": ["admin"], "both": ["score", "label"]}
LABEL = {
    "transaction_id": "tx-1",
    "is_fraud": False,
    "labelled_at": "2026-12-01T00:00:00Z",
    "source": "analyst",
}

# (method, path, body, the roles that may call it); None: any known key.
MATRIX: list[tuple[str, str, Any, set[str] | None]] = [
    ("POST", "/v1/score", transaction(1), {"score", "admin", "both"}),
    ("POST", "/v1/score/batch", [transaction(2)], {"score", "admin", "both"}),
    ("POST", "/v1/transactions", transaction(3), {"score", "admin", "both"}),
    ("POST", "/v1/labels", LABEL, {"label", "admin", "both"}),
    ("GET", "/v1/models", None, None),
    ("GET", "/v1/models/m000001", None, None),
    ("GET", "/v1/models/events", None, None),
    ("GET", "/v1/models/m000001/artifact", None, {"admin"}),
    ("POST", "/v1/models/snapshots", None, {"admin"}),
    ("POST", "/v1/models/m000001/promote", None, {"admin"}),
    ("POST", "/v1/models/challengers", {"learner": "logistic"}, {"admin"}),
    ("DELETE", "/v1/models/m999999", None, {"admin"}),
    ("GET", "/v1/audit/tx-1", None, {"admin"}),
]
OPEN = ["/healthz", "/readyz", "/metrics"]


@pytest.mark.anyio
async def test_every_role_against_every_endpoint() -> None:
    keys = {hashlib.sha256(key.encode()).hexdigest(): ROLES[name] for name, key in KEYS.items()}
    async with api_client(api_keys=keys) as (client, _):
        for method, path, body, allowed in MATRIX:
            nobody = await client.request(method, path, json=body)
            assert nobody.status_code == 401, (method, path)
            assert nobody.headers.get("www-authenticate") == "Bearer", (method, path)
            stranger = await client.request(
                method, path, json=body, headers={"authorization": "Bearer who-knows"}
            )
            assert stranger.status_code == 401, (method, path)
            for name, key in KEYS.items():
                answer = await client.request(
                    method, path, json=body, headers={"authorization": f"Bearer {key}"}
                )
                if allowed is None or name in allowed:
                    assert answer.status_code not in (401, 403), (method, path, name)
                    assert answer.status_code < 500, (method, path, name, answer.text)
                else:
                    assert answer.status_code == 403, (method, path, name, answer.status_code)
                    assert "role" in answer.json()["detail"]
        for path in OPEN:
            assert (await client.get(path)).status_code == 200, path


@pytest.mark.parametrize(
    ("command", "environment", "says"),
    [
        (["api"], {}, "FRAUDSTREAM_SECRET_KEY"),
        (["api"], {"FRAUDSTREAM_SECRET_KEY": "s" * 32}, "FRAUDSTREAM_API_KEYS"),
        (["worker"], {}, "FRAUDSTREAM_SECRET_KEY"),
        (["learner"], {}, "FRAUDSTREAM_SECRET_KEY"),
        (["serve", "--host", "0.0.0.0"], {}, "FRAUDSTREAM_ALLOW_OPEN"),
    ],
)
def test_outside_localhost_the_service_refuses_to_start_with_defaults(
    command: list[str], environment: dict[str, str], says: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FRAUDSTREAM_KAFKA_BOOTSTRAP", "127.0.0.1:1")
    monkeypatch.setenv("FRAUDSTREAM_REDIS_URL", "redis://127.0.0.1:1/0")
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 2, result.output
    assert says in result.output
    assert "s" * 32 not in result.output  # a secret is never echoed
