"""Time buckets against a brute-force count over every event, including late ones."""

from __future__ import annotations

import pickle
import random

import pytest

from models.windows import TimeBuckets


def _brute(events: list[tuple[int, int, int]], upper: int, lower: int) -> tuple[int, int]:
    inside = [(count, value) for second, value, count in events if lower < second <= upper]
    return sum(count for count, _ in inside), sum(value for _, value in inside)


@pytest.mark.parametrize("seed", range(5))
def test_windows_match_brute_force_under_disorder_retractions_and_pruning(seed: int) -> None:
    rng = random.Random(seed)
    buckets = TimeBuckets(horizon=10**9)
    events: list[tuple[int, int, int]] = []
    dropped_through = -1
    for step in range(400):
        # Mostly in order, sometimes late, sometimes in a second that already holds events.
        second = step * 10 + (rng.randint(-200, 0) if rng.random() < 0.3 else 0)
        second = max(second, dropped_through + 1)
        count = -1 if rng.random() < 0.1 else 1
        value = rng.randint(1, 10_000)
        buckets.add(second, value, count)
        events.append((second, value, count))
        if rng.random() < 0.05:
            dropped_through = max(dropped_through, second - 500)
            buckets.drop_through(dropped_through)
        upper = rng.randint(dropped_through, step * 10 + 50)
        lowers = sorted(rng.randint(dropped_through, upper) for _ in range(3))
        spans = [upper - lower for lower in lowers]
        counts, sums = buckets.windows(upper, spans)
        for lower, count_seen, sum_seen in zip(lowers, counts, sums, strict=True):
            assert (count_seen, sum_seen) == _brute(events, upper, lower)
        assert buckets.counts(upper, spans) == counts


def test_adding_in_order_forgets_what_falls_out_of_the_horizon() -> None:
    buckets = TimeBuckets(horizon=100)
    for second in range(0, 1_000, 10):
        buckets.add(second, 1)
    assert len(buckets) == 10  # seconds 900 to 990: 890 and older are beyond the horizon
    assert buckets.windows(990, [100, 1_000]) == ([10, 10], [10, 10])


def test_previous_and_newest() -> None:
    buckets = TimeBuckets(horizon=1_000)
    assert buckets.newest is None
    assert buckets.previous(10) is None
    buckets.add(10)
    buckets.add(30)
    assert buckets.newest == 30
    assert buckets.previous(29) == 10
    assert buckets.previous(30) == 30


def test_empty_windows_are_zero() -> None:
    assert TimeBuckets(horizon=10).windows(100, [0, 50]) == ([0, 0], [0, 0])


@pytest.mark.parametrize("seed", range(3))
def test_windows_reaching_past_the_oldest_bucket_equal_a_search(seed: int) -> None:
    # Windows whose start lies before the oldest bucket skip the binary search: they must
    # still answer exactly what the brute force does, at, before and after that bucket.
    rng = random.Random(seed)
    buckets = TimeBuckets(horizon=500)
    events: list[tuple[int, int, int]] = []
    second = 0
    for _ in range(300):
        second += rng.randint(0, 40)
        value = rng.randint(1, 100)
        buckets.add(second, value)
        events.append((second, value, 1))
        oldest = second - 500  # what the horizon has dropped, at most
        upper = second - rng.randint(0, 60)
        spans = sorted({rng.randint(1, 600) for _ in range(4)} | {upper - oldest})
        spans = [span for span in spans if span > 0]
        counts, sums = buckets.windows(upper, spans)
        kept = [event for event in events if event[0] > oldest]
        for span, count_seen, sum_seen in zip(spans, counts, sums, strict=True):
            assert (count_seen, sum_seen) == _brute(kept, upper, upper - span)
        assert buckets.counts(upper, spans) == counts


def test_counts_of_an_empty_or_future_run_are_zero() -> None:
    buckets = TimeBuckets(horizon=100)
    assert buckets.counts(50, [10, 20]) == [0, 0]
    buckets.add(60)
    assert buckets.counts(50, [10, 20]) == [0, 0]
    assert buckets.counts(60, [1, 20]) == [1, 1]


@pytest.mark.parametrize("seed", range(3))
def test_observe_answers_as_add_then_windows_in_order_or_late(seed: int) -> None:
    # `observe` reads in-order events' windows off the newest totals: it must answer exactly
    # what recording the event and then searching the windows does, pruning included.
    rng = random.Random(seed)
    observed, reference = TimeBuckets(horizon=300), TimeBuckets(horizon=300)
    spans = [10, 60, 300]
    second = 0
    for _ in range(500):
        second += rng.randint(0, 15)
        # Mostly in order; sometimes late, or again in the newest second.
        at = second - rng.randint(0, 40) if rng.random() < 0.2 else second
        value = rng.randint(1, 1_000)
        newest = reference.newest
        late = newest is not None and at <= newest
        previous = reference.previous(at) if late else newest
        reference.add(at, value)
        expected = (previous, *reference.windows(at, spans))
        assert observed.observe(at, value, spans) == expected


class EagerBuckets(TimeBuckets):
    """Forgets each bucket the moment it falls behind the horizon, as runs did before."""

    __slots__ = ()

    def _forget_through(self, cut: int) -> None:
        self.drop_through(cut)


@pytest.mark.parametrize("seed", range(4))
def test_a_long_run_forgets_in_bulk_and_answers_as_if_it_forgot_at_once(seed: int) -> None:
    # Long runs (a busy terminal) delete old buckets in bulk. Every answer must be the one of
    # a run that forgot each bucket at once: late events behind the horizon, windows reaching
    # behind it and retractions included.
    rng = random.Random(seed)
    bulk, eager = TimeBuckets(horizon=2_000), EagerBuckets(horizon=2_000)
    spans = [50, 500, 2_000]
    second = 0
    for step in range(6_000):
        second += rng.randint(1, 4)
        at = second
        if rng.random() < 0.05:  # late, sometimes by more than the horizon
            at -= rng.choice([rng.randint(1, 200), rng.randint(2_000, 2_600)])
        value = rng.randint(1, 1_000)
        if rng.random() < 0.03:  # added without a read, as fraud reports and retractions are
            change = rng.choice([1, -1])
            bulk.add(at, change * value, count=change)
            eager.add(at, change * value, count=change)
        else:
            assert bulk.observe(at, value, spans) == eager.observe(at, value, spans), step
        reach = rng.choice([spans, [2_500], [10, 3_000]])
        upper = second - rng.choice([0, 0, 300, 2_100])
        assert bulk.windows(upper, reach) == eager.windows(upper, reach), step
        assert bulk.counts(upper, reach) == eager.counts(upper, reach), step
        assert len(bulk) == len(eager)
        if step % 97 == 0:
            assert bulk.previous(upper) == eager.previous(upper)
    # Deleted in bulk: what waits behind the horizon stays under an eighth of the run.
    assert len(bulk._keys) <= len(eager._keys) * 9 // 8 + 8


def test_a_run_pickled_before_bulk_forgetting_loads_and_answers() -> None:
    buckets = TimeBuckets(horizon=100)
    for second in range(0, 500, 5):
        buckets.add(second, 10)
    # The state a snapshot of the earlier code holds: the same slots, without `_cut`.
    _, slots = pickle.loads(pickle.dumps(buckets.__reduce_ex__(4)[2]))
    del slots["_cut"]
    restored = TimeBuckets.__new__(TimeBuckets)
    restored.__setstate__((None, slots))
    assert restored.windows(495, [50, 100]) == buckets.windows(495, [50, 100])
    assert restored.observe(505, 10, [100]) == buckets.observe(505, 10, [100])
    # (455, 505] holds 460 to 495 and 505; (405, 505] holds 410 to 495 and 505.
    again = pickle.loads(pickle.dumps(restored))
    assert again.windows(505, [50, 100]) == ([9, 19], [90, 190])
