"""The served bench: every way of serving timed on the same vectors, the online learner first."""

from __future__ import annotations

import math

from pipelines.bench.served import bench_served, ratios_to_first


def test_every_way_of_serving_is_timed_and_compared_with_the_online_learner() -> None:
    rounds: list[int] = []
    costs = bench_served(transactions=3_000, vectors=20, rounds=2, progress=rounds.append)
    assert rounds == [1, 2]
    assert [cost.served for cost in costs] == [
        "online (binned)",
        "batch (hgb, flat trees)",
        "batch (hgb, scikit-learn's calls)",
        "blend 0.25 (online part explains)",
        "blend 0.75 (batch part explains)",
    ]
    for cost in costs:
        assert math.isfinite(cost.score_us)
        assert cost.score_us > 0
        if cost.served.startswith("batch (hgb, scikit"):
            assert cost.explain_us is None
        else:
            assert cost.explain_us is not None
            assert cost.explain_us > 0
    ratios = ratios_to_first(costs)
    assert ratios[0] == 1.0
    assert ratios[1] == costs[1].score_us / costs[0].score_us
