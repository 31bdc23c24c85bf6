"""Every feature, defined once: the live scorer, the replay and the batch job all call this.

A feature vector is computed from the transaction itself and the `WindowAggregates` its
`FeatureState` returned for it, never from anything later. Terminal fraud rates use windows
shifted back by the label delay (see `WindowSpec`), so no label that was not yet known at
scoring time can leak into them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import tzinfo
from zoneinfo import ZoneInfo

from models.schemas import Transaction
from models.state import WindowAggregates, WindowSpec, hundredths

FeatureVector = dict[str, float]

NIGHT_LAST_HOUR = 6
"""Night is 00:00 to 06:59 local time, as in the public handbook's features."""


@dataclass(frozen=True)
class FeatureSpec:
    """Which windows to aggregate and how to read local time.

    ``timezone`` is the zone in which weekend and night are judged (an IANA name); event times
    themselves are always UTC.
    """

    windows: WindowSpec = field(default_factory=WindowSpec)
    timezone: str = "UTC"


class FeatureSet:
    """Turns a transaction and its window aggregates into the feature vector.

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> from models.memory_state import InMemoryFeatureState
    >>> from models.schemas import Transaction
    >>> features = FeatureSet(FeatureSpec())
    >>> state = InMemoryFeatureState(features.spec.windows)
    >>> tx = Transaction(transaction_id="t1", timestamp=datetime(2018, 4, 1, 3, tzinfo=UTC),
    ...                  card_id="c1", terminal_id="p1", amount=20.0, currency="EUR")
    >>> vector = features.vector(tx, state.observe([tx])[0])
    >>> vector["is_weekend"], vector["is_night"], vector["card_avg_amount_7d"]
    (1.0, 1.0, 20.0)
    """

    def __init__(self, spec: FeatureSpec) -> None:
        self.spec = spec
        windows = spec.windows
        self._zone: tzinfo | None = None if spec.timezone == "UTC" else ZoneInfo(spec.timezone)
        self._horizon = float(windows.card_horizon)
        longest = windows.windows_days[-1]
        names = ["amount", "is_weekend", "is_night"]
        names += [f"card_tx_count_{days}d" for days in windows.windows_days]
        names += [f"card_avg_amount_{days}d" for days in windows.windows_days]
        names += [f"terminal_tx_count_{days}d" for days in windows.windows_days]
        names += [f"terminal_fraud_rate_{days}d" for days in windows.windows_days]
        names += [
            "card_seconds_since_previous",
            f"card_amount_to_avg_{longest}d",
            "card_terminal_first_use",
        ]
        self.names: tuple[str, ...] = tuple(names)
        digest = hashlib.sha256(
            repr((self.names, windows.label_delay_seconds, spec.timezone)).encode()
        ).hexdigest()
        self.schema_version = f"features-{digest[:12]}"
        """Changes whenever a feature's name or meaning changes: models trained on one schema
        cannot score vectors of another."""

    def vector(self, tx: Transaction, aggregates: WindowAggregates) -> FeatureVector:
        """The feature vector of ``tx`` given the aggregates observed with it."""
        # The hot path of every score: one list grown in place, then one dict;
        # `test_features_against_pandas` pins every value. No `zip(..., strict=...)` here:
        # Python 3.11 takes a keyword argument to zip through a slow path, about 0.1 us a call.
        counts, sums, previous, used_before, terminal_counts, frauds, _ = aggregates
        local = tx.timestamp if self._zone is None else tx.timestamp.astimezone(self._zone)
        amount = tx.amount
        horizon = self._horizon
        values: list[float] = [
            amount,
            1.0 if local.weekday() >= 5 else 0.0,
            1.0 if local.hour <= NIGHT_LAST_HOUR else 0.0,
        ]
        values += counts
        for window, count in enumerate(counts):
            values.append(sums[window] / count / 100 if count else 0.0)
        values += terminal_counts
        for window, count in enumerate(terminal_counts):
            values.append(frauds[window] / count if count else 0.0)
        values.append(horizon if previous is None or previous > horizon else previous)
        # The amount over the card's mean before it (the window total holds this amount too).
        prior_count = counts[-1] - 1
        prior_mean = (sums[-1] - hundredths(amount)) / prior_count / 100 if prior_count > 0 else 0.0
        values.append(amount / prior_mean if prior_mean > 0 else 1.0)
        values.append(0.0 if used_before else 1.0)
        # One value per name by construction, as the test against pandas checks.
        return dict(zip(self.names, values))  # noqa: B905
