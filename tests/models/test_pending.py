"""Pending entries survive pickling, including those saved before a field was added."""

from __future__ import annotations

import pickle
from array import array

from models.pending import PendingEntry
from models.schemas import Decision
from models.scored import Scored

NEW_FIELDS = ("digest", "corrections")
SCORED = Scored("t1", 0.25, "logistic+3", Decision.PASS, 0.5, ())


def test_an_entry_round_trips_through_pickle() -> None:
    entry = PendingEntry(array("d", [1.0]), "p1", 3, SCORED, False, "c1", (), b"\x01" * 8, 1)
    assert pickle.loads(pickle.dumps(entry)) == entry


def test_an_entry_saved_before_digests_loads_with_none_and_no_corrections() -> None:
    entry = PendingEntry(array("d", [1.0]), "p1", 7, SCORED, True, "c1")
    saved: dict[str, object] = {
        name: getattr(entry, name) for name in PendingEntry.__slots__ if name not in NEW_FIELDS
    }  # as an entry pickled before the new fields existed
    loaded = PendingEntry.__new__(PendingEntry)
    loaded.__setstate__((None, saved))  # what unpickling that entry does
    assert (loaded.terminal_id, loaded.second, loaded.verdict) == ("p1", 7, True)
    assert (loaded.digest, loaded.corrections) == (None, 0)
