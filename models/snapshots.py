"""A learner as signed bytes: how a model travels from the learner to the scorers.

A snapshot is a pickle, and unpickling runs code, so two checks stand before a value is used.
Bytes are unpickled only after their HMAC-SHA256 signature, keyed by the deployment's secret,
has verified: a tampered, truncated or foreign snapshot is refused with `SnapshotError` before
a single byte is unpickled. Then the unpickling itself is `models.safe_pickle`'s, which builds
only the classes a model or a serving state holds: a signed pickle that names anything else
(a leaked key, a data directory someone else can write) is refused too, nothing built from it.
"""

from __future__ import annotations

import hashlib
import hmac
import pickle
from typing import TypeVar

from models.learners import OnlineLearner
from models.safe_pickle import restricted_loads

Value = TypeVar("Value")

MAGIC = b"FSS1"
"""Marks the layout: magic, 32-byte signature, pickle."""
SIGNATURE_BYTES = 32


class SnapshotError(ValueError):
    """Bytes that are not a snapshot signed with this deployment's key."""


def sign(payload: bytes, key: bytes) -> bytes:
    """The HMAC-SHA256 of ``payload`` under ``key``."""
    return hmac.new(key, payload, hashlib.sha256).digest()


def dump_signed(value: object, key: bytes) -> bytes:
    """``value`` pickled and signed: magic, signature, pickle."""
    payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return MAGIC + sign(payload, key) + payload


def load_signed(blob: bytes, key: bytes, expected: type[Value]) -> Value:
    """The ``expected`` value in ``blob``, unpickled only once its signature has verified."""
    header = len(MAGIC) + SIGNATURE_BYTES
    if len(blob) <= header or not blob.startswith(MAGIC):
        raise SnapshotError("not a fraudstream snapshot")
    signature, payload = blob[len(MAGIC) : header], blob[header:]
    if not hmac.compare_digest(signature, sign(payload, key)):
        raise SnapshotError("the snapshot's signature does not verify: refused unread")
    try:
        value = restricted_loads(payload)
    except Exception as error:
        # Not a bug of ours: a refused global, or a pickle that does not rebuild (truncated,
        # another library version). Refused like a bad signature, never a 500.
        raise SnapshotError(f"the snapshot does not unpickle safely: {error}") from None
    if not isinstance(value, expected):
        raise SnapshotError(
            f"the snapshot holds a {type(value).__name__}, not a {expected.__name__}"
        )
    return value


def dump_snapshot(learner: OnlineLearner, key: bytes) -> bytes:
    """The learner pickled and signed.

    Examples
    --------
    >>> learner = OnlineLearner("logistic")
    >>> learner.learn({"amount": 250.0}, is_fraud=True)
    >>> again = load_snapshot(dump_snapshot(learner, b"secret"), b"secret")
    >>> again.labels_learned, again.score({"amount": 250.0}) == learner.score({"amount": 250.0})
    (1, True)
    >>> load_snapshot(dump_snapshot(learner, b"secret"), b"other key")
    Traceback (most recent call last):
    ...
    models.snapshots.SnapshotError: the snapshot's signature does not verify: refused unread
    """
    return dump_signed(learner, key)


def load_snapshot(blob: bytes, key: bytes) -> OnlineLearner:
    """The learner in ``blob``, unpickled only once its signature has verified."""
    return load_signed(blob, key, OnlineLearner)
