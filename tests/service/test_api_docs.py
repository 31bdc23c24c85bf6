"""The API's documentation pages work offline: Swagger UI and ReDoc load their scripts and
styles from the service, never from a CDN.

The pages are checked in a real headless Chromium (Debian's, as the dashboard's browser test
drives it) against a ``fraudstream serve`` process, with every request to another host than
the server's refused, and their markup and assets through the app itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import BrowserContext, Page, Route, expect

from pipelines.bench.server_process import ServerProcess, serve
from service.app import create_app
from service.routers.api_docs import ASSETS
from service.settings import Settings
from tests.service.client import api_client

RENDER_TIMEOUT_MS = 20_000
LOCAL_URL = re.compile(r"""(?:src|href)=["']?(/[^"'>\s]*)""")


def _summaries() -> list[str]:
    """The summary of every operation in the schema."""
    schema = create_app(Settings()).openapi()
    return [
        operation["summary"] for item in schema["paths"].values() for operation in item.values()
    ]


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with serve(settings={"FRAUDSTREAM_LOG_LEVEL": "warning"}) as running:
        yield running


@pytest.fixture
def offline_page(
    browser: BrowserContext, server: ServerProcess
) -> Iterator[tuple[Page, list[str]]]:
    """A page in Debian's headless Chromium that reaches the server and nothing else; with the
    URLs it tried elsewhere."""
    local = urlsplit(server.url).netloc
    refused: list[str] = []

    def only_the_server(route: Route) -> None:
        if urlsplit(route.request.url).netloc == local:
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort("internetdisconnected")

    browser.route("**/*", only_the_server)
    page = browser.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    yield page, refused
    assert problems == []


def test_swagger_ui_renders_every_operation_without_the_internet(
    offline_page: tuple[Page, list[str]], server: ServerProcess
) -> None:
    page, refused = offline_page
    page.goto(f"{server.url}/docs")
    expect(page.locator('.opblock-summary-path[data-path="/v1/score"]')).to_be_visible(
        timeout=RENDER_TIMEOUT_MS
    )
    expect(page.locator(".opblock")).to_have_count(len(_summaries()))
    # Its style is applied too: a POST's method badge in Swagger UI's green.
    method = page.locator('.opblock-post:has([data-path="/v1/score"]) .opblock-summary-method')
    expect(method).to_have_text("POST")
    expect(method).to_have_css("background-color", "rgb(73, 204, 144)")
    assert refused == []


def test_redoc_renders_the_operations_without_the_internet(
    offline_page: tuple[Page, list[str]], server: ServerProcess
) -> None:
    page, refused = offline_page
    page.goto(f"{server.url}/redoc")
    headings = page.locator("h2")
    expect(headings.filter(has_text="Score Batch")).to_be_visible(timeout=RENDER_TIMEOUT_MS)
    # One heading per tag, then one per operation: every operation is drawn.
    drawn = headings.all_inner_texts()
    assert [text for text in drawn if text in _summaries()] == _summaries()
    assert refused == []


@pytest.mark.anyio
@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_a_docs_page_refers_only_to_the_service_itself(page: str) -> None:
    async with api_client() as (client, _):
        answer = await client.get(page)
        assert answer.status_code == 200
        assert "cdn" not in answer.text.lower()
        local = LOCAL_URL.findall(answer.text)
        assert local, answer.text
        for url in local:
            asset = await client.get(url)
            assert asset.status_code == 200, url
            assert asset.headers["content-type"].startswith(ASSETS[url.rsplit("/", 1)[1]])


@pytest.mark.anyio
async def test_only_the_known_assets_are_served() -> None:
    async with api_client() as (client, _):
        assert (await client.get("/docs/assets/swagger-ui.css")).status_code == 200
        for name in ("index.js", "__init__.py", "consts.py"):
            missing = await client.get(f"/docs/assets/{name}")
            assert missing.status_code == 404, name
            assert missing.json()["detail"] == f"no documentation asset {name!r}"
        outside = await client.get("/docs/assets/..%2F__init__.py")
        assert outside.status_code == 404
        assert "import" not in outside.text
