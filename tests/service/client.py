"""An ASGI client for the app, with its lifespan running, for the API tests."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from service.app import create_app
from service.settings import Settings


@asynccontextmanager
async def api_client(**settings: Any) -> AsyncIterator[tuple[httpx.AsyncClient, FastAPI]]:
    """A client talking to a freshly built app, returned once the app is ready."""
    with tempfile.TemporaryDirectory(prefix="fraudstream-test-") as data_dir:
        settings.setdefault("data_dir", Path(data_dir))
        app = create_app(Settings(**settings))
        async with _ready(app) as client:
            yield client, app


@asynccontextmanager
async def _ready(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            for _ in range(600):
                if (await client.get("/readyz")).status_code == 200:
                    break
                await asyncio.sleep(0.05)
            yield client


def transaction(index: int, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "transaction_id": f"tx-{index}",
        "timestamp": f"2026-11-{1 + index % 28:02d}T12:00:00Z",
        "card_id": f"card-{index % 7}",
        "terminal_id": f"term-{index % 5}",
        "amount": 20.0 + index,
        "currency": "EUR",
    }
    body.update(fields)
    return body
