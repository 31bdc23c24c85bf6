"""Structured logs: one JSON object per line, configured in one place for every logger.

A line has ``time`` (UTC, ISO 8601), ``level``, ``logger`` and ``message``, plus the context
fields in `CONTEXT_FIELDS` when a call passes them with ``extra=`` (``logger.warning("...",
extra={"transaction_id": tx.transaction_id})``), and ``exc_info`` with the traceback when there
is one. JSON escapes the traceback's newlines, so a log shipper never splits one event in two.

Other ``extra`` keys are left out on purpose: an allow-list is what keeps a secret, or a whole
settings object handed to ``extra`` in passing, out of the logs.

The standard library's `logging` is enough for this: a small `logging.Formatter` subclass
rather than python-json-logger, whose worth (renaming fields, dumping every extra) is what the
allow-list does not want.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from uvicorn.config import LOG_LEVELS

CONTEXT_FIELDS = ("transaction_id", "model_version")
"""The ``extra`` keys a log line carries."""

UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in CONTEXT_FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                document[field] = value
        if record.exc_info:
            document["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            document["stack_info"] = self.formatStack(record.stack_info)
        # ``default=str``: a context value that is not JSON (a UUID, a datetime) must not cost
        # the log line.
        return json.dumps(document, ensure_ascii=False, default=str)


def log_level(name: str) -> int:
    """The numeric level of ``name`` (uvicorn's names: trace, debug, info, warning, ...)."""
    try:
        return LOG_LEVELS[name.lower()]
    except KeyError:
        choices = ", ".join(LOG_LEVELS)
        raise ValueError(f"log level: expected one of {choices}, not {name!r}") from None


def configure_logging(level: str, stream: TextIO | None = None) -> None:
    """Send every logger's records, uvicorn's included, as JSON lines to ``stream`` (stderr).

    Replaces the root logger's handlers, so calling it again does not double every line; run
    uvicorn with ``log_config=None`` afterwards, or it installs its own handlers again.
    """
    numeric = log_level(level)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for previous in root.handlers[:]:
        root.removeHandler(previous)
    root.addHandler(handler)
    root.setLevel(numeric)
    for name in UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
        logger.setLevel(numeric)
