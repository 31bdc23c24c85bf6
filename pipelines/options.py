"""Checks the option dataclasses of the clients and benchmarks share."""

from __future__ import annotations


def require_positive(options: object, *names: str) -> None:
    """Refuse ``options`` whose named fields are not positive, naming the first such field.

    >>> from types import SimpleNamespace
    >>> require_positive(SimpleNamespace(seconds=10, clients=0), "seconds", "clients")
    Traceback (most recent call last):
    ...
    ValueError: clients must be positive, not 0
    """
    for name in names:
        value = getattr(options, name)
        if value <= 0:
            raise ValueError(f"{name} must be positive, not {value}")
