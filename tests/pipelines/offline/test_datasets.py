from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import orjson
import pandas as pd
import pytest

from models.schemas import Label, LabelSource, Transaction
from models.simulator import SimulationConfig, simulate
from pipelines.offline.dataset_writer import write_dataset
from pipelines.offline.datasets import (
    DatasetError,
    RowError,
    dataset_from_frame,
    read_dataset,
)

HEADER = "TRANSACTION_ID,TX_DATETIME,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT,TX_FRAUD\n"


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return simulate(SimulationConfig(customers=50, terminals=100, days=5, seed=11))


def _utc(value: pd.Timestamp) -> datetime:
    return value.to_pydatetime().replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("name", "layout"),
    [
        ("data.csv", "handbook"),
        ("data.csv.gz", "handbook"),
        ("data.parquet", "handbook"),
        ("days", "handbook"),
        ("data.jsonl", "contract"),
    ],
)
def test_round_trip(
    frame: pd.DataFrame, tmp_path: Path, name: str, layout: Literal["handbook", "contract"]
) -> None:
    path = tmp_path / name
    write_dataset(frame, path, layout)
    dataset = read_dataset(path)

    assert dataset.rejected == []
    assert dataset.rows_read == len(frame)
    got = dataset.transactions
    assert [t.transaction_id for t in got] == frame["TRANSACTION_ID"].astype(str).tolist()
    assert [t.timestamp for t in got] == [_utc(ts) for ts in frame["TX_DATETIME"]]
    assert all(t.timestamp.tzinfo is UTC for t in got)
    assert [t.card_id for t in got] == frame["CUSTOMER_ID"].astype(str).tolist()
    assert [t.terminal_id for t in got] == frame["TERMINAL_ID"].astype(str).tolist()
    assert [t.amount for t in got] == frame["TX_AMOUNT"].tolist()
    assert {t.currency for t in got} == {"EUR"}
    assert dataset.is_fraud == (frame["TX_FRAUD"] == 1).tolist()
    assert any(dataset.is_fraud)


def test_a_frame_is_validated_like_a_file(frame: pd.DataFrame, tmp_path: Path) -> None:
    write_dataset(frame, tmp_path / "data.parquet")
    from_file = read_dataset(tmp_path / "data.parquet")
    from_frame = dataset_from_frame(frame)
    assert from_frame == from_file
    broken = frame.assign(TX_AMOUNT=frame["TX_AMOUNT"].where(frame.index != 4, -1.0))
    assert [error.row for error in dataset_from_frame(broken).rejected] == [5]
    with pytest.raises(DatasetError, match="the frame: missing columns: TX_FRAUD"):
        dataset_from_frame(frame.drop(columns=["TX_FRAUD"]))


def test_per_day_directory_holds_one_pickle_per_day(frame: pd.DataFrame, tmp_path: Path) -> None:
    write_dataset(frame, tmp_path / "days")
    names = sorted(path.name for path in (tmp_path / "days").iterdir())
    assert names == [f"2018-04-0{day}.pkl" for day in range(1, 6)]
    first = pd.read_pickle(tmp_path / "days" / names[0])
    assert first["TX_DATETIME"].dt.date.nunique() == 1


def test_per_day_directory_is_not_mixed_with_another_data_set(
    frame: pd.DataFrame, tmp_path: Path
) -> None:
    write_dataset(frame, tmp_path / "days")
    with pytest.raises(DatasetError, match="already holds"):
        write_dataset(frame, tmp_path / "days")


def test_csv_has_the_handbook_time_format(frame: pd.DataFrame, tmp_path: Path) -> None:
    write_dataset(frame, tmp_path / "data.csv")
    lines = (tmp_path / "data.csv").read_text().splitlines()
    assert lines[0].split(",")[:2] == ["TRANSACTION_ID", "TX_DATETIME"]
    first_time = lines[1].split(",")[1]
    assert first_time == frame["TX_DATETIME"].iloc[0].strftime("%Y-%m-%d %H:%M:%S")


def test_gzip_output_is_reproducible(frame: pd.DataFrame, tmp_path: Path) -> None:
    first, second = tmp_path / "a" / "data.csv.gz", tmp_path / "b" / "data.csv.gz"
    write_dataset(frame, first)
    write_dataset(frame, second)
    assert first.read_bytes() == second.read_bytes()


def test_contract_lines_match_the_contract(frame: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    write_dataset(frame, path, "contract", currency="USD")
    lines = path.read_bytes().splitlines()
    assert len(lines) == len(frame)
    rows = zip(
        lines,
        frame["TRANSACTION_ID"].tolist(),
        frame["TX_DATETIME"].tolist(),
        frame["CUSTOMER_ID"].tolist(),
        frame["TERMINAL_ID"].tolist(),
        frame["TX_AMOUNT"].tolist(),
        frame["TX_FRAUD"].tolist(),
        strict=True,
    )
    for line, tx_id, time, card, terminal, amount, fraud in rows:
        record = orjson.loads(line)
        transaction = Transaction.model_validate(record["transaction"])
        # Strict enums take their string form only in JSON mode, as a consumer would read it.
        label = Label.model_validate_json(orjson.dumps(record["label"]))
        assert transaction == Transaction(
            transaction_id=str(tx_id),
            timestamp=_utc(time),
            card_id=str(card),
            terminal_id=str(terminal),
            amount=amount,
            currency="USD",
        )
        assert label == Label(
            transaction_id=str(tx_id),
            is_fraud=fraud == 1,
            labelled_at=transaction.timestamp,
            source=LabelSource.CHARGEBACK,
        )
        assert record["transaction"] == transaction.model_dump(mode="json", exclude_none=True)
        assert record["label"] == label.model_dump(mode="json")


def test_handbook_currency_comes_from_the_caller(frame: pd.DataFrame, tmp_path: Path) -> None:
    write_dataset(frame, tmp_path / "data.parquet")
    dataset = read_dataset(tmp_path / "data.parquet", currency="GBP")
    assert {t.currency for t in dataset.transactions} == {"GBP"}


def test_invalid_currency_is_refused(frame: pd.DataFrame, tmp_path: Path) -> None:
    write_dataset(frame, tmp_path / "data.parquet")
    with pytest.raises(DatasetError, match="currency 'euro'"):
        read_dataset(tmp_path / "data.parquet", currency="euro")


@pytest.mark.parametrize("name", ["data.csv", "data.parquet"])
def test_missing_columns_are_named(frame: pd.DataFrame, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    partial = frame.drop(columns=["TX_AMOUNT", "TX_FRAUD"])
    if name.endswith(".csv"):
        partial.to_csv(path, index=False)
    else:
        partial.to_parquet(path)
    with pytest.raises(DatasetError) as caught:
        read_dataset(path)
    message = str(caught.value)
    assert "missing columns: TX_AMOUNT, TX_FRAUD" in message
    assert "found: TRANSACTION_ID, TX_DATETIME, CUSTOMER_ID" in message


def test_writing_without_required_columns_is_refused(frame: pd.DataFrame, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="missing columns: TX_FRAUD"):
        write_dataset(frame.drop(columns=["TX_FRAUD"]), tmp_path / "data.csv")


def test_zero_amounts_are_kept(tmp_path: Path) -> None:
    # The public reference data holds zero-amount authorisations (card checks).
    path = tmp_path / "data.csv"
    path.write_text(
        HEADER + "0,2018-04-01 00:00:31,1,2,0.00,0\n" + "1,2018-04-01 00:01:00,1,2,-0.01,0\n"
    )
    dataset = read_dataset(path)
    assert [(t.transaction_id, t.amount) for t in dataset.transactions] == [("0", 0.0)]
    assert dataset.rejected == [
        RowError(row=3, message="TX_AMOUNT: Input should be greater than or equal to 0")
    ]


def test_bad_csv_rows_are_reported_and_the_rest_kept(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text(
        HEADER
        + "0,2018-04-01 00:00:31,1,2,10.5,0\n"
        + "1,2018-04-01 00:01:00,1,2,-3.0,0\n"
        + "2,not a date,1,2,4.0,0\n"
        + "3,2018-04-01 00:02:00,1,2,4.0,2\n"
        + "4,2018-04-01 00:03:00,1,2,abc,x\n"
        + "5,2018-04-01 00:04:00,1,2,7.25,1\n"
    )
    dataset = read_dataset(path)
    assert [t.transaction_id for t in dataset.transactions] == ["0", "5"]
    assert dataset.is_fraud == [False, True]
    assert dataset.rows_read == 6
    # Rows are file line numbers: the header is line 1.
    assert dataset.rejected == [
        RowError(row=3, message="TX_AMOUNT: Input should be greater than or equal to 0"),
        RowError(row=4, message="TX_DATETIME: not a date and time: 'not a date'"),
        RowError(row=5, message="TX_FRAUD: should be 0 or 1, got '2'"),
        RowError(
            row=6,
            message=(
                "TX_FRAUD: should be 0 or 1, got 'x'; TX_AMOUNT: Input should be a valid number"
            ),
        ),
    ]


def test_bad_rows_in_a_binary_format_are_numbered_by_position(tmp_path: Path) -> None:
    rows = pd.DataFrame(
        {
            "TRANSACTION_ID": [7, 8, 9],
            "TX_DATETIME": pd.to_datetime(
                pd.Series(["2018-04-01 00:00:00", "2018-04-01 00:00:05", None])
            ),
            "CUSTOMER_ID": [1, 1, 1],
            "TERMINAL_ID": [2, 2, 2],
            "TX_AMOUNT": [1.0, -1.0, 2.0],
            "TX_FRAUD": [0, 0, 1],
        }
    )
    rows.to_parquet(tmp_path / "data.parquet")
    dataset = read_dataset(tmp_path / "data.parquet")
    assert [t.transaction_id for t in dataset.transactions] == ["7"]
    assert [error.row for error in dataset.rejected] == [2, 3]
    assert dataset.rejected[0].message.startswith("TX_AMOUNT:")
    assert dataset.rejected[1].message.startswith("TX_DATETIME:")


def test_times_with_a_zone_are_converted_and_rows_sorted(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text(
        HEADER
        + "a,2018-04-01 12:00:00,1,2,1.0,0\n"
        + "b,2018-04-01T12:00:00+02:00,1,2,1.0,0\n"
        + "c,2018-04-01 12:00:00,1,2,1.0,0\n"
    )
    dataset = read_dataset(path)
    assert [t.transaction_id for t in dataset.transactions] == ["b", "a", "c"]
    assert dataset.transactions[0].timestamp == datetime(2018, 4, 1, 10, tzinfo=UTC)


def _line(**changes: Any) -> bytes:
    transaction = {
        "transaction_id": "t1",
        "timestamp": "2018-04-01T00:00:31Z",
        "card_id": "c1",
        "terminal_id": "p1",
        "amount": 12.5,
        "currency": "EUR",
    }
    label = {
        "transaction_id": "t1",
        "is_fraud": True,
        "labelled_at": "2018-04-01T00:00:31Z",
        "source": "chargeback",
    }
    return orjson.dumps(
        {
            "transaction": transaction | changes.get("transaction", {}),
            "label": label | changes.get("label", {}),
        }
    )


def test_bad_jsonl_lines_are_reported_and_the_rest_kept(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    lines = [
        _line(),
        b'{"transaction": ',
        _line(transaction={"amount": -1}),
        _line(label={"transaction_id": "other"}),
        b"",
        _line(transaction={"transaction_id": "t2"}, label={"transaction_id": "t2"}),
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    dataset = read_dataset(path)
    assert [t.transaction_id for t in dataset.transactions] == ["t1", "t2"]
    assert dataset.is_fraud == [True, True]
    assert dataset.rows_read == 5
    assert [error.row for error in dataset.rejected] == [2, 3, 4]
    assert dataset.rejected[0].message.startswith("Invalid JSON")
    assert dataset.rejected[1].message == (
        "transaction.amount: Input should be greater than or equal to 0"
    )
    assert "does not match" in dataset.rejected[2].message


def test_unknown_suffix_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "data.xlsx"
    path.write_bytes(b"")
    with pytest.raises(DatasetError, match=r"unsupported format.*\.parquet"):
        read_dataset(path)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such file"):
        read_dataset(tmp_path / "absent.csv")


def test_empty_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"no \.pkl files"):
        read_dataset(tmp_path)


@pytest.mark.parametrize(("name", "layout"), [("data.jsonl", "handbook"), ("data.csv", "contract")])
def test_layout_must_fit_the_format(
    frame: pd.DataFrame, tmp_path: Path, name: str, layout: Literal["handbook", "contract"]
) -> None:
    with pytest.raises(DatasetError, match="contract layout"):
        write_dataset(frame, tmp_path / name, layout)


def test_contract_layout_refuses_rows_the_contract_would_reject(
    frame: pd.DataFrame, tmp_path: Path
) -> None:
    broken = frame.assign(TX_AMOUNT=-frame["TX_AMOUNT"])
    with pytest.raises(DatasetError, match="TX_AMOUNT"):
        write_dataset(broken, tmp_path / "data.jsonl", "contract")


def test_fraud_scenarios_follow_their_transactions_when_the_source_has_them(
    tmp_path: Path,
) -> None:
    path = tmp_path / "data.csv"
    path.write_text(
        HEADER.replace("\n", ",TX_FRAUD_SCENARIO\n")
        + "0,2018-04-01 00:05:00,1,2,10.5,1,3\n"
        + "1,2018-04-01 00:01:00,1,2,-3.0,0,0\n"
        + "2,2018-04-01 00:02:00,1,2,400.0,1,1\n"
        + "3,2018-04-01 00:03:00,1,2,4.0,0,0\n"
    )
    dataset = read_dataset(path)
    assert [t.transaction_id for t in dataset.transactions] == ["2", "3", "0"]
    assert dataset.scenarios == [1, 0, 3]
    plain = tmp_path / "plain.csv"
    plain.write_text(HEADER + "0,2018-04-01 00:05:00,1,2,10.5,1\n")
    assert read_dataset(plain).scenarios is None
