"""What is logged of a batch of labels: every reversed verdict, and every reversal refused.

A verdict flipped back and forth is either a labelling system at odds with itself or someone
steering the model; either way an operator should see it, with the ids.
"""

from __future__ import annotations

import logging

from models.detector import LearnOutcome

logger = logging.getLogger(__name__)

SHOWN_IDS = 10
"""Ids spelled out per log line; the rest are counted."""


def log_corrections(outcome: LearnOutcome) -> None:
    """Log the labels of ``outcome`` that reversed a verdict, and those refused for it."""
    if outcome.corrections:
        logger.info(
            "%d labels reversed a learned verdict and were learned again, for %s",
            len(outcome.corrections),
            _ids(outcome.corrections),
        )
    if outcome.refused:
        logger.warning(
            "%d labels refused: their transactions' verdicts were already corrected as often "
            "as FRAUDSTREAM_MAX_LABEL_CORRECTIONS allows, for %s",
            len(outcome.refused),
            _ids(outcome.refused),
        )


def _ids(ids: list[str]) -> str:
    """The distinct ids, the first few spelled out."""
    distinct = list(dict.fromkeys(ids))
    shown = ", ".join(distinct[:SHOWN_IDS])
    more = len(distinct) - SHOWN_IDS
    return shown if more <= 0 else f"{shown} (and {more} more ids)"
