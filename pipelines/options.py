"""What the option dataclasses of the clients and benchmarks share: checks, and the traffic
every load generator sends."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

HISTORY = timedelta(days=365)
"""How far before now a load generator's traffic starts by default: its event time runs about
a day ahead for every two payments a card makes, and a service refuses transactions dated more
than its clock skew (an hour by default) ahead of its clock, so the whole run stays behind it."""


def require_positive(options: object, *names: str) -> None:
    """Refuse ``options`` whose named fields are not positive, naming the first such field.

    >>> from types import SimpleNamespace
    >>> require_positive(SimpleNamespace(seconds=10, clients=0), "seconds", "clients")
    Traceback (most recent call last):
    ...
    ValueError: clients must be positive, not 0
    """
    for name in names:
        value = getattr(options, name)
        if value <= 0:
            raise ValueError(f"{name} must be positive, not {value}")


def require_not_negative(options: object, *names: str) -> None:
    """Refuse ``options`` whose named fields are below zero, naming the first such field.

    >>> from types import SimpleNamespace
    >>> require_not_negative(SimpleNamespace(warm_up=0, training=-1), "warm_up", "training")
    Traceback (most recent call last):
    ...
    ValueError: training must not be negative, not -1
    """
    for name in names:
        value = getattr(options, name)
        if value < 0:
            raise ValueError(f"{name} must not be negative, not {value}")


@dataclass(frozen=True)
class TrafficOptions:
    """Which server a load generator measures, and the transactions it sends there."""

    url: str | None = None
    """A running server; default: start ``fraudstream serve`` on a free port."""
    warm_up: float = 2.0
    """Seconds of load before each measured window, not counted."""
    cards: int = 5_000
    terminals: int = 10_000
    seed: int = 0
    start: datetime | None = None
    """Event time of the first transaction sent; default: `HISTORY` before now."""

    def __post_init__(self) -> None:
        require_positive(self, "cards", "terminals")
        require_not_negative(self, "warm_up")

    def first_event_time(self) -> datetime:
        """``start``, or `HISTORY` before now, to the second."""
        return self.start or (datetime.now(UTC) - HISTORY).replace(microsecond=0)
