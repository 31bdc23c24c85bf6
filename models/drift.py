"""Drift alarms that need no label: the scored vectors of a recent window against a reference.

A new fraud pattern shows in the features days before its first chargeback. `DriftMonitor`
keeps, per event-time day, a uniform sample of the vectors scored that day (at most
`DriftPolicy.rows_per_day`, so memory is bounded whatever the traffic); when event time passes
midnight the day just ended becomes the recent window and is compared with the reference
window, the `DriftPolicy.reference_days` days that ended `DriftPolicy.gap_days` days before
it (the gap keeps a pattern that started a few days ago out of its own reference). The
comparison: each watched feature's and the score's PSI and the most surprising cells of
`DriftPolicy.ways` binned features (`models.drift_stats`), and the count of the day's novel
card-days (`models.drift_novelty`). The alarm is on while the novelty's surprise is past
`DriftPolicy.novelty_surprise` (it sees a few cards behaving as none did, the first days of a
pattern) or the top cell's past `DriftPolicy.alarm_surprise` (a crowd of cards each ordinary
alone); the cells tell where.

Only features that need no label are watched (`watched_features`): terminal fraud rates move
when chargebacks arrive, which is the very thing this alarm must not wait for, and a calendar
flag such as ``is_weekend`` is constant over a day, so one day against a week always differs.
"""

from __future__ import annotations

import random
from array import array
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from models.drift_novelty import Novelty, card_day_profiles, novelty, profiled_features
from models.drift_stats import Cell, bin_index, cell_surprises, psi, quantile_edges
from models.state import DAY

__all__ = [
    "Cell",
    "DriftEvent",
    "DriftMonitor",
    "DriftPolicy",
    "DriftReport",
    "FeatureDrift",
    "watched_features",
]

_UNWATCHED_PREFIXES = ("terminal_fraud_rate_", "is_weekend")


def watched_features(names: Sequence[str]) -> tuple[str, ...]:
    """The features a label-free drift alarm can watch (see the module docstring).

    >>> watched_features(["amount", "is_weekend", "terminal_fraud_rate_7d", "is_night"])
    ('amount', 'is_night')
    """
    return tuple(name for name in names if not name.startswith(_UNWATCHED_PREFIXES))


@dataclass(frozen=True)
class DriftPolicy:
    """Windows, bins and the alarm's threshold."""

    reference_days: int = 7
    gap_days: int = 7
    """Days between the reference window's end and the recent day (0: adjacent)."""
    quantiles: tuple[float, ...] = (0.05, 0.25, 0.5, 0.75, 0.95)
    """Bin edges of each feature, at these quantiles of the reference window."""
    ways: int = 3
    """Features combined into one cell."""
    min_cards: int = 3
    """A cell with fewer recent cards is never surprising."""
    alarm_surprise: float | None = 4.0
    """The alarm is on while a cell's ``-log10`` corrected p-value is past this (none: the
    cells explain, never raise it)."""
    novelty_surprise: float | None = 2.0
    """The alarm is on while the novel card-days' ``-log10`` p-value is past this (none:
    novelty is not computed)."""
    novelty_tail: float = 1e-4
    """A card-day is novel when it is more isolated than this share of the reference's."""
    novelty_trees: int = 200
    warmup_days: int = 0
    """Days after the first vector before a reference window may start: features over
    windows of N days drift by construction until N days of history fill them."""
    lateness_seconds: int = 3_600
    """A day is reported once event time is this far past its end: transactions from
    partitions a little behind still count in it."""
    rows_per_day: int = 50_000
    """Vectors kept a day, sampled uniformly over the day beyond it."""
    top_cells: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.reference_days < 1 or self.gap_days < 0 or self.lateness_seconds < 0:
            raise ValueError(
                "reference_days must be positive, gap_days and lateness_seconds not negative"
            )
        if self.ways < 1 or self.min_cards < 1 or self.rows_per_day < 1:
            raise ValueError("ways, min_cards and rows_per_day must be positive")
        if not 0 < self.novelty_tail < 1 or self.novelty_trees < 1:
            raise ValueError("novelty_tail must lie in (0, 1), novelty_trees be positive")
        if not all(0 < q < 1 for q in self.quantiles):
            raise ValueError("quantiles must lie strictly between 0 and 1")


@dataclass(frozen=True)
class FeatureDrift:
    name: str
    psi: float


@dataclass(frozen=True)
class DriftReport:
    """One recent day against its reference window."""

    day: int
    """The recent day, in days since 1970-01-01 UTC."""
    reference_first_day: int
    reference_last_day: int
    transactions: int
    """Transactions scored on the recent day (the sample may hold fewer)."""
    features: tuple[FeatureDrift, ...]
    score_psi: float
    cells: tuple[Cell, ...]
    """The most surprising cells, most surprising first."""
    alarm: bool
    novelty: Novelty | None = None
    """The recent day's novel card-days (none: not computed)."""


class DriftEventKind(StrEnum):
    RAISED = "drift_alarm_raised"
    CLEARED = "drift_alarm_cleared"


@dataclass(frozen=True)
class DriftEvent:
    """The alarm went on or off with the report of ``day``."""

    kind: DriftEventKind
    day: int
    reason: str


@dataclass
class _Day:
    rows: array[float] = field(default_factory=lambda: array("d"))
    cards: list[str] = field(default_factory=list)
    scores: array[float] = field(default_factory=lambda: array("d"))
    seen: int = 0


@dataclass(frozen=True)
class _Window:
    """What one day is compared with and on, copied out of the monitor."""

    day: int
    reference_first_day: int
    reference_last_day: int
    transactions: int
    reference_rows: npt.NDArray[np.float64]
    recent_rows: npt.NDArray[np.float64]
    reference_cards: npt.NDArray[np.int64]
    recent_cards: npt.NDArray[np.int64]
    reference_scores: npt.NDArray[np.float64]
    recent_scores: npt.NDArray[np.float64]


class DriftMonitor:
    """Feeds on scored vectors, keeps a bounded sample per day, reports at each day's end.

    Examples
    --------
    >>> from array import array
    >>> monitor = DriftMonitor(["amount"], DriftPolicy(reference_days=1, gap_days=0,
    ...                                                lateness_seconds=0))
    >>> for day in range(3):
    ...     for i in range(20):
    ...         monitor.observe(day * 86_400 + i, array("d", [i % 5]), f"c{i}", 0.1)
    >>> report = monitor.report
    >>> report.day, report.reference_first_day, report.alarm
    (1, 0, False)
    """

    def __init__(
        self,
        features: Sequence[str],
        policy: DriftPolicy | None = None,
        *,
        watched: Sequence[str] | None = None,
        deferred: bool = False,
    ) -> None:
        self.features = tuple(features)
        """The names of each vector's values, in order."""
        self.names = tuple(features if watched is None else watched)
        """The features compared (a subset of `features`)."""
        self.policy = policy or DriftPolicy()
        self.deferred = deferred
        """Leave each ended day's comparison to `run_due` (off the scoring path) rather than
        making it when the day is reported."""
        self._columns = [self.features.index(name) for name in self.names]
        self._profiled = [self.names.index(name) for name in profiled_features(self.names)]
        """Columns of the compared rows that card-day profiles summarise."""
        self._first_day: int | None = None
        self.report: DriftReport | None = None
        """The latest closed day's report (none: not enough days seen yet)."""
        self._days: dict[int, _Day] = {}
        self._open: int | None = None
        """The oldest day not reported yet."""
        self._closes_at = -(2**62)
        """The event second from which `_open` is reported (at first: any, to start)."""
        self._oldest_kept = 0
        """Days before this one are no longer counted."""
        self._rows_per_day = self.policy.rows_per_day
        self._events: deque[DriftEvent] = deque()
        # Bounded: a comparison running behind keeps the latest ended days, whose reports
        # supersede the older ones anyway.
        self._due: deque[_Window] = deque(maxlen=2)
        self._random = random.Random(self.policy.seed)
        self.on_report: Callable[[DriftReport], None] | None = None
        """Called with each day's report as it is made (an offline replay's per-day table)."""

    def observe(self, second: int, values: array[float], card: str, score: float) -> None:
        """Take one scored vector (``values`` in `features` order) at its event second."""
        # On the scoring hot path: one comparison, one look-up and three appends, mostly.
        if second >= self._closes_at:
            self._advance(second)
        day = second // DAY
        bucket = self._days.get(day)
        if bucket is None:
            if day < self._oldest_kept:
                return  # Too late to count in any window still to come.
            bucket = self._days[day] = _Day()
        bucket.seen += 1
        kept = len(bucket.scores)
        if kept < self._rows_per_day:
            bucket.rows.extend(values)
            bucket.cards.append(card)
            bucket.scores.append(score)
            return
        # Reservoir sampling: every vector of the day is kept with the same chance.
        slot = self._random.randrange(bucket.seen)
        if slot < kept:
            width = len(self.features)
            bucket.rows[slot * width : (slot + 1) * width] = values
            bucket.cards[slot] = card
            bucket.scores[slot] = score

    def take_events(self) -> list[DriftEvent]:
        """The alarm's changes since the last call, oldest first."""
        events = []
        while self._events:
            events.append(self._events.popleft())
        return events

    @property
    def days_kept(self) -> int:
        return len(self._days)

    def _advance(self, second: int) -> None:
        """Report on every open day whose end (plus the lateness allowed) ``second`` has
        passed, then forget the days no window still to come needs."""
        policy = self.policy
        if self._open is None:
            day = second // DAY
            self._first_day = self._open = day
            self._closes_at = (day + 1) * DAY + policy.lateness_seconds
            self._oldest_kept = day - policy.reference_days - policy.gap_days
            return
        while second >= self._closes_at:
            window = self.window(self._open)
            if window is not None:
                if self.deferred:
                    self._due.append(window)
                else:
                    self._publish(self.compare(window))
            self._open += 1
            self._closes_at += DAY
        self._oldest_kept = self._open - policy.gap_days - policy.reference_days
        for day in [day for day in self._days if day < self._oldest_kept]:
            del self._days[day]

    def run_due(self) -> int:
        """Compare the days ended since the last call (`deferred` monitors); how many.

        Safe in another thread than the one scoring: the windows were copied when due.
        """
        done = 0
        while self._due:
            self._publish(self.compare(self._due.popleft()))
            done += 1
        return done

    def _publish(self, report: DriftReport) -> None:
        was = self.report is not None and self.report.alarm
        if report.alarm != was:
            self._events.append(_event(report))
        self.report = report
        if self.on_report is not None:
            self.on_report(report)

    def evaluate(self, recent: int) -> DriftReport | None:
        """The report of day ``recent`` against its reference window, from the days kept
        (none when the recent day or any reference day has no vector)."""
        window = self.window(recent)
        return None if window is None else self.compare(window)

    def window(self, recent: int) -> _Window | None:
        """Copies of what day ``recent`` is compared with and on (none: not enough kept)."""
        policy = self.policy
        last = recent - 1 - policy.gap_days
        first = last - policy.reference_days + 1
        if self._first_day is None or first - self._first_day < policy.warmup_days:
            return None
        reference_days = [self._days.get(day) for day in range(first, last + 1)]
        recent_day = self._days.get(recent)
        if (
            recent_day is None
            or not recent_day.scores
            or any(day is None or not day.scores for day in reference_days)
        ):
            return None
        width, columns = len(self.features), self._columns
        # Copies, all of them: the comparison may run in another thread while scoring goes on.
        ref_rows = np.concatenate(
            [np.frombuffer(day.rows, dtype=np.float64) for day in reference_days if day]
        ).reshape(-1, width)[:, columns]
        rec_rows = np.frombuffer(recent_day.rows, dtype=np.float64).reshape(-1, width)[:, columns]
        # A card-day counts once in a reference cell: the day goes into the card's key.
        ref_cards = np.concatenate(
            [
                _card_keys(day.cards) ^ (index * 0x9E3779B97F4A7C15 % 2**63)
                for index, day in enumerate(reference_days)
                if day
            ]
        )
        rec_cards = _card_keys(recent_day.cards)
        ref_scores = np.concatenate(
            [np.frombuffer(day.scores, dtype=np.float64) for day in reference_days if day]
        )
        rec_scores = np.array(recent_day.scores, dtype=np.float64)
        return _Window(
            recent,
            first,
            last,
            recent_day.seen,
            ref_rows,
            rec_rows,
            ref_cards,
            rec_cards,
            ref_scores,
            rec_scores,
        )

    def compare(self, window: _Window) -> DriftReport:
        """The report on what `window` took (the costly part, reading no state)."""
        policy = self.policy
        ref_rows, rec_rows = window.reference_rows, window.recent_rows
        ref_cards, rec_cards = window.reference_cards, window.recent_cards
        ref_scores, rec_scores = window.reference_scores, window.recent_scores
        width = ref_rows.shape[1]
        edges = [quantile_edges(ref_rows[:, i], policy.quantiles) for i in range(width)]
        ref_bins = np.stack([bin_index(ref_rows[:, i], e) for i, e in enumerate(edges)], 1)
        rec_bins = np.stack([bin_index(rec_rows[:, i], e) for i, e in enumerate(edges)], 1)
        features = tuple(
            FeatureDrift(name, _psi_of(ref_bins[:, i], rec_bins[:, i], len(edges[i]) + 1))
            for i, name in enumerate(self.names)
        )
        score_edges = quantile_edges(ref_scores, [i / 10 for i in range(1, 10)])
        score_psi = _psi_of(
            bin_index(ref_scores, score_edges),
            bin_index(rec_scores, score_edges),
            len(score_edges) + 1,
        )
        cells = tuple(
            cell_surprises(
                self.names,
                edges,
                ref_bins,
                ref_cards,
                rec_bins,
                rec_cards,
                ways=min(policy.ways, width),
                min_cards=policy.min_cards,
                top=policy.top_cells,
            )
        )
        found = None if policy.novelty_surprise is None else self._novelty(window)
        alarm = (
            policy.alarm_surprise is not None
            and bool(cells)
            and cells[0].surprise > policy.alarm_surprise
        ) or (
            found is not None
            and policy.novelty_surprise is not None
            and found.surprise > policy.novelty_surprise
        )
        return DriftReport(
            window.day,
            window.reference_first_day,
            window.reference_last_day,
            window.transactions,
            features,
            score_psi,
            cells,
            alarm,
            found,
        )

    def _novelty(self, window: _Window) -> Novelty:
        """The recent day's card-days against the reference window's (`models.drift_novelty`)."""
        columns = self._profiled
        return novelty(
            card_day_profiles(window.reference_rows[:, columns], window.reference_cards),
            card_day_profiles(window.recent_rows[:, columns], window.recent_cards),
            quantile_tail=self.policy.novelty_tail,
            trees=self.policy.novelty_trees,
            seed=self.policy.seed,
        )


def _card_keys(cards: list[str]) -> npt.NDArray[np.int64]:
    """Integer keys of the cards, hashed when a day is compared rather than when scored."""
    return np.fromiter((hash(card) for card in cards), dtype=np.int64, count=len(cards))


def _psi_of(reference: np.ndarray, recent: np.ndarray, bins: int) -> float:
    return psi(np.bincount(reference, minlength=bins), np.bincount(recent, minlength=bins))


def _event(report: DriftReport) -> DriftEvent:
    if not report.alarm:
        return DriftEvent(DriftEventKind.CLEARED, report.day, "nothing past the thresholds")
    reasons = []
    found = report.novelty
    if found is not None:
        reasons.append(
            f"{found.novel} novel card-days of {found.card_days} where "
            f"{found.expected:.1f} were expected"
        )
    if report.cells:
        cell = report.cells[0]
        where = ", ".join(
            f"{name} in [{low:g}, {high:g})"
            for name, low, high in zip(cell.features, cell.lower, cell.upper, strict=True)
        )
        reasons.append(f"{cell.cards} cards where {cell.expected:.1f} were expected: {where}")
    return DriftEvent(DriftEventKind.RAISED, report.day, "; ".join(reasons))
