"""The figures the dashboard draws: pure functions of recent scores, alert times and samples.

Nothing here reads a clock or the runtime: `Scoreboard.dashboard` passes the data and the
time in, so the binning and rate rules are tested on plain lists.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from models.alerting import exceeds

MINUTE = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class ScoreBin:
    """Scores in ``[lower, upper)``; the last bin also holds a score of exactly 1."""

    lower: float
    upper: float
    count: int
    above_threshold: int
    """Those of ``count`` strictly above the threshold: the ones that alert. A bin need not
    be all one or the other: the threshold can fall inside it, and a score exactly at the
    threshold, on a bin's lower edge, does not alert."""


@dataclass(frozen=True, slots=True)
class MinuteCount:
    """Alerts raised in the minute starting at ``start``; ``None`` if none of it was observed."""

    start: datetime
    alerts: int | None


@dataclass(frozen=True, slots=True)
class AlertRate:
    """Alerts per minute over a window of whole minutes ending now."""

    minutes: list[MinuteCount]
    """Oldest first."""
    per_minute: float | None
    """Alerts in the observed part of the window over its length in minutes; ``None`` when
    nothing of the window was observed yet."""
    observed_minutes: float
    """How much of the window was observed: less than all of it while the service is young."""


@dataclass(frozen=True, slots=True)
class QualityPoint:
    """The serving models' rolling average precision at one moment (``nan`` before any label)."""

    at: datetime
    rolling_average_precision: float
    """The champion's: whichever model served then (a promotion carries its window over)."""
    challengers: Mapping[str, float] = field(default_factory=dict)
    """Each shadow challenger's, by name, for those shadowing then."""


def challenger_history(points: Iterable[QualityPoint], name: str) -> list[tuple[datetime, float]]:
    """A challenger's samples, oldest first: only those taken while it was shadowing.

    A name is a registered version, never reused, so its samples are one unbroken stretch:
    from when it was added to when it was promoted or retired.

    Examples
    --------
    >>> from datetime import UTC
    >>> t = [datetime(2026, 11, 29, 12, 0, s, tzinfo=UTC) for s in (0, 5, 10)]
    >>> points = [QualityPoint(t[0], 0.5), QualityPoint(t[1], 0.6, {"m000002": 0.4}),
    ...           QualityPoint(t[2], 0.6, {"m000002": 0.45})]
    >>> [(at.second, ap) for at, ap in challenger_history(points, "m000002")]
    [(5, 0.4), (10, 0.45)]
    """
    return [(point.at, point.challengers[name]) for point in points if name in point.challengers]


def score_histogram(scores: Iterable[float], bins: int = 20, *, threshold: float) -> list[ScoreBin]:
    """Counts of scores in ``bins`` equal bins over [0, 1], each with how many of its scores
    alert at ``threshold`` (`exceeds`, the comparison the service decides with).

    Examples
    --------
    >>> [(b.count, b.above_threshold) for b in score_histogram(
    ...     [0.0, 0.1, 0.49, 0.5, 0.5, 0.7, 1.0], bins=2, threshold=0.5)]
    [(3, 0), (4, 2)]
    >>> score_histogram([], bins=2, threshold=0.5)[1]
    ScoreBin(lower=0.5, upper=1.0, count=0, above_threshold=0)
    """
    if bins < 1:
        raise ValueError(f"bins must be at least 1, not {bins}")
    counts = [0] * bins
    above = [0] * bins
    last = bins - 1
    for score in scores:
        # Scores are probabilities; clamping keeps a rounding error at either end in range.
        index = min(max(int(score * bins), 0), last)
        counts[index] += 1
        above[index] += exceeds(score, threshold)
    return [
        ScoreBin(index / bins, (index + 1) / bins, count, above[index])
        for index, count in enumerate(counts)
    ]


def alert_rate(
    raised_at: Iterable[datetime], *, now: datetime, minutes: int, observed_since: datetime
) -> AlertRate:
    """Alerts per minute over the ``minutes`` whole minutes before ``now``.

    ``observed_since`` is when the alert times became complete (the service's start, or the
    oldest alert the bounded log still holds once it has dropped some): a minute wholly before
    it is unknown (``None``), not zero, and the mean is taken over the observed time only.

    Examples
    --------
    >>> from datetime import UTC
    >>> now = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    >>> times = [now - timedelta(seconds=s) for s in (10, 20, 70)]
    >>> rate = alert_rate(times, now=now, minutes=3, observed_since=now - timedelta(minutes=2))
    >>> [minute.alerts for minute in rate.minutes], rate.per_minute, rate.observed_minutes
    ([None, 1, 2], 1.5, 2.0)
    """
    if minutes < 1:
        raise ValueError(f"minutes must be at least 1, not {minutes}")
    start = now - minutes * MINUTE
    counts = [0] * minutes
    for at in raised_at:
        if start <= at < now:
            counts[min(int((at - start) / MINUTE), minutes - 1)] += 1
    buckets = []
    for index, count in enumerate(counts):
        bucket_start = start + index * MINUTE
        unseen = bucket_start + MINUTE <= observed_since
        buckets.append(MinuteCount(bucket_start, None if unseen else count))
    observed = max((now - max(start, observed_since)) / MINUTE, 0.0)
    total = sum(bucket.alerts or 0 for bucket in buckets)
    return AlertRate(buckets, total / observed if observed > 0 else None, observed)
