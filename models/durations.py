"""Durations as people write them in flags and settings: ``7d``, ``12h``, ``90s``, ``0``."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([wdhms]?)\s*$")


def parse_duration(text: str) -> timedelta:
    """Parse ``<number><unit>`` with unit w, d, h, m or s (seconds when omitted).

    Examples
    --------
    >>> parse_duration("7d")
    datetime.timedelta(days=7)
    >>> parse_duration("1.5h")
    datetime.timedelta(seconds=5400)
    >>> parse_duration("0")
    datetime.timedelta(0)
    """
    match = _PATTERN.match(text)
    if match is None:
        raise ValueError(f"not a duration: {text!r} (write e.g. 7d, 12h, 30m or 90s)")
    number, unit = match.groups()
    return timedelta(seconds=float(number) * _UNITS[unit or "s"])
