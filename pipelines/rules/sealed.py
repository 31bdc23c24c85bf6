"""A rule set as stored: plain JSON under an HMAC-SHA256 signature of the deployment's key.

The JSON holds the rules as written (name, text, enabled), the version, when it was written and
the id of the key that signed it. Opening one verifies the signature before anything is read,
and the texts are parsed again by the grammar afterwards (`RuleBook`): a stored text is never
trusted, even signed, since the fields a rule may read can change between releases.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime

import orjson

from models.snapshots import sign

FORMAT = 1


class TamperedRulesError(ValueError):
    """Stored bytes that are not a rule set signed with this deployment's key."""


@dataclass(frozen=True)
class RuleSpec:
    """One rule as an administrator wrote it."""

    name: str
    text: str
    enabled: bool = True


@dataclass(frozen=True)
class RuleSetRecord:
    """A version of the rule set, with when and under which key it was written."""

    version: int
    written_at: datetime
    key_id: str
    rules: tuple[RuleSpec, ...]


def key_id(key: bytes) -> str:
    """A name for ``key`` that reveals nothing of it: a record says which key wrote it.

    >>> key_id(b"k" * 32) == key_id(b"k" * 32) != key_id(b"j" * 32)
    True
    """
    return sign(b"fraudstream rule-set key id", key).hex()[:16]


def _body(record: RuleSetRecord) -> bytes:
    return orjson.dumps(
        {
            "format": FORMAT,
            "version": record.version,
            "written_at": record.written_at.isoformat(),
            "key_id": record.key_id,
            "rules": [
                {"name": rule.name, "text": rule.text, "enabled": rule.enabled}
                for rule in record.rules
            ],
        },
        option=orjson.OPT_SORT_KEYS,
    )


def seal(record: RuleSetRecord, key: bytes) -> bytes:
    """``record`` as signed JSON: ``{"signature": ..., "body": {...}}``."""
    body = _body(record)
    return b'{"signature":"' + sign(body, key).hex().encode() + b'","body":' + body + b"}"


def unseal(blob: bytes, key: bytes) -> RuleSetRecord:
    """The record in ``blob``, once its signature has verified under ``key``."""
    try:
        document = orjson.loads(blob)
        signature = bytes.fromhex(document["signature"])
        body = orjson.dumps(document["body"], option=orjson.OPT_SORT_KEYS)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        raise TamperedRulesError("not a signed rule set") from None
    if not hmac.compare_digest(signature, sign(body, key)):
        raise TamperedRulesError(
            "the rule set's signature does not verify: altered, or signed with another key"
        )
    fields = document["body"]
    try:
        return RuleSetRecord(
            version=int(fields["version"]),
            written_at=datetime.fromisoformat(fields["written_at"]),
            key_id=str(fields["key_id"]),
            rules=tuple(
                RuleSpec(str(rule["name"]), str(rule["text"]), bool(rule["enabled"]))
                for rule in fields["rules"]
            ),
        )
    except (KeyError, TypeError, ValueError) as error:
        # Signed by our key yet not our layout: another release's format.
        raise TamperedRulesError(f"a signed rule set of another layout: {error}") from None
