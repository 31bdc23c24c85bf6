"""Writing labelled transaction data sets, in the handbook's layout or in our contract's.

Reading lives in `pipelines.offline.datasets`; both share its formats, column names and errors.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC
from itertools import islice
from pathlib import Path
from typing import Literal, cast

import numpy as np
import orjson
import pandas as pd

from models.schemas import MAX_AMOUNT, LabelSource
from models.simulator import HANDBOOK_COLUMNS
from pipelines.offline.datasets import (
    CSV_DATE_FORMAT,
    JSONL_CHUNK,
    DatasetError,
    Format,
    check_currency,
    format_of,
    id_values,
    require_columns,
)


def write_dataset(
    frame: pd.DataFrame,
    path: Path,
    layout: Literal["handbook", "contract"] = "handbook",
    *,
    currency: str = "EUR",
) -> None:
    """Write a frame with the handbook columns, in the format the path names.

    Parameters
    ----------
    frame
        At least :data:`REQUIRED_COLUMNS`; ``TX_DATETIME`` naive (meaning UTC) or aware.
    path
        ``.csv``, ``.csv.gz``, ``.parquet``, a directory (one ``YYYY-MM-DD.pkl`` per day) for
        the handbook layout; ``.jsonl`` for the contract layout.
    layout
        ``"handbook"`` keeps the public columns; ``"contract"`` writes transactions and labels
        as :mod:`models.schemas` shapes them.
    currency
        Currency written into contract transactions.

    Raises
    ------
    DatasetError
        The layout does not fit the path, columns are missing, or the file cannot be written.
    """
    require_columns(path, frame.columns)
    fmt = _output_format(path)
    if (layout == "contract") != (fmt == "jsonl"):
        raise DatasetError(
            f"{path.name!r}: the contract layout is written as .jsonl, and .jsonl only holds "
            f"the contract layout (got layout {layout!r})"
        )
    try:
        if fmt == "jsonl":
            check_currency(currency)
            _write_jsonl(frame, path, currency)
        else:
            _write_handbook(_handbook_frame(frame), path, fmt)
    except OSError as error:
        raise DatasetError(f"cannot write {path}: {error}") from error


def _output_format(path: Path) -> Format:
    if path.suffix == "" or path.is_dir():
        return "pickles"
    return format_of(path)


def _handbook_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The handbook columns only, with times as naive UTC as the handbook stores them."""
    out = frame[[column for column in HANDBOOK_COLUMNS if column in frame.columns]].copy()
    out["TX_DATETIME"] = _naive_utc(out["TX_DATETIME"])
    return out


def _naive_utc(column: pd.Series) -> pd.Series:
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        column = column.dt.tz_convert(UTC).dt.tz_localize(None)
    return column.astype("datetime64[ns]")


def _write_handbook(frame: pd.DataFrame, path: Path, fmt: Format) -> None:
    if fmt == "pickles":
        _write_pickles(frame, path)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        frame.to_parquet(path, engine="pyarrow", index=False)
        return
    # A fixed mtime keeps the gzip bytes identical from one run to the next.
    compression = (
        {"method": "gzip", "compresslevel": 6, "mtime": 0}
        if path.name.lower().endswith(".gz")
        else None
    )
    frame.to_csv(path, index=False, date_format=CSV_DATE_FORMAT, compression=compression)


def _write_pickles(frame: pd.DataFrame, directory: Path) -> None:
    if directory.is_dir() and any(directory.glob("*.pkl")):
        # Mixing days from two data sets would go unnoticed when the directory is read back.
        raise DatasetError(f"{directory} already holds .pkl files; choose an empty directory")
    directory.mkdir(parents=True, exist_ok=True)
    for day, rows in frame.groupby(frame["TX_DATETIME"].dt.floor("D"), sort=True):
        rows.reset_index(drop=True).to_pickle(directory / f"{pd.Timestamp(day):%Y-%m-%d}.pkl")


def _write_jsonl(frame: pd.DataFrame, path: Path, currency: str) -> None:
    """Dicts shaped exactly like the contract's JSON; pydantic objects per row would be slow."""
    rows = _contract_rows(frame)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        while chunk := list(islice(rows, JSONL_CHUNK)):
            out.write(b"".join(_contract_line(row, currency) for row in chunk))


_ContractRow = tuple[str, str, str, str, float, bool]


def _contract_rows(frame: pd.DataFrame) -> Iterator[_ContractRow]:
    """Per-row values, after refusing a frame that would write lines the contract rejects."""
    times = _naive_utc(frame["TX_DATETIME"])
    amounts = frame["TX_AMOUNT"].astype(float)
    ids = [id_values(frame[name]) for name in ("TRANSACTION_ID", "CUSTOMER_ID", "TERMINAL_ID")]
    if times.isna().any() or any(None in column for column in ids):
        raise DatasetError("cannot write the contract layout: missing ids or times")
    if not (amounts.gt(0) & amounts.le(MAX_AMOUNT)).all():
        raise DatasetError(
            f"cannot write the contract layout: TX_AMOUNT not in (0, {MAX_AMOUNT:g}]"
        )
    if not frame["TX_FRAUD"].isin([0, 1]).all():
        raise DatasetError("cannot write the contract layout: TX_FRAUD not 0 or 1")
    transaction_ids, card_ids, terminal_ids = ids
    return zip(
        cast(list[str], transaction_ids),
        _zulu(times),
        cast(list[str], card_ids),
        cast(list[str], terminal_ids),
        amounts.tolist(),
        frame["TX_FRAUD"].eq(1).tolist(),
        strict=True,
    )


def _zulu(times: pd.Series) -> list[str]:
    """ISO 8601 in UTC with ``Z``, to the second unless some time has a fraction."""
    whole = bool((times.dt.microsecond.eq(0) & times.dt.nanosecond.eq(0)).all())
    values = times.to_numpy(dtype="datetime64[us]")
    return [f"{text}Z" for text in np.datetime_as_string(values, unit="s" if whole else "us")]


def _contract_line(row: _ContractRow, currency: str) -> bytes:
    transaction_id, timestamp, card_id, terminal_id, amount, is_fraud = row
    # labelled_at: the data set does not know when a label arrived; the evaluation applies
    # its configured delay on top of the transaction's own time.
    return orjson.dumps(
        {
            "transaction": {
                "transaction_id": transaction_id,
                "timestamp": timestamp,
                "card_id": card_id,
                "terminal_id": terminal_id,
                "amount": amount,
                "currency": currency,
            },
            "label": {
                "transaction_id": transaction_id,
                "is_fraud": is_fraud,
                "labelled_at": timestamp,
                "source": LabelSource.CHARGEBACK.value,
            },
        },
        option=orjson.OPT_APPEND_NEWLINE,
    )
