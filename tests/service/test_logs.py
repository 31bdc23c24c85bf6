"""Structured logs: one JSON object per line, context fields by allow-list."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from service.logs import JsonFormatter, configure_logging


def record(message: str = "scored %s", *args: object, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("fraudstream.test", logging.WARNING, __file__, 1, message, args, None)
    made.__dict__.update(extra)
    return made


def test_a_record_is_one_json_object_with_time_level_logger_and_message() -> None:
    line = JsonFormatter().format(record("scored %s", "tx-1"))
    document = json.loads(line)
    assert document["level"] == "WARNING"
    assert document["logger"] == "fraudstream.test"
    assert document["message"] == "scored tx-1"
    assert document["time"].endswith("+00:00")
    assert "transaction_id" not in document


def test_context_passed_with_extra_becomes_keys() -> None:
    line = JsonFormatter().format(record(transaction_id="tx-7", model_version="logistic+3"))
    document = json.loads(line)
    assert document["transaction_id"] == "tx-7"
    assert document["model_version"] == "logistic+3"


def test_other_extras_stay_out_so_secrets_cannot_leak_by_accident() -> None:
    line = JsonFormatter().format(record(admin_key=SecretStr("hunter2"), password="hunter2"))
    assert "hunter2" not in line
    assert set(json.loads(line)) == {"time", "level", "logger", "message"}


def test_an_exception_keeps_its_traceback_on_one_line() -> None:
    try:
        raise RuntimeError("scoring failed")
    except RuntimeError:
        failed = record("batch failed")
        failed.exc_info = sys.exc_info()
    line = JsonFormatter().format(failed)
    assert "\n" not in line
    document = json.loads(line)
    assert document["exc_info"].startswith("Traceback (most recent call last):")
    assert "RuntimeError: scoring failed" in document["exc_info"]


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """Put back the root and uvicorn loggers as pytest had them."""
    names = ("", "uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")
    saved = {
        name: (logging.getLogger(name).handlers[:], logging.getLogger(name).level) for name in names
    }
    yield
    for name, (handlers, level) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = handlers
        logger.setLevel(level)


@pytest.mark.usefixtures("restored_logging")
def test_configure_logging_routes_uvicorn_through_the_same_json_lines() -> None:
    stream = io.StringIO()
    configure_logging("info", stream)
    configure_logging("info", stream)  # again: still one line per record
    logging.getLogger("uvicorn.error").info("Started server process")
    logging.getLogger("fraudstream.test").debug("below the level")
    lines = stream.getvalue().splitlines()
    assert [json.loads(line)["logger"] for line in lines] == ["uvicorn.error"]


def test_an_unknown_level_is_a_user_error() -> None:
    with pytest.raises(ValueError, match="log level"):
        configure_logging("verbose")
