"""How far a client's timestamps may stray from the service's clock.

Event time drives every window, the pending vectors' expiry, the implicit labels and a
retrain's ``as_of``: one record dated 9999 would move them all at once. So live input (HTTP
bodies, Kafka records) is validated against a window taken from the service's clock when the
input arrives: no later than the clock plus ``max_skew``, no earlier than ``floor``.

The window reaches the contract's timestamp validator through pydantic's validation context
(`EventTimeWindow.context`), so both paths refuse an out-of-range time as a validation error
naming the field. Offline replays and the simulator validate without a context: they run on
their own clock, and a replay of 2018 is not "too old".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

DEFAULT_MAX_CLOCK_SKEW = timedelta(hours=1)
DEFAULT_MIN_EVENT_TIME = datetime(2000, 1, 1, tzinfo=UTC)
"""Older than any card transaction still worth scoring, younger than any test data set."""

CONTEXT_KEY = "event_time_window"
"""Where the window travels in a pydantic validation context."""


@dataclass(frozen=True, slots=True)
class EventTimeWindow:
    """The event times accepted from input arriving now, both ends included.

    Examples
    --------
    >>> window = EventTimeBounds().window(datetime(2026, 12, 7, 12, tzinfo=UTC))
    >>> window.refusal(datetime(2026, 12, 7, 12, 30, tzinfo=UTC)) is None
    True
    >>> window.refusal(datetime(2026, 12, 7, 14, tzinfo=UTC))
    "more than 1:00:00 ahead of the service's clock (latest accepted 2026-12-07T13:00:00+00:00)"
    >>> window.refusal(datetime(1999, 12, 31, tzinfo=UTC))
    'before the earliest event time accepted (2000-01-01T00:00:00+00:00)'
    """

    earliest: datetime
    latest: datetime
    max_skew: timedelta

    def refusal(self, moment: datetime) -> str | None:
        """Why ``moment`` (aware) is refused, or ``None`` when it is in the window."""
        if moment > self.latest:
            return (
                f"more than {self.max_skew} ahead of the service's clock "
                f"(latest accepted {self.latest.isoformat()})"
            )
        if moment < self.earliest:
            return f"before the earliest event time accepted ({self.earliest.isoformat()})"
        return None

    def context(self) -> dict[str, Any]:
        """A pydantic validation context carrying this window to the contract's timestamps."""
        return {CONTEXT_KEY: self}


@dataclass(frozen=True, slots=True)
class EventTimeBounds:
    """The settings behind each `EventTimeWindow`: skew allowed ahead, and the floor."""

    max_skew: timedelta = DEFAULT_MAX_CLOCK_SKEW
    floor: datetime = DEFAULT_MIN_EVENT_TIME

    def __post_init__(self) -> None:
        if self.max_skew < timedelta(0):
            raise ValueError("max_skew must not be negative")
        if self.floor.tzinfo is None:
            raise ValueError("floor must carry a time zone")

    def window(self, now: datetime) -> EventTimeWindow:
        """The window for input arriving at ``now`` (the service's clock, aware)."""
        return EventTimeWindow(self.floor, now + self.max_skew, self.max_skew)
