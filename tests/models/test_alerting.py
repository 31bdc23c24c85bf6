"""The alert policy: a fixed threshold, or a daily budget held by a running quantile."""

from __future__ import annotations

import random
from typing import Any

import pytest

from models.alerting import AlertPolicy, AlertPolicyConfig
from models.state import DAY


def test_threshold_and_cooldown_per_card() -> None:
    policy = AlertPolicy(AlertPolicyConfig(threshold=0.7, cooldown_seconds=DAY))
    assert policy.decide("a", 0.71, second=0)
    assert not policy.decide("a", 0.99, second=DAY - 1)
    assert policy.decide("b", 0.99, second=10)
    assert policy.decide("a", 0.71, second=DAY)
    assert not policy.decide("c", 0.7, second=DAY)


def test_daily_budget_alerts_about_k_cards_a_day() -> None:
    rng = random.Random(0)
    budget = 20
    policy = AlertPolicy(AlertPolicyConfig(daily_budget=budget, cooldown_seconds=DAY))
    per_day = 2_000
    alerted_on_last_days = []
    for day in range(10):
        alerted = 0
        for index in range(per_day):
            second = day * DAY + index * (DAY // per_day)
            card = f"card-{rng.randrange(100_000)}"
            alerted += policy.decide(card, rng.random() ** 4, second)
        alerted_on_last_days.append(alerted)
    # After warm-up the threshold sits where about `budget` scores a day clear it.
    for alerted in alerted_on_last_days[3:]:
        assert budget * 0.5 <= alerted <= budget * 1.6
    assert 0.0 < policy.threshold < 1.0


@pytest.mark.parametrize(
    ("field", "value"), [("threshold", 1.5), ("daily_budget", 0), ("cooldown_seconds", -1)]
)
def test_config_refuses_nonsense(field: str, value: float) -> None:
    settings: dict[str, Any] = {field: value}
    with pytest.raises(ValueError, match=field):
        AlertPolicyConfig(**settings)
