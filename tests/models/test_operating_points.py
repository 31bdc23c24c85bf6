"""The what-if's threshold points count the alerts the service would raise."""

from __future__ import annotations

from models.alerting import AlertPolicy, AlertPolicyConfig
from models.operating_points import threshold_points
from tests.models.scored_frames import scored_at_one_moment


def test_a_score_equal_to_a_threshold_is_not_counted_as_an_alert_as_the_service_decides() -> None:
    frame = scored_at_one_moment([0.6, 0.6, 0.8], [True, False, False])
    at, below = threshold_points(frame, days=1, thresholds=[0.6, 0.55])
    policy = AlertPolicy(AlertPolicyConfig(threshold=0.6))
    service = sum(
        policy.decide(card, score, 0)
        for card, score in frame[["card_id", "score"]].itertuples(index=False)
    )
    assert at.alerts_per_day == service == 1
    assert (at.recall, at.precision, at.legitimate_cards_bothered_per_day) == (0.0, 0.0, 1.0)
    assert (below.alerts_per_day, below.recall, below.legitimate_cards_bothered_per_day) == (
        3,
        1.0,
        2.0,
    )
