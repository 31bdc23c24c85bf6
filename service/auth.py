"""Who may do what: API keys with roles, sent as ``Authorization: Bearer <key>``.

Keys are configured by their SHA-256 (``FRAUDSTREAM_API_KEYS``, hash -> roles), so the
settings, logs and process environment never hold a usable key. A presented key is hashed and
compared with every configured hash in constant time. No credentials, or a key nobody
configured, is 401 (who are you?); a known key without the role is 403 (not you). With no key
configured the API is open: embedded mode on localhost, said loudly at start-up.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Collection, Mapping
from enum import StrEnum

from fastapi import Request

from service.errors import ServiceError


class Role(StrEnum):
    SCORE = "score"
    """Score transactions: `POST /v1/score`, `/v1/score/batch`, `/v1/transactions`."""
    LABEL = "label"
    """Send labels: `POST /v1/labels`."""
    ADMIN = "admin"
    """Everything, including models, snapshots, promotion, audit and retraining."""


class UnauthorizedError(ServiceError):
    status_code = 401
    headers = {"WWW-Authenticate": "Bearer"}  # noqa: RUF012 - read only


class ForbiddenError(ServiceError):
    status_code = 403


def hash_key(key: str) -> str:
    """The SHA-256 of a key, as ``FRAUDSTREAM_API_KEYS`` holds it.

    >>> hash_key("s3cret")[:16]
    '1ec1c26b50d5d3c5'
    """
    return hashlib.sha256(key.encode()).hexdigest()


class KeyRing:
    """The configured key hashes and their roles."""

    def __init__(self, hashed: Mapping[str, Collection[str]]) -> None:
        self._entries = [
            (bytes.fromhex(digest), frozenset(Role(role) for role in roles))
            for digest, roles in hashed.items()
        ]

    @property
    def open(self) -> bool:
        """No key is configured: every request is allowed."""
        return not self._entries

    def roles_of(self, authorization: str | None) -> frozenset[Role]:
        """The roles of the presented credentials; `UnauthorizedError` if there are none."""
        scheme, _, key = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise UnauthorizedError("send an API key as 'Authorization: Bearer <key>'")
        presented = hashlib.sha256(key.strip().encode()).digest()
        found: frozenset[Role] | None = None
        for digest, roles in self._entries:  # every entry, whatever matches: constant time
            if hmac.compare_digest(digest, presented):
                found = roles
        if found is None:
            raise UnauthorizedError("unknown API key")
        return found

    def check(self, authorization: str | None, role: Role | None) -> None:
        """Allow, or raise 401 (no or unknown key) or 403 (the key lacks ``role``).

        ``role=None`` asks only for a known key, whatever its roles: the read-only routes.
        """
        if self.open:
            return
        roles = self.roles_of(authorization)
        if role is not None and role not in roles and Role.ADMIN not in roles:
            raise ForbiddenError(f"this API key does not have the {role.value!r} role")


def authorize(request: Request, role: Role | None) -> None:
    """Allow the request, or raise 401/403: ``role`` None asks only for a known key.

    A plain call, made by every route before FastAPI solves its dependencies
    (`service.access.GuardedRoute`)."""
    keys: KeyRing = request.app.state.keys
    if not keys.open:
        keys.check(request.headers.get("authorization"), role)


class UnsafeSettingsError(ValueError):
    """Settings a process refuses to start with: it would be open, or have no key to sign with."""


LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


def refuse_unsafe_start(
    *, role: str, host: str | None, has_keys: bool, has_secret: bool, allow_open: bool
) -> None:
    """Refuse to start a process that would be open to the network or could not sign safely.

    The embedded service (`serve`) may run open on localhost; anywhere else it needs API keys
    or an explicit ``FRAUDSTREAM_ALLOW_OPEN``. Without ``FRAUDSTREAM_SECRET_KEY`` it signs
    with its data directory's own key. The distributed roles always need the deployment's
    secret (it signs the models every process loads), and the API always needs keys.

    >>> refuse_unsafe_start(role="serve", host="127.0.0.1", has_keys=False,
    ...                     has_secret=False, allow_open=False)
    >>> refuse_unsafe_start(role="worker", host=None, has_keys=False,
    ...                     has_secret=False, allow_open=False)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    service.auth.UnsafeSettingsError: fraudstream worker needs the deployment's secret: ...
    """
    if role == "serve":
        if not has_keys and host not in LOOPBACK and not allow_open:
            raise UnsafeSettingsError(
                f"fraudstream serve on {host} without API keys would be open to the network: "
                "set FRAUDSTREAM_API_KEYS, or FRAUDSTREAM_ALLOW_OPEN=true to mean it"
            )
        return
    if not has_secret:
        raise UnsafeSettingsError(
            f"fraudstream {role} needs the deployment's secret: set FRAUDSTREAM_SECRET_KEY to a "
            "long random value (at least 32 bytes, e.g. `openssl rand -hex 32`), the same in "
            "every process of the deployment"
        )
    if role == "api" and not has_keys:
        raise UnsafeSettingsError(
            "fraudstream api refuses to start without API keys: set FRAUDSTREAM_API_KEYS "
            '(sha256 of each key -> roles, e.g. {"<sha256>": ["admin"]})'
        )
