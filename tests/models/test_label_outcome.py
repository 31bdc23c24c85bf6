"""Each label's fate, counted: the correction bound holds per transaction."""

from __future__ import annotations

from array import array

import pytest

from models.label_outcome import LabelStatus, LearnOutcome
from models.pending import PendingEntry
from models.schemas import Decision
from models.scored import Scored
from tests.builders import make_label


def entry(verdict: bool | None, corrections: int = 0) -> PendingEntry:
    scored = Scored("t1", 0.5, "logistic+0", Decision.PASS, 0.5, ())
    return PendingEntry(array("d", [1.0]), "p1", 0, scored, verdict, corrections=corrections)


@pytest.mark.parametrize(
    ("kept", "is_fraud", "bound", "status"),
    [
        (None, True, 1, LabelStatus.UNKNOWN),
        (entry(None), True, 1, LabelStatus.LEARNED),
        (entry(True), True, 1, LabelStatus.REPEATED),
        (entry(False), True, 1, LabelStatus.CORRECTED),
        (entry(False, corrections=1), True, 1, LabelStatus.REFUSED),
        (entry(False, corrections=1), True, 2, LabelStatus.CORRECTED),
        (entry(True), False, 0, LabelStatus.REFUSED),
    ],
)
def test_a_label_is_counted_under_its_fate(
    kept: PendingEntry | None, is_fraud: bool, bound: int, status: LabelStatus
) -> None:
    outcome = LearnOutcome()
    before = None if kept is None else (kept.verdict, kept.corrections)
    assert outcome.add(make_label(1, is_fraud=is_fraud), kept, bound) is status
    assert outcome.statuses == [status]
    assert outcome.learned == (status in (LabelStatus.LEARNED, LabelStatus.CORRECTED))
    assert outcome.corrected == len(outcome.corrections) == (status is LabelStatus.CORRECTED)
    assert len(outcome.unknown) == (status is LabelStatus.UNKNOWN)
    assert len(outcome.refused) == (status is LabelStatus.REFUSED)
    assert outcome.repeated == (status is LabelStatus.REPEATED)
    # The outcome only counts: the entry's verdict and corrections are the detector's to set.
    assert before == (None if kept is None else (kept.verdict, kept.corrections))
