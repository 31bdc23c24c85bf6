"""The score that leaves the process has exactly the contract's shape."""

from __future__ import annotations

import orjson

from models.explain import ReasonCode
from models.schemas import Decision, Score
from models.scored import Scored


def test_the_plain_document_validates_as_the_contract_and_equals_it() -> None:
    scored = Scored(
        "tx-1", 0.8125, "logistic+12", Decision.ALERT, 0.5, (ReasonCode("amount", 310.0, 1.5),)
    )
    document = scored.document()
    assert Score.model_validate_json(orjson.dumps(document)) == scored.to_contract()
    assert set(document) == set(Score.model_fields)
