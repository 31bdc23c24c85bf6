"""The offline store's matured days as the metrics read them: what a what-if is taken over.

A transaction's label is final once the label delay has passed (a chargeback, or the implicit
legitimate label at maturity), so the window ends at the last midnight (UTC) one delay before
the store's latest label and reaches ``days`` whole days back from there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd

from pipelines.retrain.offline_store import ParquetOfflineStore


@dataclass(frozen=True)
class MaturedRows:
    frame: pd.DataFrame
    """``timestamp, card_id, score, is_fraud, label_known_at``: one row per transaction."""
    start: datetime
    end: datetime
    """Exclusive."""

    @property
    def days(self) -> float:
        return (self.end - self.start) / timedelta(days=1)


def matured_rows(
    store: ParquetOfflineStore, days: int, label_delay: timedelta, now: datetime | None = None
) -> MaturedRows | None:
    """The last ``days`` matured days of ``store`` as of ``now`` (default: its latest label),
    each transaction with its latest label known by then; ``None`` for an empty store."""
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    now = now or store.latest_label_time()
    if now is None:
        return None
    end = pd.Timestamp(now - label_delay).floor("D").to_pydatetime()
    start = end - timedelta(days=days)
    rows = store.read(start, end, known_by=now)
    frame = pd.DataFrame(
        {
            "timestamp": rows["event_time"],
            "card_id": rows["card_id"],
            "score": rows["score"],
            "is_fraud": rows["is_fraud"].astype(bool),
            "label_known_at": rows["label_time"],
        }
    )
    return MaturedRows(frame, start, end)
