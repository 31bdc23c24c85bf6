"""The composition roots wire every role's detector, the input bounds and the memory caps from
the settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis

from models.event_time import CONTEXT_KEY, EventTimeWindow
from models.memory_state import InMemoryFeatureState
from models.pending import PendingVectors
from pipelines.state.redis_stores import RedisCooldownBook
from service.bootstrap import build_detector, build_runtime
from service.distributed import fresh_learner, redis_detector
from service.settings import Settings
from tests.builders import make_tx


def test_the_card_and_pending_caps_come_from_the_settings() -> None:
    detector = build_detector(Settings(max_cards=2, max_pending=3))
    detector.score_many([make_tx(index, hours=index, card=f"c{index}") for index in range(6)])
    assert isinstance(detector.state, InMemoryFeatureState)
    assert isinstance(detector.pending, PendingVectors)
    assert detector.state.sizes()["cards"] == 2
    assert len(detector.pending) == 3
    assert detector.vector_of("t5") is not None
    assert detector.vector_of("t0") is None


def test_the_runtime_checks_input_against_its_clock_within_the_settings(tmp_path: Path) -> None:
    runtime = build_runtime(
        Settings(
            data_dir=tmp_path,
            max_clock_skew=timedelta(minutes=5),
            min_event_time=datetime(2010, 1, 1, tzinfo=UTC),
            max_label_corrections=3,
        )
    )
    before = datetime.now(UTC)
    context = runtime.input_context()
    assert context is not None
    window = context[CONTEXT_KEY]
    assert isinstance(window, EventTimeWindow)
    assert window.earliest == datetime(2010, 1, 1, tzinfo=UTC)
    assert (
        before + timedelta(minutes=5) <= window.latest <= datetime.now(UTC) + timedelta(minutes=5)
    )
    assert runtime.detector.policy.max_corrections == 3


def test_every_role_builds_its_detector_from_the_same_settings(redis_url: str) -> None:
    settings = Settings(
        quality_window=321,
        quality_k=7,
        reasons=2,
        max_label_corrections=2,
        alert_threshold=0.3,
        implicit_legit_after=timedelta(days=3),
    )
    embedded = build_detector(settings)
    with redis.Redis.from_url(redis_url) as client:
        distributed, pending, state = redis_detector(
            settings, client, fresh_learner(settings), deferred=False
        )
    for detector in (embedded, distributed):
        assert detector.policy.quality_window == 321
        assert detector.policy.quality_k == 7
        assert detector.policy.reasons == 2
        assert detector.policy.max_corrections == 2
        assert detector.alerting.config.threshold == 0.3
    assert distributed.pending is pending
    assert distributed.state is state
    assert isinstance(distributed.alerting.book, RedisCooldownBook)
    # Implicit legitimate labels mature in the in-memory pending vectors only.
    assert embedded.policy.implicit_legit_after_seconds == 3 * 86_400
    assert distributed.policy.implicit_legit_after_seconds is None
