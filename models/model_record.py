"""What a model version is: its provenance, signed so that the metadata cannot be altered either.

A model's bytes are checked by their sha256, and the record that holds the sha256 is itself
signed: an HMAC-SHA256, keyed by the deployment's secret, over the canonical JSON of every other
field. Editing a record in the index (its labels learned, its metrics, its artefact's checksum)
breaks the signature, so neither a swapped artefact nor flattering metadata passes unnoticed.

Three shapes, each the previous one plus what the registry adds:

- `NewModel`: what the code that built a model knows about it;
- `UnsignedRecord`: plus the version number, the creation time and the artefact's sha256;
- `ModelRecord`: plus the signature.

Pure: the registry in ``pipelines/`` stores records and passes the time in.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from models.schemas import UtcDatetime

Hex64 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
"""A sha256 or HMAC-SHA256 digest in lower-case hex."""

Version = Annotated[str, StringConstraints(pattern=r"^m[0-9]{6,}$")]
"""A registry-assigned version, ``m`` and a zero-padded number: ``m000012``."""

Name = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class RecordSignatureError(ValueError):
    """A record whose signature does not verify under this deployment's key."""


def _drop_undefined(value: Any) -> Any:
    # The metrics module answers NaN for a metric it cannot compute (one class only); NaN has
    # no JSON spelling, and "undefined" is said as well by leaving the metric out.
    if isinstance(value, dict):
        return {
            name: metric
            for name, metric in value.items()
            if not (isinstance(metric, float) and math.isnan(metric))
        }
    return value


Metrics = Annotated[dict[str, float], BeforeValidator(_drop_undefined)]


class NewModel(BaseModel):
    """A model as its builder describes it, before the registry numbers and signs it.

    ``stream_position`` names what the model reflects in the stream: label offsets per
    partition, or label counts. ``data_window`` is the event-time span a batch model was
    trained on. Metrics that are undefined (NaN) are left out.
    """

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)

    kind: Literal["online", "batch"]
    learner: Name
    params: dict[str, Any]
    feature_schema: Name
    parent: Version | None = None
    labels_learned: int = Field(ge=0)
    frauds_learned: int = Field(ge=0)
    stream_position: dict[str, int] = Field(default_factory=dict)
    data_window: tuple[UtcDatetime, UtcDatetime] | None = None
    code_version: Name
    seed: int
    metrics: Metrics = Field(default_factory=dict)
    reason: Name
    """Why it was taken: "periodic", "on demand", "start", "promotion", "retrain"..."""

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.frauds_learned > self.labels_learned:
            raise ValueError("frauds_learned cannot exceed labels_learned")
        if self.data_window is not None and self.data_window[0] > self.data_window[1]:
            raise ValueError("data_window must start before it ends")
        return self


class UnsignedRecord(NewModel):
    """A numbered model with its artefact's checksum: everything the signature covers."""

    version: Version
    created_at: UtcDatetime
    sha256: Hex64


class ModelRecord(UnsignedRecord):
    """A model version as the registry keeps it."""

    signature: Hex64
    """HMAC-SHA256 of `canonical_bytes`: every field but this one."""


def canonical_bytes(record: UnsignedRecord) -> bytes:
    """The bytes a signature covers: every field but the signature, as sorted, compact JSON.

    Sorting makes the bytes independent of the order in which dictionaries were filled, so a
    record read back from any store signs the same.
    """
    fields = record.model_dump(mode="json", include=set(UnsignedRecord.model_fields))
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return text.encode()


def _signature(record: UnsignedRecord, key: bytes) -> str:
    return hmac.new(key, canonical_bytes(record), hashlib.sha256).hexdigest()


def sign_record(record: UnsignedRecord, key: bytes) -> ModelRecord:
    """The record with its signature under ``key``.

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> unsigned = UnsignedRecord(
    ...     kind="online", learner="logistic", params={"l2": 0.0}, feature_schema="v1",
    ...     labels_learned=10, frauds_learned=1, code_version="0.1.0", seed=0,
    ...     reason="periodic", version="m000001", created_at=datetime(2025, 1, 1, tzinfo=UTC),
    ...     sha256="0" * 64,
    ... )
    >>> record = sign_record(unsigned, b"secret")
    >>> verify_record(record, b"secret")
    >>> verify_record(record.model_copy(update={"labels_learned": 11}), b"secret")
    Traceback (most recent call last):
    ...
    models.model_record.RecordSignatureError: record m000001: signature does not verify
    >>> verify_record(record, b"other key")
    Traceback (most recent call last):
    ...
    models.model_record.RecordSignatureError: record m000001: signature does not verify
    """
    fields = {name: getattr(record, name) for name in UnsignedRecord.model_fields}
    return ModelRecord(**fields, signature=_signature(record, key))


def verify_record(record: ModelRecord, key: bytes) -> None:
    """Raise `RecordSignatureError` unless ``record`` was signed under ``key`` as it stands."""
    if not hmac.compare_digest(record.signature, _signature(record, key)):
        raise RecordSignatureError(f"record {record.version}: signature does not verify")
