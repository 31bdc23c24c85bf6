"""Reversed and refused verdicts reach the log, with their ids."""

from __future__ import annotations

import logging

import pytest

from models.detector import LearnOutcome
from pipelines.label_log import log_corrections


def test_corrections_and_refusals_are_logged_with_distinct_ids(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outcome = LearnOutcome(corrections=["t1"], refused=["t1"] * 5 + [f"x{i}" for i in range(12)])
    with caplog.at_level(logging.INFO, logger="pipelines.label_log"):
        log_corrections(outcome)
    corrected, refused = caplog.records
    assert corrected.levelno == logging.INFO
    assert "1 labels reversed" in corrected.getMessage()
    assert refused.levelno == logging.WARNING
    message = refused.getMessage()
    assert message.startswith("17 labels refused")
    assert message.count("t1") == 1
    assert "(and 3 more ids)" in message


def test_nothing_to_say_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="pipelines.label_log"):
        log_corrections(LearnOutcome(learned=3))
    assert caplog.records == []
