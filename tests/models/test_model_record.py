"""Model records: canonical bytes independent of key order, and a signature over every field."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from models.model_record import (
    ModelRecord,
    NewModel,
    RecordSignatureError,
    UnsignedRecord,
    canonical_bytes,
    sign_record,
    verify_record,
)

KEY = b"record test key"
WHEN = datetime(2025, 3, 1, 12, tzinfo=UTC)

FIELDS: dict[str, Any] = {
    "kind": "batch",
    "learner": "forest",
    "params": {"n_models": 10, "max_share_to_split": 1.0, "nested": {"b": 1, "a": [1, 2]}},
    "feature_schema": "features-v3",
    "parent": "m000004",
    "labels_learned": 1_200,
    "frauds_learned": 12,
    "stream_position": {"labels-0": 800, "labels-1": 400},
    "data_window": (WHEN - timedelta(days=30), WHEN - timedelta(days=7)),
    "code_version": "0.1.0+gabc1234",
    "seed": 7,
    "metrics": {"average_precision": 0.61, "card_precision_at_100": 0.28},
    "reason": "retrain",
    "version": "m000005",
    "created_at": WHEN,
    "sha256": "ab" * 32,
}

# One different value per signed field: changing any of them must break the signature.
ALTERED: dict[str, Any] = {
    "kind": "online",
    "learner": "logistic",
    "params": {**FIELDS["params"], "n_models": 11},
    "feature_schema": "features-v4",
    "parent": None,
    "labels_learned": 1_201,
    "frauds_learned": 13,
    "stream_position": {"labels-0": 801, "labels-1": 400},
    "data_window": None,
    "code_version": "0.1.1",
    "seed": 8,
    "metrics": {"average_precision": 0.99, "card_precision_at_100": 0.28},
    "reason": "on demand",
    "version": "m000006",
    "created_at": WHEN + timedelta(microseconds=1),
    "sha256": "cd" * 32,
}


def _unsigned(**changes: Any) -> UnsignedRecord:
    return UnsignedRecord(**{**FIELDS, **changes})


def test_every_signed_field_has_an_altered_value() -> None:
    assert set(ALTERED) == set(UnsignedRecord.model_fields) == set(FIELDS)


def test_canonical_bytes_do_not_depend_on_key_order() -> None:
    reordered = {
        "nested": {"a": [1, 2], "b": 1},
        "max_share_to_split": 1.0,
        "n_models": 10,
    }
    position = {"labels-1": 400, "labels-0": 800}
    one = _unsigned()
    other = _unsigned(params=reordered, stream_position=position)
    assert canonical_bytes(one) == canonical_bytes(other)
    assert sign_record(one, KEY).signature == sign_record(other, KEY).signature


def test_canonical_bytes_leave_the_signature_out() -> None:
    record = sign_record(_unsigned(), KEY)
    assert canonical_bytes(record) == canonical_bytes(_unsigned())
    assert record.signature.encode() not in canonical_bytes(record)


def test_a_signed_record_verifies_and_survives_a_json_round_trip() -> None:
    record = sign_record(_unsigned(), KEY)
    verify_record(record, KEY)
    again = ModelRecord.model_validate_json(record.model_dump_json())
    assert again == record
    verify_record(again, KEY)


@pytest.mark.parametrize("field", sorted(ALTERED))
def test_changing_any_field_breaks_the_signature(field: str) -> None:
    record = sign_record(_unsigned(), KEY)
    changed = ModelRecord(**{**record.model_dump(), field: ALTERED[field]})
    with pytest.raises(RecordSignatureError, match="signature does not verify"):
        verify_record(changed, KEY)


def test_another_key_does_not_verify() -> None:
    with pytest.raises(RecordSignatureError):
        verify_record(sign_record(_unsigned(), b"someone else's key"), KEY)


def test_undefined_metrics_are_left_out_and_infinite_ones_refused() -> None:
    record = _unsigned(metrics={"roc_auc": math.nan, "average_precision": 0.5})
    assert record.metrics == {"average_precision": 0.5}
    with pytest.raises(ValidationError):
        _unsigned(metrics={"roc_auc": math.inf})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"created_at": datetime(2025, 3, 1, 12)}, "timezone"),  # naive: refused
        ({"frauds_learned": 1_201}, "cannot exceed"),
        ({"data_window": (WHEN, WHEN - timedelta(days=1))}, "start before"),
        ({"version": "12"}, "pattern"),
        ({"kind": "nightly"}, "online"),
        ({"labels_learned": "1200"}, "integer"),
        ({"sha256": "AB" * 32}, "pattern"),
        ({"owner": "me"}, "Extra inputs"),
    ],
)
def test_malformed_records_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _unsigned(**changes)


def test_a_new_model_has_defaults_for_what_an_online_learner_may_not_know() -> None:
    model = NewModel(
        kind="online",
        learner="logistic",
        params={},
        feature_schema="features-v3",
        labels_learned=0,
        frauds_learned=0,
        code_version="0.1.0",
        seed=0,
        reason="start",
    )
    assert (model.parent, model.stream_position, model.data_window, model.metrics) == (
        None,
        {},
        None,
        {},
    )
