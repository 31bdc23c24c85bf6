"""Bad input sweep: every malformed body gets a 4xx naming the field, never a 500."""

from __future__ import annotations

from typing import Any

import pytest

from tests.service.client import api_client, transaction

pytestmark = pytest.mark.anyio

VALID = transaction(1)

# (what is wrong, body, the field the error must name)
BAD_TRANSACTIONS: list[tuple[str, Any, str]] = [
    ("amount as a string", {**VALID, "amount": "12"}, "amount"),
    ("negative amount", {**VALID, "amount": -5}, "amount"),
    ("amount just below zero", {**VALID, "amount": -0.01}, "amount"),
    ("huge amount", {**VALID, "amount": 1e12}, "amount"),
    ("naive timestamp", {**VALID, "timestamp": "2026-11-29T12:00:00"}, "timestamp"),
    ("unparseable timestamp", {**VALID, "timestamp": "yesterday"}, "timestamp"),
    ("numeric timestamp", {**VALID, "timestamp": 1700000000}, "timestamp"),
    ("empty id", {**VALID, "transaction_id": ""}, "transaction_id"),
    ("oversize id", {**VALID, "card_id": "c" * 129}, "card_id"),
    ("id with spaces", {**VALID, "terminal_id": "a b"}, "terminal_id"),
    ("lower-case currency", {**VALID, "currency": "eur"}, "currency"),
    ("unknown field", {**VALID, "surprise": 1}, "surprise"),
    ("missing field", {k: v for k, v in VALID.items() if k != "card_id"}, "card_id"),
    ("id as a number", {**VALID, "transaction_id": 12}, "transaction_id"),
    ("bad country", {**VALID, "country": "France"}, "country"),
    ("not an object", ["not", "a", "transaction"], "body"),
]


@pytest.mark.parametrize(("case", "body", "field"), BAD_TRANSACTIONS)
async def test_bad_transaction_is_refused_naming_the_field(
    case: str, body: Any, field: str
) -> None:
    async with api_client() as (client, _):
        for path in ("/v1/score", "/v1/transactions"):
            response = await client.post(path, json=body)
            assert response.status_code == 422, (case, path, response.text)
            locations = [error["loc"] for error in response.json()["detail"]]
            assert any(field in location for location in locations), (case, path, locations)
            assert "Traceback" not in response.text


async def test_a_zero_amount_is_scored() -> None:
    # Zero-amount authorisations are real (card checks) and a card-testing signal.
    async with api_client() as (client, _):
        response = await client.post("/v1/score", json={**VALID, "amount": 0})
        assert response.status_code == 200, response.text
        assert 0.0 <= response.json()["score"] <= 1.0


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
async def test_nan_and_infinity_are_refused(literal: bytes) -> None:
    raw = (
        b'{"transaction_id": "t", "timestamp": "2026-11-29T12:00:00Z", "card_id": "c", '
        b'"terminal_id": "p", "currency": "EUR", "amount": ' + literal + b"}"
    )
    async with api_client() as (client, _):
        response = await client.post(
            "/v1/score", content=raw, headers={"content-type": "application/json"}
        )
        assert response.status_code == 422
        assert any("amount" in error["loc"] for error in response.json()["detail"])


async def test_batch_errors_name_the_item_and_field() -> None:
    async with api_client() as (client, _):
        body = [transaction(0), {**transaction(1), "amount": -1}]
        response = await client.post("/v1/score/batch", json=body)
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["body", 1, "amount"]
        queued = await client.post("/v1/transactions", json=body)
        assert queued.json()["detail"][0]["loc"] == ["body", 1, "amount"]


async def test_bad_label_is_refused_naming_the_field() -> None:
    label = {
        "transaction_id": "t",
        "is_fraud": "yes",
        "labelled_at": "2026-11-29T12:00:00Z",
        "source": "gossip",
    }
    async with api_client() as (client, _):
        response = await client.post("/v1/labels", json=label)
        assert response.status_code == 422
        fields = {error["loc"][-1] for error in response.json()["detail"]}
        assert fields == {"is_fraud", "source"}


async def test_malformed_json_and_wrong_content_type() -> None:
    async with api_client() as (client, _):
        broken = await client.post(
            "/v1/score", content=b'{"amount": ', headers={"content-type": "application/json"}
        )
        assert broken.status_code == 422
        text = await client.post(
            "/v1/score", content=b"amount=3", headers={"content-type": "text/plain"}
        )
        assert text.status_code == 415
        assert "content-type" in text.json()["detail"]


async def test_oversize_body_gets_413_and_empty_batch_422() -> None:
    async with api_client(max_body_bytes=2_000) as (client, _):
        big = [transaction(i) for i in range(100)]
        response = await client.post("/v1/score/batch", json=big)
        assert response.status_code == 413
        empty = await client.post("/v1/transactions", json=[])
        assert empty.status_code == 422


async def test_bad_query_parameters_get_422() -> None:
    async with api_client() as (client, _):
        for params in ({"limit": 0}, {"limit": "many"}, {"since": "not a time"}):
            response = await client.get("/v1/alerts", params=params)
            assert response.status_code == 422, params


async def test_deep_wide_or_huge_json_is_refused_briefly() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    wide = b"{" + b",".join(b'"field%d": 0' % i for i in range(50_000)) + b"}"
    huge_number = (
        b'{"transaction_id": "t", "timestamp": "2026-11-29T12:00:00Z", "card_id": "c", '
        b'"terminal_id": "p", "currency": "EUR", "amount": 1e400}'
    )
    json = {"content-type": "application/json"}
    async with api_client() as (client, _):
        for path in ("/v1/score", "/v1/score/batch", "/v1/transactions", "/v1/labels"):
            for body in (deep, wide):
                response = await client.post(path, content=body, headers=json)
                assert response.status_code in (400, 422), (path, response.status_code)
                # The answer stays small whatever the body: the first errors and a count.
                assert len(response.content) < 10_000, (path, len(response.content))
        response = await client.post("/v1/score", content=huge_number, headers=json)
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["body", "amount"]
