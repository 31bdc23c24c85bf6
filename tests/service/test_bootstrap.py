"""The embedded composition root wires the input bounds and the memory caps from settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from models.event_time import CONTEXT_KEY, EventTimeWindow
from models.memory_state import InMemoryFeatureState
from models.pending import PendingVectors
from service.bootstrap import build_detector, build_runtime
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
