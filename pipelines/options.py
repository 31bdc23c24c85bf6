"""What the option dataclasses of the clients and benchmarks share: checks, and the traffic
every load generator sends."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime


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
    """Event time of the first transaction sent; default: now."""

    def __post_init__(self) -> None:
        require_positive(self, "cards", "terminals")
        if self.warm_up < 0:
            raise ValueError(f"warm_up must not be negative, not {self.warm_up}")

    def first_event_time(self) -> datetime:
        """``start``, or now to the second."""
        return self.start or datetime.now(UTC).replace(microsecond=0)
