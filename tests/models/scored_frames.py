"""Scored transactions of one moment, as the offline store returns them, for alert counts."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

MOMENT = pd.Timestamp("2018-08-01 12:00", tz="UTC")


def scored_at_one_moment(scores: Sequence[float], frauds: Sequence[bool]) -> pd.DataFrame:
    """One transaction per score, each on its own card ("a", "b", ...), all at `MOMENT`."""
    return pd.DataFrame(
        {
            "timestamp": [MOMENT] * len(scores),
            "card_id": [chr(ord("a") + index) for index in range(len(scores))],
            "score": list(scores),
            "is_fraud": list(frauds),
            "label_known_at": [MOMENT] * len(scores),
        }
    )
