"""Another site's page, and a DNS-rebinding name, cannot change a running service.

A laptop user runs ``fraudstream serve`` (open on localhost, no keys) and opens a page of
another origin in Debian's Chromium. The page sends what a hostile page can without the
browser asking the server first: ``fetch(..., {mode: "no-cors"})`` POSTs of ``text/plain``,
"JSON" (the browser drops the content type in that mode), and untyped blobs, to every route
that changes state, with bodies that would have been accepted (a valid signed artefact, a real
label). The server must refuse each (403) and its state must be as it was; the same artefact
then uploaded by the service's own client is accepted, so the refusal was not the payload's.
"""

from __future__ import annotations

import base64
import contextlib
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import BrowserContext, Request, Response

from pipelines.bench.server_process import ServerProcess, free_port, serve
from tests.service.client import transaction

SETTINGS = {"FRAUDSTREAM_LOG_LEVEL": "warning", "FRAUDSTREAM_SNAPSHOT_EVERY": "1d"}
LABEL = {
    "transaction_id": "tx-1",
    "is_fraud": True,
    "labelled_at": "2026-12-01T00:00:00Z",
    "source": "chargeback",
}
ATTACK = """
async ([base, artefact, schema, label, scored]) => {
  const bytes = Uint8Array.from(atob(artefact), (c) => c.charCodeAt(0));
  const json = JSON.stringify(label);
  const sends = [
    [`/v1/models/artifacts?feature_schema=${schema}`, new Blob([bytes], {type: "text/plain"})],
    [`/v1/models/artifacts?feature_schema=${schema}`, new Blob([bytes])],
    [`/v1/models/artifacts?feature_schema=${schema}`, bytes,
     {"content-type": "application/octet-stream"}],
    ["/v1/labels", json],
    ["/v1/labels", json, {"content-type": "application/json"}],
    ["/v1/labels", new Blob([json])],
    ["/v1/models/m000001/promote", undefined],
    ["/v1/models/m000001/promote", "{}"],
    ["/v1/retrain", undefined],
    ["/v1/retrain", "{}", {"content-type": "application/json"}],
    ["/v1/models/snapshots", undefined],
    ["/v1/score", JSON.stringify(scored)],
    ["/v1/transactions", JSON.stringify(scored)],
    ["/v1/rules/rollback/1", undefined],
    ["/v1/rules/rollback/1", "{}", {"content-type": "application/json"}],
  ];
  for (const [path, body, headers] of sends) {
    await fetch(base + path, {method: "POST", mode: "no-cors", body, headers: headers || {}});
  }
  // A CORS request with a JSON body: the browser asks first (OPTIONS), and goes no further.
  const cors = await fetch(base + "/v1/labels", {
    method: "POST", headers: {"content-type": "application/json"}, body: json,
  }).then(() => "sent", (error) => String(error));
  return [sends.length, cors];
}
"""


@contextlib.contextmanager
def other_origin() -> Iterator[str]:
    """A plain page on another local port: another origin, as any web site is."""

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<!doctype html><title>elsewhere</title><p>a page of another site</p>"
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    page_server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Page)
    thread = threading.Thread(target=page_server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{page_server.server_address[1]}"
    finally:
        page_server.shutdown()
        page_server.server_close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    settings = {**SETTINGS, "FRAUDSTREAM_DATA_DIR": str(tmp_path / "data")}
    with serve(settings=settings) as process:
        yield process


def _state(api: httpx.Client) -> dict[str, Any]:
    models = api.get("/v1/models").json()
    return {
        "champion": models["champion_version"],
        "versions": [version["version"] for version in models["versions"]],
        "serving": [model["version"] for model in models["models"]],
        "events": api.get("/v1/models/events").json(),
        "tx-1": _audit(api, "tx-1"),
        "tx-2": _audit(api, "tx-2"),
        "rules": api.get("/v1/rules").json(),
    }


def _audit(api: httpx.Client, transaction_id: str) -> tuple[int, Any]:
    """Whether a transaction was scored, and the label learned for it."""
    audit = api.get(f"/v1/audit/{transaction_id}")
    return audit.status_code, audit.json().get("label")


def test_a_page_of_another_origin_changes_nothing(
    browser: BrowserContext, server: ServerProcess
) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as api:
        assert api.post("/v1/score", json=transaction(1)).status_code == 200
        assert api.post("/v1/models/snapshots").status_code == 201  # m000002 serves
        download = api.get("/v1/models/m000002/artifact")
        artefact, schema = download.content, download.headers["x-fraudstream-feature-schema"]
        rules = {"rules": [{"name": "big", "text": "amount > 900 -> alert"}]}
        assert api.put("/v1/rules", json=rules).status_code == 200
        assert api.put("/v1/rules", json={"rules": []}).status_code == 200
        before = _state(api)
        assert before["champion"] == "m000002"
        assert before["rules"]["version"] == 2
        assert before["tx-1"] == (200, None)  # scored, no label yet
        assert before["tx-2"][0] == 404

        answers: dict[str, list[int]] = {}
        failed: list[str] = []
        page = browser.new_page()
        page.on("response", lambda response: _record(response, server.url, answers))
        page.on("requestfailed", lambda request: _failed(request, server.url, failed))
        with other_origin() as elsewhere:
            page.goto(elsewhere)
            arguments = [
                server.url,
                base64.b64encode(artefact).decode(),
                schema,
                LABEL,
                transaction(2),
            ]
            sent, cors = page.evaluate(ATTACK, arguments)
        page.close()

        # Every no-cors POST reached the server and was refused by it, none half-processed.
        assert sum(len(statuses) for statuses in answers.values()) == sent, (answers, failed)
        assert {status for statuses in answers.values() for status in statuses} == {403}
        assert cors != "sent"  # the preflight was refused, so the POST was never made
        assert _state(api) == before

        # The payload itself was good: sent by the service's own client, it is registered.
        uploaded = api.post(
            "/v1/models/artifacts",
            params={"feature_schema": schema},
            content=artefact,
            headers={"content-type": "application/octet-stream"},
        )
        assert uploaded.status_code == 201, uploaded.text
        assert api.post("/v1/labels", json=LABEL).json()["learned"] == 1
        assert api.post("/v1/rules/rollback/1").json()["version"] == 3


def _record(response: Response, base: str, answers: dict[str, list[int]]) -> None:
    request = response.request
    if request.url.startswith(base) and request.method == "POST":
        answers.setdefault(request.url.removeprefix(base), []).append(response.status)


def _failed(request: Request, base: str, failed: list[str]) -> None:
    if request.url.startswith(base):
        failed.append(f"{request.method} {request.url}: {request.failure}")


def test_a_dns_rebinding_host_name_is_refused(server: ServerProcess) -> None:
    port = server.url.rsplit(":", 1)[1]
    with httpx.Client(base_url=server.url, timeout=30) as api:
        before = _state(api)
        for host in (f"attacker.example:{port}", "attacker.example", f"127.0.0.1.nip.io:{port}"):
            rebound = api.post("/v1/models/snapshots", headers={"host": host})
            assert rebound.status_code == 400, host
            assert api.get("/healthz", headers={"host": host}).status_code == 400
        assert _state(api) == before
        for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "LOCALHOST"):
            assert api.get("/healthz", headers={"host": host}).status_code == 200, host


def test_origins_the_service_does_not_know_are_refused_and_its_own_served(
    server: ServerProcess,
) -> None:
    port = server.url.rsplit(":", 1)[1]
    body = json.dumps(LABEL).encode()
    headers = {"content-type": "application/json"}
    with httpx.Client(base_url=server.url, timeout=30) as api:
        for origin in ("http://127.0.0.1:1", "http://localhost", "null", "https://x.example"):
            refused = api.post("/v1/labels", content=body, headers={**headers, "origin": origin})
            assert refused.status_code == 403, origin
            assert "FRAUDSTREAM_ALLOWED_ORIGINS" in refused.json()["detail"]
        cross_site = api.post(
            "/v1/labels", content=body, headers={**headers, "sec-fetch-site": "cross-site"}
        )
        assert cross_site.status_code == 403
        assert api.get("/v1/audit/tx-1").status_code == 404  # nothing was learned or scored
        own = api.post(
            "/v1/score",
            json=transaction(1),
            headers={"origin": f"http://127.0.0.1:{port}", "sec-fetch-site": "same-origin"},
        )
        assert own.status_code == 200
