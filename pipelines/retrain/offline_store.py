"""The offline store: every labelled example, as it was scored, for the batch retrain job.

A row is what the learner knew when it learned a label: the feature vector the transaction was
scored with (never recomputed), the label, its source and when it was known, the transaction's
event time, and the score, decision, threshold and model version it got at arrival (the
champion's recorded score, which the retrain job compares a candidate against on the same rows).

On disk: Parquet files partitioned by the transaction's event date,
``<root>/date=YYYY-MM-DD/part-<first>-<last>-<time>-<pid>.parquet``. Rows are buffered and
written by `flush`, which the learning paths call before they acknowledge the labels (the HTTP
answer, the Kafka offset commit): an acknowledged label is never lost. A file is written under
a temporary name, synced, renamed, and its directory synced, so a reader never sees half of
one and a power cut forgets no acknowledged row. A later correction of a label is a new row;
reading keeps, per transaction, the latest label known by the reading's horizon.

Every row also carries a ``sequence``: the order in which its label was learned, counted on
from the store's highest at start-up (the file names carry each file's first and last, so
finding it reads no file). A snapshot of the serving state records the store's `position`,
the last sequence it reflects; an embedded restart learns the rows after it again
(`ParquetOfflineStore.since`), in order, from the vectors stored here.

`MemoryOfflineStore` keeps the same tables in memory: the evaluation replay's store.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from models.pending import PendingEntry
from models.schemas import Label
from pipelines.durable_files import sync_directory

FEATURE_PREFIX = "f_"
"""Feature columns are the feature names behind this prefix, apart from the row's metadata."""

META_COLUMNS = (
    "transaction_id",
    "card_id",
    "terminal_id",
    "event_time",
    "label_time",
    "label_source",
    "is_fraud",
    "score",
    "model_version",
    "decision",
    "threshold",
    "sequence",
)


class ExampleSink(Protocol):
    """Where learned labels go: `append` as each is learned, `flush` before acknowledging."""

    def append(self, entry: PendingEntry, label: Label) -> None: ...

    def flush(self) -> None: ...


class LabelClock:
    """A sink that also keeps the latest label time it was given: the event time of a process
    that learns but does not score (the distributed learner), as the store's latest label is
    for ``fraudstream retrain`` on its own."""

    def __init__(self, sink: ExampleSink, latest: datetime | None = None) -> None:
        self.sink = sink
        self.latest = latest

    def append(self, entry: PendingEntry, label: Label) -> None:
        self.sink.append(entry, label)
        if self.latest is None or label.labelled_at > self.latest:
            self.latest = label.labelled_at

    def flush(self) -> None:
        self.sink.flush()

    def now(self) -> datetime | None:
        return self.latest


def feature_columns(names: Sequence[str]) -> list[str]:
    return [FEATURE_PREFIX + name for name in names]


def _schema(names: Sequence[str]) -> pa.Schema:
    fields = [
        pa.field("transaction_id", pa.string()),
        pa.field("card_id", pa.string()),
        pa.field("terminal_id", pa.string()),
        pa.field("event_time", pa.timestamp("s", tz="UTC")),
        pa.field("label_time", pa.timestamp("us", tz="UTC")),
        pa.field("label_source", pa.string()),
        pa.field("is_fraud", pa.bool_()),
        pa.field("score", pa.float64()),
        pa.field("model_version", pa.string()),
        pa.field("decision", pa.string()),
        pa.field("threshold", pa.float64()),
        # The shadow challengers' scores of the same vector, by name (null: none shadowed):
        # what-ifs of a challenger read its own scores, given before it learned the label.
        pa.field("challenger_scores", pa.map_(pa.string(), pa.float64())),
        pa.field("sequence", pa.int64()),
    ]
    fields += [pa.field(column, pa.float64()) for column in feature_columns(names)]
    return pa.schema(fields)


class _Buffer:
    """Rows appended since the last flush, as columns."""

    def __init__(self, names: Sequence[str], position: int = 0) -> None:
        self.names = tuple(names)
        self.schema = _schema(names)
        self.columns: dict[str, list[Any]] = {field.name: [] for field in self.schema}
        self.position = position
        """The sequence of the last row appended."""

    def __len__(self) -> int:
        return len(self.columns["transaction_id"])

    def append(self, entry: PendingEntry, label: Label) -> None:
        columns = self.columns
        self.position += 1
        columns["sequence"].append(self.position)
        columns["transaction_id"].append(label.transaction_id)
        columns["card_id"].append(entry.card_id)
        columns["terminal_id"].append(entry.terminal_id)
        columns["event_time"].append(datetime.fromtimestamp(entry.second, UTC))
        columns["label_time"].append(label.labelled_at)
        columns["label_source"].append(str(label.source.value))
        columns["is_fraud"].append(label.is_fraud)
        columns["score"].append(entry.scored.score)
        columns["model_version"].append(entry.scored.model_version)
        columns["decision"].append(str(entry.scored.decision.value))
        columns["threshold"].append(entry.scored.threshold)
        columns["challenger_scores"].append(list(entry.shadow) if entry.shadow else None)
        for column, value in zip(feature_columns(self.names), entry.values, strict=True):
            columns[column].append(value)

    def take(self) -> pa.Table:
        table = pa.table(self.columns, schema=self.schema)
        self.columns = {name: [] for name in self.columns}
        return table


def _by_date(table: pa.Table) -> dict[date, pa.Table]:
    days = table.column("event_time").to_pandas().dt.date
    return {
        day: table.take(pa.array(days.index[days == day].to_numpy())) for day in sorted(set(days))
    }


def _read_file(path: Path, schema: pa.Schema) -> pa.Table:
    """A file as ``schema`` has it. Columns a file written before them lacks read as null, but
    its sequence as 0: it comes before any position a snapshot recorded. Only the schema's
    columns are read: a reader of the metadata alone (the what-if) skips the features."""
    present = set(pq.read_schema(path).names)
    table = pq.read_table(path, columns=[name for name in schema.names if name in present])
    for field in schema:
        if field.name not in table.column_names:
            missing = (
                pa.array([0] * len(table), field.type)
                if field.name == "sequence"
                else pa.nulls(len(table), field.type)
            )
            table = table.append_column(field, missing)
    return table.select(schema.names).cast(schema)


_PART = re.compile(r"part-(?P<first>[0-9]+)-(?P<last>[0-9]+)-[0-9]+-[0-9]+\.parquet")
"""A file's name: its first and last sequence, the time it was written, the writer's pid."""


def _last_sequence(path: Path) -> int:
    """The last sequence in the file at ``path``, from its name (0: written before sequences)."""
    named = _PART.fullmatch(path.name)
    return 0 if named is None else int(named["last"])


def _as_frame(tables: list[pa.Table], schema: pa.Schema) -> pd.DataFrame:
    table = pa.concat_tables(tables) if tables else schema.empty_table()
    frame: pd.DataFrame = table.to_pandas()
    return frame


def select(
    frame: pd.DataFrame, start: datetime, end: datetime, known_by: datetime | None
) -> pd.DataFrame:
    """Rows of transactions in ``[start, end)`` whose label was known by ``known_by``: the
    latest such label per transaction, ordered by event time then transaction id (so the same
    rows come back in the same order whatever files they were read from)."""
    rows = frame.loc[(frame["event_time"] >= start) & (frame["event_time"] < end)]
    if known_by is not None:
        rows = rows.loc[rows["label_time"] <= known_by]
    rows = rows.sort_values(["transaction_id", "label_time", "sequence"], kind="stable")
    rows = rows.drop_duplicates("transaction_id", keep="last")
    return rows.sort_values(["event_time", "transaction_id"], kind="stable").reset_index(drop=True)


class ParquetOfflineStore:
    """Labelled examples in date-partitioned Parquet files under ``root``.

    Examples
    --------
    >>> import tempfile
    >>> store = ParquetOfflineStore(Path(tempfile.mkdtemp()), ["amount"])
    >>> store.read(datetime(2018, 1, 1, tzinfo=UTC), datetime(2019, 1, 1, tzinfo=UTC)).shape
    (0, 14)
    """

    def __init__(self, root: Path, feature_names: Sequence[str]) -> None:
        self.root = root
        self.feature_names = tuple(feature_names)
        highest = max(map(_last_sequence, self._files()), default=0)
        self._buffer = _Buffer(feature_names, highest)

    @property
    def buffered(self) -> int:
        """Rows appended and not yet written."""
        return len(self._buffer)

    @property
    def position(self) -> int:
        """The sequence of the last row appended (0: none yet): what a snapshot reflects."""
        return self._buffer.position

    def _files(self) -> list[Path]:
        return sorted(self.root.glob("date=*/part-*.parquet"))

    def append(self, entry: PendingEntry, label: Label) -> None:
        self._buffer.append(entry, label)

    def flush(self) -> None:
        """Write the buffered rows, one new file per event date they fall on, durably."""
        if not len(self._buffer):
            return
        for day, part in _by_date(self._buffer.take()).items():
            directory = self.root / f"date={day.isoformat()}"
            created = not directory.is_dir()
            directory.mkdir(parents=True, exist_ok=True)
            sequences = part.column("sequence")
            first, last = pc.min(sequences).as_py(), pc.max(sequences).as_py()
            name = f"part-{first:012d}-{last:012d}-{time.time_ns():020d}-{os.getpid()}"
            temporary = directory / f".{name}.tmp"
            with temporary.open("wb") as handle:
                pq.write_table(part, handle)
                handle.flush()
                os.fsync(handle.fileno())
            temporary.rename(directory / f"{name}.parquet")
            # The new name lives in the directory, and a new directory in the root.
            sync_directory(directory)
            if created:
                sync_directory(self.root)

    def since(self, position: int) -> pd.DataFrame:
        """Every row written after ``position``, in the order the labels were learned."""
        tables = [
            _read_file(path, self._buffer.schema)
            for path in self._files()
            if _last_sequence(path) > position
        ]
        frame = _as_frame(tables, self._buffer.schema)
        rows = frame.loc[frame["sequence"] > position]
        return rows.sort_values("sequence", kind="stable").reset_index(drop=True)

    def read(
        self, start: datetime, end: datetime, known_by: datetime | None = None
    ) -> pd.DataFrame:
        """The examples of transactions in ``[start, end)`` labelled by ``known_by``."""
        tables = []
        day = start.astimezone(UTC).date()
        while datetime.combine(day, datetime.min.time(), tzinfo=UTC) < end:
            directory = self.root / f"date={day.isoformat()}"
            if directory.is_dir():
                tables += [
                    _read_file(path, self._buffer.schema)
                    for path in sorted(directory.glob("part-*.parquet"))
                ]
            day += timedelta(days=1)
        return select(_as_frame(tables, self._buffer.schema), start, end, known_by)

    def latest_label_time(self, days: int = 62) -> datetime | None:
        """When the latest label written was known (looking at the last ``days`` partitions):
        the store's own "now" for a job run with no service."""
        directories = sorted(self.root.glob("date=*"))[-days:]
        latest: datetime | None = None
        for path in (path for directory in directories for path in directory.glob("*.parquet")):
            column = pq.read_table(path, columns=["label_time"]).column("label_time")
            if len(column):
                moment = pd.Timestamp(pc.max(column).as_py()).to_pydatetime()
                latest = moment if latest is None else max(latest, moment)
        return latest


class MemoryOfflineStore:
    """The same rows held in memory (flushed through the same Arrow schema as the files): the
    evaluation replay's store."""

    def __init__(self, feature_names: Sequence[str]) -> None:
        self.feature_names = tuple(feature_names)
        self._buffer = _Buffer(feature_names)
        self._frames: list[pd.DataFrame] = []

    def append(self, entry: PendingEntry, label: Label) -> None:
        self._buffer.append(entry, label)

    def flush(self) -> None:
        if len(self._buffer):
            self._frames.append(self._buffer.take().to_pandas())

    def _frame(self) -> pd.DataFrame:
        self.flush()
        if len(self._frames) != 1:
            self._frames = (
                [_as_frame([], self._buffer.schema)]
                if not self._frames
                else [pd.concat(self._frames, ignore_index=True)]
            )
        return self._frames[0]

    def read(
        self, start: datetime, end: datetime, known_by: datetime | None = None
    ) -> pd.DataFrame:
        return select(self._frame(), start, end, known_by)

    def forget_before(self, moment: datetime) -> None:
        """Drop rows of transactions before ``moment``: a long replay keeps what it needs."""
        frame = self._frame()
        self._frames = [frame.loc[frame["event_time"] >= moment].reset_index(drop=True)]
