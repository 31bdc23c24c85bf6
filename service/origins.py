"""Where requests may come from: the host names the API answers to, and which web pages.

A page on any site can make the browser of someone who runs the service send it requests:
with ``mode: "no-cors"`` it cannot read the answer, but a ``POST`` still acts. Two checks,
ahead of routing, stop that:

- The ``Host`` header must be one of ``FRAUDSTREAM_ALLOWED_HOSTS`` (Starlette's
  `TrustedHostMiddleware`, 400 otherwise). A DNS-rebinding page (its own name, resolved to
  127.0.0.1) is same-origin for the browser, but says its own name in ``Host``.
- A request whose ``Origin`` is neither the service's own nor in
  ``FRAUDSTREAM_ALLOWED_ORIGINS`` is refused (403); so is a state-changing one the browser marks
  ``Sec-Fetch-Site: cross-site``. Browsers send ``Origin`` with every ``POST`` and ``DELETE``,
  and neither header can be set by a page's script. Clients that are not browsers send neither.

The routes themselves refuse a body without their documented media type
(`service.access.GuardedRoute`), which a page cannot send cross-site without the browser
asking the server first.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Collection

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from service.settings import Settings

LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]")
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::", "[::]"})
logger = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_DEFAULT_PORTS = {"http": ":80", "https": ":443"}


def allowed_hosts(settings: Settings) -> list[str]:
    """The ``Host`` names to answer: the setting, or the localhost names and the bind host.

    >>> allowed_hosts(Settings(host="10.0.0.5", allowed_hosts=None))
    ['localhost', '127.0.0.1', '[::1]', '10.0.0.5']
    >>> allowed_hosts(Settings(host="0.0.0.0", allowed_hosts=["api.example.org", "fd00::1"]))
    ['api.example.org', '[fd00::1]']
    """
    if settings.allowed_hosts is not None:
        return [_bracketed(host) for host in settings.allowed_hosts]
    hosts = list(LOCAL_HOSTS)
    bound = _bracketed(settings.host)
    if settings.host not in WILDCARD_HOSTS and bound not in hosts:
        hosts.append(bound)
    return hosts


def _bracketed(host: str) -> str:
    # Starlette compares the host as the header writes it: an IPv6 literal in brackets.
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host.lower()
    return f"[{address}]" if address.version == 6 else str(address)


def _normal(origin: str) -> str:
    origin = origin.strip().lower().rstrip("/")
    scheme = origin.partition("://")[0]
    port = _DEFAULT_PORTS.get(scheme)
    if port is not None and origin.endswith(port):
        return origin[: -len(port)]
    return origin


class CrossSiteGuard:
    """Refuse (403) what a page of another origin sends, unless its origin is allowed."""

    def __init__(self, app: ASGIApp, allowed_origins: Collection[str] = ()) -> None:
        self.app = app
        self.allowed = frozenset(_normal(origin) for origin in allowed_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = self.refusal(scope)
            if refusal is not None:
                await _refuse(refusal, send)
                return
        await self.app(scope, receive, send)

    def refusal(self, scope: Scope) -> str | None:
        """Why the request is refused, or None."""
        origin = host = site = None
        for name, value in scope["headers"]:
            if name == b"origin":
                origin = value.decode("latin-1")
            elif name == b"host":
                host = value.decode("latin-1")
            elif name == b"sec-fetch-site":
                site = value
        if origin is not None:
            normal = _normal(origin)
            if normal in self.allowed or normal == _normal(f"{scope['scheme']}://{host}"):
                return None
            return (
                f"requests from pages of {origin[:100]!r} are refused: the service answers its "
                "own pages and those of FRAUDSTREAM_ALLOWED_ORIGINS"
            )
        if site == b"cross-site" and scope["method"] not in SAFE_METHODS:
            return "cross-site requests are refused (Sec-Fetch-Site: cross-site)"
        return None


async def _refuse(detail: str, send: Send) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 403,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def install_origin_checks(app: FastAPI, settings: Settings) -> None:
    """Host names, then origins; with allowed origins, CORS lets their pages read answers."""
    if settings.allowed_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.allowed_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["authorization", "content-type"],
        )
    app.add_middleware(CrossSiteGuard, allowed_origins=settings.allowed_origins)
    hosts = allowed_hosts(settings)
    if settings.allowed_hosts is None and settings.host in WILDCARD_HOSTS:
        logger.warning(
            "listening on every interface, but answering only requests addressed to %s: set "
            "FRAUDSTREAM_ALLOWED_HOSTS to the names clients use",
            ", ".join(hosts),
        )
    # Added last: the outermost, so a foreign host name is refused before anything else.
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=hosts, www_redirect=False)
