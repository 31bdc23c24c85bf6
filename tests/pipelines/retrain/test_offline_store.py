"""The offline store: date-partitioned Parquet, written only by flush, read back by window."""

from __future__ import annotations

from array import array
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq

from models.pending import PendingEntry
from models.schemas import Decision, Label, LabelSource
from models.scored import Scored
from pipelines.retrain.offline_store import MemoryOfflineStore, ParquetOfflineStore

NAMES = ("amount", "is_night")
DAY = datetime(2018, 8, 1, 12, tzinfo=UTC)


def _entry(index: int, when: datetime) -> PendingEntry:
    scored = Scored(f"tx-{index}", 0.1 * index, "m000003+5", Decision.PASS, 0.5, ())
    return PendingEntry(
        array("d", [10.0 + index, 1.0]), "term-1", int(when.timestamp()), scored, None, "card-1"
    )


def _label(index: int, fraud: bool, known: datetime) -> Label:
    return Label(
        transaction_id=f"tx-{index}", is_fraud=fraud, labelled_at=known, source=LabelSource.ANALYST
    )


def test_rows_reach_disk_on_flush_partitioned_by_event_date(tmp_path: Path) -> None:
    store = ParquetOfflineStore(tmp_path, NAMES)
    for index in range(3):
        when = DAY + timedelta(days=index)
        store.append(_entry(index, when), _label(index, index == 1, when + timedelta(days=7)))
    assert store.buffered == 3
    assert not list(tmp_path.rglob("*.parquet"))  # nothing written before the flush
    store.flush()
    assert store.buffered == 0
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "date=2018-08-01",
        "date=2018-08-02",
        "date=2018-08-03",
    ]
    # A fresh store (another process) reads what was flushed: the vector as scored, the
    # label, its source and time, and the score and version given at arrival.
    rows = ParquetOfflineStore(tmp_path, NAMES).read(DAY - timedelta(days=1), DAY + timedelta(10))
    assert rows["transaction_id"].tolist() == ["tx-0", "tx-1", "tx-2"]
    assert rows["f_amount"].tolist() == [10.0, 11.0, 12.0]
    assert rows["is_fraud"].tolist() == [False, True, False]
    assert rows["label_source"].unique().tolist() == ["analyst"]
    assert rows["model_version"].unique().tolist() == ["m000003+5"]
    assert rows["score"].tolist() == [0.0, 0.1, 0.2]
    assert rows["event_time"].iloc[0] == DAY


def test_windows_horizons_and_corrections(tmp_path: Path) -> None:
    for store in (ParquetOfflineStore(tmp_path, NAMES), MemoryOfflineStore(NAMES)):
        known = DAY + timedelta(days=7)
        store.append(_entry(0, DAY), _label(0, False, known))
        store.append(_entry(1, DAY + timedelta(days=2)), _label(1, True, known))
        store.flush()
        # Reversed two days later: a new row; reading keeps the latest label known by then.
        store.append(_entry(0, DAY), _label(0, True, known + timedelta(days=2)))
        store.flush()
        end = DAY + timedelta(days=30)
        assert store.read(DAY, end)["is_fraud"].tolist() == [True, True]
        before = store.read(DAY, end, known_by=known + timedelta(days=1))
        assert before["is_fraud"].tolist() == [False, True]
        assert store.read(DAY, DAY + timedelta(days=1))["transaction_id"].tolist() == ["tx-0"]
        assert store.read(DAY, end, known_by=known - timedelta(seconds=1)).empty


def test_the_latest_label_time_is_the_stores_now(tmp_path: Path) -> None:
    store = ParquetOfflineStore(tmp_path, NAMES)
    assert store.latest_label_time() is None
    store.append(_entry(0, DAY), _label(0, False, DAY + timedelta(days=7)))
    store.append(_entry(1, DAY), _label(1, False, DAY + timedelta(days=9)))
    store.flush()
    assert store.latest_label_time() == DAY + timedelta(days=9)


def test_rows_carry_the_order_they_were_learned_in_across_dates_and_processes(
    tmp_path: Path,
) -> None:
    store = ParquetOfflineStore(tmp_path, NAMES)
    assert store.position == 0
    # Learned in this order, over three event dates: one flush writes a file per date.
    for index, day in enumerate([2, 0, 1, 0]):
        when = DAY + timedelta(days=day)
        store.append(_entry(index, when), _label(index, index == 2, when + timedelta(days=7)))
    store.flush()
    assert store.position == 4
    again = ParquetOfflineStore(tmp_path, NAMES)  # another process: the position from names
    assert again.position == 4
    again.append(_entry(4, DAY), _label(4, True, DAY + timedelta(days=8)))
    again.flush()
    rows = ParquetOfflineStore(tmp_path, NAMES).since(0)
    assert rows["transaction_id"].tolist() == ["tx-0", "tx-1", "tx-2", "tx-3", "tx-4"]
    assert rows["sequence"].tolist() == [1, 2, 3, 4, 5]
    assert rows["decision"].unique().tolist() == ["pass"]
    assert rows["threshold"].unique().tolist() == [0.5]
    assert again.since(3)["transaction_id"].tolist() == ["tx-3", "tx-4"]
    assert again.since(5).empty


def test_files_written_before_sequences_read_as_before_every_position(tmp_path: Path) -> None:
    store = ParquetOfflineStore(tmp_path, NAMES)
    store.append(_entry(0, DAY), _label(0, True, DAY + timedelta(days=7)))
    store.flush()
    [path] = tmp_path.rglob("*.parquet")
    old = pq.read_table(path).drop_columns(["sequence", "decision", "threshold"])
    path.unlink()
    pq.write_table(old, path.with_name("part-01733000000000000000-123-000001.parquet"))

    reopened = ParquetOfflineStore(tmp_path, NAMES)
    assert reopened.position == 0
    assert reopened.since(0).empty
    rows = reopened.read(DAY - timedelta(days=1), DAY + timedelta(days=1))
    assert rows["transaction_id"].tolist() == ["tx-0"]
    assert rows["sequence"].tolist() == [0]
