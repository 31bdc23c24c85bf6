"""A transaction's score inside the process, before it becomes a contract `Score`."""

from __future__ import annotations

from typing import NamedTuple

from models.explain import ReasonCode
from models.schemas import Decision, Score


class Scored(NamedTuple):
    """A transaction's score inside the process; `to_contract` makes the `Score` that leaves it.

    A named tuple because one is built per transaction on the hot path, where validating a
    pydantic model of our own making would cost more than the features.
    """

    transaction_id: str
    score: float
    model_version: str
    decision: Decision
    threshold: float
    """The alert threshold the decision was taken against."""
    reasons: tuple[ReasonCode, ...]
    replayed: bool = False
    """A repeat of a transaction scored before: this is its first answer, given again."""

    def document(self) -> dict[str, object]:
        """The `Score` this becomes, as plain JSON data (no model validation on the hot path).

        `tests/models` pins its shape to the `Score` contract.
        """
        return {
            "transaction_id": self.transaction_id,
            "score": self.score,
            "model_version": self.model_version,
            "decision": self.decision.value,
            # A literal per reason: `_asdict` costs three times as much, once per reason.
            "reasons": [
                {"feature": feature, "value": value, "contribution": contribution}
                for feature, value, contribution in self.reasons
            ],
            "replayed": self.replayed,
        }

    def to_contract(self) -> Score:
        return Score(
            transaction_id=self.transaction_id,
            score=self.score,
            model_version=self.model_version,
            decision=self.decision,
            reasons=tuple(reason.to_contract() for reason in self.reasons),
            replayed=self.replayed,
        )
