"""Writes taken from a store's buffer and not yet acknowledged by Redis.

A stream worker scores batch ``n + 1`` while batch ``n``'s writes are still on their way (on a
thread of their own, `pipelines.stream.lanes`), and the two go over different connections: Redis may
answer batch ``n + 1``'s reads before it has run batch ``n``'s writes. Reads laid over the writes
in flight see exactly what reads made after the writes would see.

>>> in_flight = WritesInFlight[str, int]()
>>> token = in_flight.add({"card-1": 60})
>>> in_flight.overlay(["card-1", "card-2"])
{'card-1': 60}
>>> in_flight.settle(token, ["card-1"])
>>> in_flight.overlay(["card-1"])
{}
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class WritesInFlight(Generic[K, V]):
    """The latest value written to each key, from when it is taken to be written until Redis
    acknowledges it; shared by the thread that writes and the one that reads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[K, tuple[object, V]] = {}

    def add(self, values: Mapping[K, V]) -> object:
        """Record ``values`` as on their way; the token names this write for `settle`."""
        token = object()
        with self._lock:
            for key, value in values.items():
                self._values[key] = (token, value)
        return token

    def settle(self, token: object, keys: Iterable[K]) -> None:
        """The write ``token`` is acknowledged: forget its keys, unless a later write (still
        in flight) has taken them over since."""
        with self._lock:
            for key in keys:
                held = self._values.get(key)
                if held is not None and held[0] is token:
                    del self._values[key]

    def overlay(self, keys: Iterable[K]) -> dict[K, V]:
        """Those of ``keys`` written and not yet acknowledged, with their values. Taken before a
        read is sent: a write acknowledged after that may or may not be in the read, and its
        value is here."""
        with self._lock:
            values = self._values
            if not values:
                return {}
            return {key: values[key][1] for key in keys if key in values}
