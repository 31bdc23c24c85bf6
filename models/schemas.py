"""The contract: the only shapes that cross a boundary (HTTP body, Kafka value, stored row).

Models are strict (no silent coercion of ``"12"`` into ``12`` or ``1`` into ``True``), reject
unknown fields, and name the field at fault in every error. Timestamps must carry a time zone
and are normalised to UTC, because every feature window is computed in event time and a naive
timestamp would silently shift it by the producer's offset. A timestamp whose UTC instant falls
outside the calendar (year 1 at ``+14:00``) is a validation error, and live input is checked
against the service's clock when the validation context carries an `EventTimeWindow`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
)
from pydantic_core import PydanticCustomError

from models.event_time import CONTEXT_KEY, EventTimeWindow

MAX_AMOUNT = 1_000_000_000.0
"""Largest accepted amount: far above any card transaction, small enough to stay exact in sums."""


def _reject_numbers(value: Any) -> Any:
    # A bare number would be read as Unix seconds; producers that send one have usually sent
    # milliseconds by mistake, so we ask for an explicit ISO 8601 string instead.
    if isinstance(value, bool | int | float):
        raise ValueError("timestamp must be an ISO 8601 string with a time zone, not a number")
    return value


def _to_utc(value: datetime, info: ValidationInfo) -> datetime:
    try:
        moment = value.astimezone(UTC)
    except OverflowError:
        raise PydanticCustomError(
            "datetime_out_of_range", "outside the years 1 to 9999 once converted to UTC"
        ) from None
    context = info.context
    if context is not None:
        window: EventTimeWindow | None = context.get(CONTEXT_KEY)
        if window is not None and (refusal := window.refusal(moment)) is not None:
            raise PydanticCustomError(
                "event_time_out_of_range", "event time is {why}", {"why": refusal}
            )
    return moment


UtcDatetime = Annotated[
    AwareDatetime,
    BeforeValidator(_reject_numbers),
    AfterValidator(_to_utc),
    Field(strict=False),
]
"""An ISO 8601 timestamp with a zone (``Z`` or ``+02:00``), stored in UTC."""

Identifier = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")
]
"""Printable ASCII without spaces: ids end up in Kafka keys, Redis keys and log lines."""

Amount = Annotated[float, Field(ge=0, le=MAX_AMOUNT)]
"""Zero or positive, and finite: zero-amount authorisations (card checks) are real payments,
and card testing uses them. NaN and Infinity are refused by ``allow_inf_nan=False``."""


class _Contract(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)


class Transaction(_Contract):
    """One card payment as it reaches the service."""

    transaction_id: Identifier
    timestamp: UtcDatetime
    card_id: Identifier
    terminal_id: Identifier
    amount: Amount
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] = Field(
        description="ISO 4217 code, e.g. EUR"
    )
    merchant_category: Annotated[str, StringConstraints(pattern=r"^[0-9]{4}$")] | None = Field(
        default=None, description="ISO 18245 merchant category code, four digits"
    )
    channel: Annotated[str, StringConstraints(min_length=1, max_length=32)] | None = Field(
        default=None, description="e.g. pos, ecommerce, atm"
    )
    country: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")] | None = Field(
        default=None, description="ISO 3166-1 alpha-2 code of the terminal"
    )


class LabelSource(StrEnum):
    """Who said whether a transaction was fraud."""

    CHARGEBACK = "chargeback"
    ANALYST = "analyst"
    RULE = "rule"
    IMPLICIT = "implicit"
    """No fraud report arrived within the maturity period, so it is taken as legitimate."""


class Label(_Contract):
    """The verdict on a transaction, usually arriving days after it was scored."""

    transaction_id: Identifier
    is_fraud: bool
    labelled_at: UtcDatetime
    source: LabelSource = Field(strict=False)
    """Lax only here: a JSON string names the enum member; anything else is still refused."""


class Verdict(_Contract):
    """An analyst's verdict on an alert: learned at once as an ``analyst`` label."""

    is_fraud: bool


class Decision(StrEnum):
    """What a score became: an alert, a review a rule asked for, or nothing."""

    ALERT = "alert"
    PASS = "pass"
    REVIEW = "review"
    """A rule asked an investigator to look; not an alert (it counts in no alert rate)."""


class Reason(_Contract):
    """A feature that pushed the score up, with its value and its share of the push."""

    feature: str
    value: float
    contribution: float


Probability = Annotated[float, Field(ge=0.0, le=1.0)]
ModelVersion = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class Score(_Contract):
    """The service's answer for one transaction."""

    transaction_id: Identifier
    score: Probability
    model_version: ModelVersion
    decision: Decision = Field(strict=False)
    reasons: tuple[Reason, ...] = Field(default=(), strict=False)
    replayed: bool = Field(
        default=False,
        description="The transaction id was scored before with the same content: this is "
        "that first answer, given again (nothing was counted twice)",
    )


class Alert(_Contract):
    """A transaction that looks like fraud, with what an investigator needs to judge it."""

    transaction: Transaction
    score: Probability
    model_version: ModelVersion
    threshold: Probability
    reasons: tuple[Reason, ...] = Field(default=(), strict=False)
    raised_at: UtcDatetime
    decision: Decision = Field(
        default=Decision.ALERT,
        strict=False,
        description="alert, or review when a rule asked an investigator to look at a "
        "transaction the model did not alert on",
    )
