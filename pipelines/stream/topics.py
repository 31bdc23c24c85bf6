"""The names of the Kafka topics that distributed mode reads and writes.

One value object, so that every process of a deployment (and every test, with its own prefix)
agrees on the names without repeating them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields

# Kafka's rule for topic names: these characters, at most 249 of them, and not "." or "..".
_LEGAL_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")


@dataclass(frozen=True)
class Topics:
    """Where transactions, labels, scores, alerts and bad transaction records go.

    Examples
    --------
    >>> Topics().transactions
    'transactions'
    >>> Topics().dlq
    'transactions.dlq'
    >>> Topics.with_prefix("prod.").names()
    ('prod.transactions', 'prod.labels', 'prod.scores', 'prod.alerts', 'prod.transactions.dlq')
    >>> Topics.with_prefix("no spaces")
    Traceback (most recent call last):
    ...
    ValueError: 'no spacestransactions' is not a legal Kafka topic name
    """

    transactions: str = "transactions"
    labels: str = "labels"
    scores: str = "scores"
    alerts: str = "alerts"
    dlq: str = "transactions.dlq"
    """Transaction records that could not be read, kept as they came
    (`pipelines.stream.dead_letters`)."""

    def __post_init__(self) -> None:
        for name in self.names():
            if name in {".", ".."} or not _LEGAL_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a legal Kafka topic name")

    @classmethod
    def with_prefix(cls, prefix: str) -> Topics:
        """The default names, each with ``prefix`` in front."""
        defaults = cls()
        return cls(*(prefix + name for name in defaults.names()))

    def names(self) -> tuple[str, ...]:
        """Every topic, in field order: what a deployment has to create."""
        return tuple(getattr(self, field.name) for field in fields(self))
