"""Per-second time buckets: the storage behind every windowed feature.

One entity (a card, a terminal) keeps a sorted run of one-second buckets holding how many events
fell in that second and the sum of an integer value over them (card amounts in hundredths). A
second is the resolution of every window: a window ``(t - n days, t]`` is evaluated on whole
seconds, which is exact for data stamped to the second and never looks into the future. A late
event lands in its own second, wherever that is in the run, so windows stay point-in-time under
disorder.

Buckets hold running (prefix) totals, so any window is two subtractions after a binary search;
integer totals keep every window exact, whichever order the events came in. Each run forgets
buckets older than its horizon as its newest event moves on, so its size is bounded by the
number of distinct seconds in one horizon.

A long run forgets in bulk. Deleting from the front of a list moves the whole list, so a busy
terminal's run of 50,000 buckets cost 28 µs an event when one bucket was dropped per event.
Buckets behind the horizon wait in the list (an eighth of it at most) until they are deleted
together. Nothing can tell: a window that ends at the newest bucket finds the same running
totals there as at the base they would have been folded into, and every other question
deletes them first.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence


class TimeBuckets:
    """Sorted one-second buckets with running counts and sums, oldest first.

    Parameters
    ----------
    horizon
        Seconds of history kept behind the newest event; no window may reach further back.

    Examples
    --------
    >>> buckets = TimeBuckets(horizon=1_000)
    >>> buckets.add(100, 500)
    >>> buckets.add(160, 700)
    >>> buckets.add(130, 100)  # late: lands in its own second
    >>> buckets.windows(160, [61, 31])  # (99, 160] and (129, 160]
    ([3, 2], [1300, 800])
    >>> buckets.add(1_120, 900)  # seconds up to 120 fall out of the horizon
    >>> len(buckets), buckets.windows(1_120, [1_000])
    (3, ([3], [1700]))
    """

    __slots__ = ("_base_count", "_base_sum", "_counts", "_cut", "_horizon", "_keys", "_sums")

    def __init__(self, horizon: int) -> None:
        self._horizon = horizon
        self._keys: list[int] = []
        self._counts: list[int] = []
        """Running count up to and including each bucket (plus ``_base_count``)."""
        self._sums: list[int] = []
        self._base_count = 0
        """Running totals of the buckets already dropped: windows only ever take differences."""
        self._base_sum = 0
        self._cut: int | None = None
        """The horizon's cut while buckets at or before it wait to be deleted; else ``None``."""

    def __setstate__(self, state: tuple[None, dict[str, object]]) -> None:
        # Runs pickled before bulk forgetting hold no `_cut`: nothing of theirs is waiting.
        self._cut = None
        for name, value in state[1].items():
            setattr(self, name, value)

    def __len__(self) -> int:
        """The buckets within the horizon."""
        cut = self._cut
        return len(self._keys) - (0 if cut is None else bisect_right(self._keys, cut))

    @property
    def newest(self) -> int | None:
        """The latest second holding an event, or ``None`` when empty."""
        return self._keys[-1] if self._keys else None

    def previous(self, second: int) -> int | None:
        """The latest second at or before ``second`` that already holds an event."""
        self._settle()
        index = bisect_right(self._keys, second)
        return self._keys[index - 1] if index else None

    def add(self, second: int, value: int = 0, count: int = 1) -> None:
        """Add ``count`` events (negative to retract) with total ``value`` at ``second``."""
        keys, counts, sums = self._keys, self._counts, self._sums
        # By far the common case: an event in time order appends or extends the last bucket.
        if not keys or second > keys[-1]:
            keys.append(second)
            counts.append((counts[-1] if counts else self._base_count) + count)
            sums.append((sums[-1] if sums else self._base_sum) + value)
            if keys[0] <= second - self._horizon:
                self._forget_through(second - self._horizon)
            return
        self._settle()
        index = bisect_right(keys, second)
        if not (index and keys[index - 1] == second):
            keys.insert(index, second)
            counts.insert(index, counts[index - 1] if index else self._base_count)
            sums.insert(index, sums[index - 1] if index else self._base_sum)
            index += 1
        for position in range(index - 1, len(keys)):
            counts[position] += count
            sums[position] += value

    def drop_through(self, second: int) -> None:
        """Forget every bucket at or before ``second``: no window reaches back that far."""
        keys = self._keys
        if not keys or keys[0] > second:
            return
        index = bisect_right(keys, second)
        self._base_count = self._counts[index - 1]
        self._base_sum = self._sums[index - 1]
        del keys[:index]
        del self._counts[:index]
        del self._sums[:index]
        self._cut = None

    def _forget_through(self, cut: int) -> None:
        """`drop_through` for an event in time order: at once in a short run, in bulk in a long
        one, where the buckets behind ``cut`` wait until they are an eighth of the run."""
        keys = self._keys
        waiting = len(keys) >> 3
        if waiting < 8 or keys[waiting] <= cut:
            self.drop_through(cut)
        else:
            self._cut = cut

    def _settle_reaching(self, upper: int, spans: Sequence[int]) -> None:
        """`_settle` if a window reaching back from ``upper`` would see the waiting buckets."""
        cut = self._cut
        if cut is not None and spans and upper - max(spans) < cut:
            self._settle()

    def _settle(self) -> None:
        """Delete the buckets waiting behind the horizon, before an answer that could see them."""
        cut = self._cut
        if cut is not None:
            self._cut = None
            self.drop_through(cut)

    def observe(
        self, second: int, value: int, spans: Sequence[int]
    ) -> tuple[int | None, list[int], list[int]]:
        """Record one event and read its windows: the hot path of every transaction.

        Returns the latest second that held an event before this one (``None`` if none), then
        the counts and sums over ``(second - span, second]`` for each span.
        """
        keys, counts, sums = self._keys, self._counts, self._sums
        if keys and second <= keys[-1]:
            previous = self.previous(second)
            self.add(second, value)
            return (previous, *self.windows(second, spans))
        # In time order, as nearly every event is: append in place, and every window ends at
        # this newest bucket, so its totals are read straight off the running ones.
        previous = keys[-1] if keys else None
        count = (counts[-1] if counts else self._base_count) + 1
        total = (sums[-1] if sums else self._base_sum) + value
        keys.append(second)
        counts.append(count)
        sums.append(total)
        if keys[0] <= second - self._horizon:
            self._forget_through(second - self._horizon)
        if self._cut is not None:
            self._settle_reaching(second, spans)
        window_counts, window_sums = self._ending_at(second, spans, len(keys), count, total)
        return previous, window_counts, window_sums

    def windows(self, upper: int, spans: Sequence[int]) -> tuple[list[int], list[int]]:
        """Counts and sums over the seconds in ``(upper - span, upper]``, for each span."""
        if self._cut is not None:
            self._settle_reaching(upper, spans)
        keys = self._keys
        if not keys:
            return [0] * len(spans), [0] * len(spans)
        end = len(keys) if keys[-1] <= upper else bisect_right(keys, upper)
        if not end:
            return [0] * len(spans), [0] * len(spans)
        return self._ending_at(upper, spans, end, self._counts[end - 1], self._sums[end - 1])

    def _ending_at(
        self, upper: int, spans: Sequence[int], end: int, last_count: int, last_sum: int
    ) -> tuple[list[int], list[int]]:
        """`windows` once the latest bucket at or before ``upper`` is known: the one before
        ``end``, whose running totals are ``last_count`` and ``last_sum``."""
        keys, counts, sums = self._keys, self._counts, self._sums
        base_count, base_sum = self._base_count, self._base_sum
        # In time order the oldest bucket is usually inside the longer windows (the horizon
        # drops anything older than the longest), so those need no search.
        oldest = keys[0]
        window_counts: list[int] = []
        window_sums: list[int] = []
        for span in spans:
            lower = upper - span
            start = 0 if oldest > lower else bisect_right(keys, lower, 0, end)
            if start:
                window_counts.append(last_count - counts[start - 1])
                window_sums.append(last_sum - sums[start - 1])
            else:
                window_counts.append(last_count - base_count)
                window_sums.append(last_sum - base_sum)
        return window_counts, window_sums

    def counts(self, upper: int, spans: Sequence[int]) -> list[int]:
        """The counts of `windows` alone, for runs whose sums nobody reads (terminals)."""
        if self._cut is not None:
            self._settle_reaching(upper, spans)
        keys = self._keys
        if not keys:
            return [0] * len(spans)
        end = len(keys) if keys[-1] <= upper else bisect_right(keys, upper)
        if not end:
            return [0] * len(spans)
        counts = self._counts
        last, base, oldest = counts[end - 1], self._base_count, keys[0]
        window_counts: list[int] = []
        for span in spans:
            lower = upper - span
            start = 0 if oldest > lower else bisect_right(keys, lower, 0, end)
            window_counts.append(last - counts[start - 1] if start else last - base)
        return window_counts
