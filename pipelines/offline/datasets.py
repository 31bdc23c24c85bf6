"""Reading and writing labelled transaction data sets.

Two layouts exist. The *handbook* layout is the Fraud Detection Handbook's public columns
(``TRANSACTION_ID, TX_DATETIME, CUSTOMER_ID, TERMINAL_ID, TX_AMOUNT, TX_FRAUD``, naive times
meaning UTC) stored as ``.csv``, ``.csv.gz``, ``.parquet`` or a directory of per-day ``.pkl``
frames. The *contract* layout is JSON Lines, one ``{"transaction": ..., "label": ...}`` per line
shaped by :mod:`models.schemas`.

Whatever the format, every row is validated through the contract on the way in. Rows that fail
are returned as :class:`RowError` next to the good ones, never dropped silently, so a replay
reports exactly what it could not use. Problems with the file as a whole (missing, unknown
format, missing columns) raise :class:`DatasetError`.
"""

from __future__ import annotations

import gc
import pickle
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from models.schemas import Label, Transaction

REQUIRED_COLUMNS = (
    "TRANSACTION_ID",
    "TX_DATETIME",
    "CUSTOMER_ID",
    "TERMINAL_ID",
    "TX_AMOUNT",
    "TX_FRAUD",
)
"""Handbook columns a data set must have; the others are optional and ignored on reading,
but for the fraud scenario."""

SCENARIO_COLUMN = "TX_FRAUD_SCENARIO"

SUPPORTED_FORMATS = ".csv, .csv.gz, .parquet, .jsonl, or a directory of per-day .pkl files"

_COLUMN_OF_FIELD = {
    "transaction_id": "TRANSACTION_ID",
    "timestamp": "TX_DATETIME",
    "card_id": "CUSTOMER_ID",
    "terminal_id": "TERMINAL_ID",
    "amount": "TX_AMOUNT",
}
CSV_DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
# Stands in for an unparseable date so that the row's other fields still get checked.
_PLACEHOLDER_TIME = datetime(1970, 1, 1, tzinfo=UTC)
JSONL_CHUNK = 50_000

Format = Literal["csv", "parquet", "jsonl", "pickles"]


class DatasetError(Exception):
    """The file as a whole cannot be used; the message says why, for a person to read."""


@dataclass(frozen=True)
class RowError:
    """A row that failed validation."""

    row: int
    """1-based: the line number in CSV (the header is line 1) and JSONL; elsewhere the row's
    position, across the per-day files in name order for a pickle directory."""
    message: str
    """Field-level, e.g. ``"TX_AMOUNT: Input should be greater than or equal to 0"``."""


@dataclass(frozen=True)
class LabelledDataset:
    """Validated transactions with their labels, plus the rows that were refused."""

    transactions: list[Transaction]
    """Sorted by timestamp; ties keep the source order."""
    is_fraud: list[bool]
    """Parallel to ``transactions``."""
    rejected: list[RowError]
    rows_read: int
    scenarios: list[int] | None = None
    """Parallel to ``transactions``: each one's ``TX_FRAUD_SCENARIO`` (0 for legitimate
    transactions), when the source has that column; evaluation reports AP per scenario."""


class _Line(BaseModel):
    """One line of the contract layout: a transaction and its label."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    transaction: Transaction
    label: Label

    @model_validator(mode="after")
    def _same_transaction(self) -> _Line:
        if self.label.transaction_id != self.transaction.transaction_id:
            raise ValueError("label.transaction_id does not match transaction.transaction_id")
        return self


# ---------------------------------------------------------------------------------------------
# Reading


def read_dataset(path: Path, *, currency: str = "EUR") -> LabelledDataset:
    """Read and validate a labelled data set, in any supported format.

    Parameters
    ----------
    path
        A file whose suffix names its format, or a directory of per-day ``.pkl`` frames.
        Pickles run code when loaded: only read directories you trust.
    currency
        Currency of the amounts in handbook formats, which do not record it.

    Raises
    ------
    DatasetError
        The path is missing, its format unknown, required columns absent, or it is unreadable.
    """
    if not path.exists():
        raise DatasetError(f"no such file or directory: {path}")
    fmt = format_of(path)
    if fmt == "jsonl":
        return _read_jsonl(path)
    check_currency(currency)
    try:
        frame, first_row = _read_handbook_frame(path, fmt)
    except (OSError, EOFError, ValueError, pickle.UnpicklingError) as error:
        raise DatasetError(f"cannot read {path}: {error}") from error
    return _validate_handbook(frame, currency, first_row)


def dataset_from_frame(frame: pd.DataFrame, *, currency: str = "EUR") -> LabelledDataset:
    """Validate an in-memory frame with the handbook columns, exactly as a file would be.

    Rows are numbered by position from 1. Lets a simulated frame be replayed without a file.

    Raises
    ------
    DatasetError
        Required columns are missing or the currency is not a valid code.
    """
    require_columns("the frame", frame.columns)
    check_currency(currency)
    return _validate_handbook(frame, currency, first_row=1)


def format_of(path: Path) -> Format:
    name = path.name.lower()
    if path.is_dir():
        return "pickles"
    if name.endswith((".csv", ".csv.gz")):
        return "csv"
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith(".jsonl"):
        return "jsonl"
    raise DatasetError(f"unsupported format: {path.name!r}; expected {SUPPORTED_FORMATS}")


def check_currency(currency: str) -> None:
    try:
        Transaction(
            transaction_id="-",
            timestamp=_PLACEHOLDER_TIME,
            card_id="-",
            terminal_id="-",
            amount=1.0,
            currency=currency,
        )
    except ValidationError as error:
        raise DatasetError(f"currency {currency!r}: {_messages(error)}") from error


def _read_handbook_frame(path: Path, fmt: Format) -> tuple[pd.DataFrame, int]:
    """The required columns (and the scenario's), and the row number of the first data row."""
    if fmt == "csv":
        found = pd.read_csv(path, nrows=0).columns
        require_columns(path, found)
        scenario = [SCENARIO_COLUMN] if SCENARIO_COLUMN in found else []
        # Read as text so ids keep their exact spelling and bad cells can be quoted back.
        frame = pd.read_csv(
            path,
            usecols=[*REQUIRED_COLUMNS, *scenario],
            dtype=str,
            keep_default_na=False,
            skip_blank_lines=False,
        )
        return frame, 2
    frame = pd.read_parquet(path, engine="pyarrow") if fmt == "parquet" else _read_pickles(path)
    require_columns(path, frame.columns)
    return frame, 1


def _read_pickles(directory: Path) -> pd.DataFrame:
    files = sorted(directory.glob("*.pkl"))
    if not files:
        raise DatasetError(f"no .pkl files in directory {directory}")
    frames = []
    for file in files:
        day = pd.read_pickle(file)
        if not isinstance(day, pd.DataFrame):
            raise DatasetError(f"{file} holds a {type(day).__name__}, not a DataFrame")
        frames.append(day)
    return pd.concat(frames, ignore_index=True)


def require_columns(source: Path | str, found: Iterable[object]) -> None:
    names = [str(column) for column in found]
    missing = [column for column in REQUIRED_COLUMNS if column not in names]
    if missing:
        raise DatasetError(
            f"{source}: missing columns: {', '.join(missing)}; found: {', '.join(names) or 'none'}"
        )


def _validate_handbook(frame: pd.DataFrame, currency: str, first_row: int) -> LabelledDataset:
    fraud = pd.to_numeric(frame["TX_FRAUD"], errors="coerce")
    rows = zip(
        id_values(frame["TRANSACTION_ID"]),
        _utc_times(frame["TX_DATETIME"]),
        id_values(frame["CUSTOMER_ID"]),
        id_values(frame["TERMINAL_ID"]),
        _amount_values(frame["TX_AMOUNT"]),
        fraud.isin([0, 1]).tolist(),
        fraud.eq(1).tolist(),
        strict=True,
    )
    kept: list[tuple[Transaction, bool]] = []
    kept_rows: list[int] = []
    rejected: list[RowError] = []
    with _without_gc():
        for index, (tx_id, time, card, terminal, amount, known, is_fraud) in enumerate(rows):
            record: dict[str, object] = {
                "transaction_id": tx_id,
                "timestamp": time or _PLACEHOLDER_TIME,
                "card_id": card,
                "terminal_id": terminal,
                "amount": amount,
                "currency": currency,
            }
            result = _transaction_or_error(record)
            if isinstance(result, Transaction) and time is not None and known:
                kept.append((result, is_fraud))
                kept_rows.append(index)
                continue
            error = "" if isinstance(result, Transaction) else result
            message = _row_message(frame, index, time is None, known, error)
            rejected.append(RowError(row=first_row + index, message=message))
    scenarios = _scenarios(frame, kept_rows)
    return _dataset(kept, rejected, rows_read=len(frame), scenarios=scenarios)


def _scenarios(frame: pd.DataFrame, rows: list[int]) -> list[int] | None:
    """The kept rows' fraud scenarios, or none when the column is absent or unusable."""
    if SCENARIO_COLUMN not in frame.columns:
        return None
    column = pd.to_numeric(frame[SCENARIO_COLUMN], errors="coerce").iloc[rows]
    if column.isna().any():
        return None
    return [int(value) for value in column.tolist()]


def _transaction_or_error(record: dict[str, object]) -> Transaction | str:
    try:
        return Transaction.model_validate(record)
    except ValidationError as error:
        return _messages(error, _COLUMN_OF_FIELD)


def _row_message(frame: pd.DataFrame, index: int, bad_time: bool, known: bool, error: str) -> str:
    """All of a row's problems, quoting the cells pandas could not parse."""
    problems = []
    if bad_time:
        problems.append(f"TX_DATETIME: not a date and time: {frame['TX_DATETIME'].iat[index]!r}")
    if not known:
        problems.append(f"TX_FRAUD: should be 0 or 1, got {frame['TX_FRAUD'].iat[index]!r}")
    if error:
        problems.append(error)
    return "; ".join(problems)


@contextmanager
def _without_gc() -> Iterator[None]:
    """Pause the cyclic collector while building millions of long-lived, acyclic objects.

    Each collection would re-scan every object built so far for nothing; left on, it more than
    doubles the time to read the published data set.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _utc_times(column: pd.Series) -> list[datetime | None]:
    """Aware UTC datetimes, None where unparseable; a time without a zone means UTC."""
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        parsed = column.dt.tz_convert(UTC)
    elif pd.api.types.is_datetime64_dtype(column.dtype):
        parsed = column.dt.tz_localize(UTC)
    else:
        parsed = pd.to_datetime(column, format="ISO8601", errors="coerce", utc=True)
    # Python datetimes stop at microseconds; floor first rather than let pandas warn.
    values = pd.DatetimeIndex(parsed.dt.floor("us")).to_pydatetime()
    missing = parsed.isna().to_numpy()
    return [None if gap else value for value, gap in zip(values, missing, strict=True)]


def id_values(column: pd.Series) -> list[str | None]:
    """Ids as text; integral floats (an int column that held a gap) lose their ``.0``."""
    if pd.api.types.is_integer_dtype(column.dtype):
        return [str(value) for value in column.tolist()]
    if pd.api.types.is_string_dtype(column.dtype) and not column.isna().any():
        return list(column.tolist())
    return [_id_text(value) for value in column.tolist()]


def _id_text(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        if np.isnan(value):
            return None
        return str(int(value)) if value.is_integer() else str(value)
    if isinstance(value, int | np.integer):
        return str(value)
    return None


def _amount_values(column: pd.Series) -> list[object]:
    """Floats where the cell is a number; the raw cell otherwise, so the error can quote it."""
    numbers = pd.to_numeric(column, errors="coerce")
    values: list[object] = list(numbers.astype(float).tolist())
    unparsed = (numbers.isna() & column.notna()).to_numpy()
    raw = column.tolist()
    for index in np.flatnonzero(unparsed):
        values[index] = raw[index]
    return values


def _read_jsonl(path: Path) -> LabelledDataset:
    kept: list[tuple[Transaction, bool]] = []
    rejected: list[RowError] = []
    rows = 0
    try:
        with path.open("rb") as lines, _without_gc():
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                rows += 1
                # JSON mode, not Python mode: the contract's strict enums accept their JSON
                # string form only when validating JSON.
                try:
                    parsed = _Line.model_validate_json(line)
                except ValidationError as error:
                    rejected.append(RowError(row=number, message=_messages(error)))
                    continue
                kept.append((parsed.transaction, parsed.label.is_fraud))
    except OSError as error:
        raise DatasetError(f"cannot read {path}: {error}") from error
    return _dataset(kept, rejected, rows_read=rows)


def _messages(error: ValidationError, columns: dict[str, str] | None = None) -> str:
    """One ``field: message`` per problem, with contract fields renamed to source columns."""
    parts = []
    for detail in error.errors(include_url=False):
        location = [str(part) for part in detail["loc"]]
        if columns and location:
            location[0] = columns.get(location[0], location[0])
        where = ".".join(location)
        parts.append(f"{where}: {detail['msg']}" if where else detail["msg"])
    return "; ".join(parts)


def _dataset(
    kept: list[tuple[Transaction, bool]],
    rejected: list[RowError],
    rows_read: int,
    scenarios: list[int] | None = None,
) -> LabelledDataset:
    # sorted() is stable, so equal timestamps keep their order in the source.
    order = sorted(range(len(kept)), key=lambda index: kept[index][0].timestamp)
    return LabelledDataset(
        transactions=[kept[index][0] for index in order],
        is_fraud=[kept[index][1] for index in order],
        rejected=rejected,
        rows_read=rows_read,
        scenarios=None if scenarios is None else [scenarios[index] for index in order],
    )
