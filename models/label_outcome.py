"""What becomes of a label: learned, a correction, a repeat, unknown, or refused.

A label repeating the verdict already learned is ignored (a replayed label topic learns nothing
twice); a reversed verdict is learned again, at most `DetectorPolicy.max_corrections` times per
transaction, so that flipping one id back and forth cannot drag the model along.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from models.pending import PendingEntry
from models.schemas import Label


class LabelStatus(StrEnum):
    """What became of one label."""

    LEARNED = "learned"
    CORRECTED = "corrected"
    """It reversed the verdict learned before, and was learned again."""
    REPEATED = "repeated"
    """It repeated the verdict already learned: nothing to learn."""
    UNKNOWN = "unknown"
    """Its transaction was never scored here, or its vector expired."""
    REFUSED = "refused"
    """It would reverse a verdict already corrected as often as the policy allows."""


@dataclass(slots=True)
class LearnOutcome:
    """What became of a batch of labels."""

    learned: int = 0
    corrected: int = 0
    """Labels that reversed an earlier verdict on the same transaction (learned again)."""
    repeated: int = 0
    """Labels repeating the verdict already learned: ignored, so a replay learns nothing twice."""
    unknown: list[str] = field(default_factory=list)
    """Ids never scored here, or whose vector expired before the label came."""
    refused: list[str] = field(default_factory=list)
    """Ids whose verdict was reversed once more than `DetectorPolicy.max_corrections` allows."""
    corrections: list[str] = field(default_factory=list)
    """Ids whose verdict was reversed (and learned again), for the log."""
    statuses: list[LabelStatus] = field(default_factory=list)
    """Each label's fate, in the order given."""

    def add(self, label: Label, entry: PendingEntry | None, max_corrections: int) -> LabelStatus:
        """Count ``label``, whose transaction was kept as ``entry`` (None: never scored or
        expired), and say what becomes of it; the entry itself is left as it is.

        Examples
        --------
        >>> from array import array
        >>> from datetime import datetime, UTC
        >>> entry = PendingEntry(array("d"), "p1", 0, None, verdict=False)
        >>> label = Label(transaction_id="t1", is_fraud=True, source="analyst",
        ...               labelled_at=datetime(2018, 4, 1, tzinfo=UTC))
        >>> outcome = LearnOutcome()
        >>> outcome.add(label, entry, max_corrections=1), outcome.corrections
        (<LabelStatus.CORRECTED: 'corrected'>, ['t1'])
        >>> entry.corrections = 1
        >>> outcome.add(label, entry, max_corrections=1), outcome.refused
        (<LabelStatus.REFUSED: 'refused'>, ['t1'])
        >>> outcome.add(label, None, max_corrections=1), outcome.learned
        (<LabelStatus.UNKNOWN: 'unknown'>, 1)
        """
        transaction_id = label.transaction_id
        if entry is None:
            self.unknown.append(transaction_id)
            status = LabelStatus.UNKNOWN
        elif entry.verdict is label.is_fraud:
            self.repeated += 1
            status = LabelStatus.REPEATED
        elif entry.verdict is None:
            self.learned += 1
            status = LabelStatus.LEARNED
        elif entry.corrections >= max_corrections:
            self.refused.append(transaction_id)
            status = LabelStatus.REFUSED
        else:
            self.learned += 1
            self.corrected += 1
            self.corrections.append(transaction_id)
            status = LabelStatus.CORRECTED
        self.statuses.append(status)
        return status
