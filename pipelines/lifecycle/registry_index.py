"""Where the model registry keeps records, pointers and events: a JSON file or Redis.

The registry (`pipelines.lifecycle.registry`) stores artefacts itself and everything else through a
`RegistryIndex`: records, the next version number, the champion pointer, the retired set and
a bounded event log. `FileIndex` serves embedded mode (one host, maybe several processes);
`RedisIndex` serves distributed mode. Both keep the same invariants atomically: version
numbers are never handed out twice, the champion is never retired, a retired or unknown
version never becomes champion, and pruning never removes the champion.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, TypedDict, cast

import redis

from pipelines.durable_files import write_atomically

MAX_EVENTS = 1_000
"""Events an index keeps, newest first; older ones fall off."""

Outcome = Literal["ok", "unknown", "retired", "champion"]
"""An index's answer to a guarded change: done, or which guard refused it."""


class Event(TypedDict):
    """One line of the registry's audit log: promotions, retirements, refusals, prunes."""

    at: str
    event: str
    version: str
    detail: str


class RegistryIndex(Protocol):
    """Where records, pointers and events live. Each method is atomic on its own.

    Records are stored as the registry's JSON text and returned as stored: checking them is
    the registry's job, so an index never needs the signing key.
    """

    def allocate(self) -> int:
        """A version number never handed out before, by any process sharing the index."""

    def put(self, version: str, record: str) -> None: ...

    def get(self, version: str) -> str | None: ...

    def all(self) -> dict[str, str]: ...

    def champion(self) -> str | None: ...

    def promote(self, version: str) -> Outcome:
        """Point the champion at ``version`` unless it is unknown or retired."""

    def retire(self, version: str) -> Outcome:
        """Retire ``version`` unless it is unknown or the champion."""

    def retired(self) -> set[str]: ...

    def remove(self, versions: Sequence[str]) -> list[str]:
        """Forget ``versions``, except the champion; returns those forgotten."""

    def append_event(self, event: Event) -> None: ...

    def events(self, limit: int) -> list[Event]:
        """The newest ``limit`` events, newest first."""


class FileIndex:
    """The index as one JSON file, for embedded mode.

    Every change is read-modify-write under a lock on a sibling ``.lock`` file (``flock``, so
    processes sharing the file take turns) and a thread lock, then an atomic replace: readers
    need no lock, as they see a whole old file or a whole new one.
    """

    def __init__(self, path: Path, *, max_events: int = MAX_EVENTS) -> None:
        self.path = path
        self.max_events = max_events
        self._lock_path = path.with_name(path.name + ".lock")
        self._thread_lock = threading.Lock()

    def _read(self) -> dict[str, Any]:
        try:
            state: dict[str, Any] = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return {"next": 0, "champion": None, "records": {}, "retired": [], "events": []}
        return state

    @contextlib.contextmanager
    def _update(self) -> Iterator[dict[str, Any]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._thread_lock, self._lock_path.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            state = self._read()
            yield state
            write_atomically(self.path, json.dumps(state, indent=1, sort_keys=True).encode())

    def allocate(self) -> int:
        with self._update() as state:
            state["next"] += 1
            return int(state["next"])

    def put(self, version: str, record: str) -> None:
        with self._update() as state:
            state["records"][version] = json.loads(record)

    def get(self, version: str) -> str | None:
        record = self._read()["records"].get(version)
        return None if record is None else json.dumps(record)

    def all(self) -> dict[str, str]:
        return {version: json.dumps(record) for version, record in self._read()["records"].items()}

    def champion(self) -> str | None:
        champion: str | None = self._read()["champion"]
        return champion

    def promote(self, version: str) -> Outcome:
        with self._update() as state:
            if version not in state["records"]:
                return "unknown"
            if version in state["retired"]:
                return "retired"
            state["champion"] = version
            return "ok"

    def retire(self, version: str) -> Outcome:
        with self._update() as state:
            if version not in state["records"]:
                return "unknown"
            if version == state["champion"]:
                return "champion"
            state["retired"] = sorted({*state["retired"], version})
            return "ok"

    def retired(self) -> set[str]:
        return set(self._read()["retired"])

    def remove(self, versions: Sequence[str]) -> list[str]:
        with self._update() as state:
            removed = [v for v in versions if v in state["records"] and v != state["champion"]]
            for version in removed:
                del state["records"][version]
            state["retired"] = [v for v in state["retired"] if v not in removed]
            return removed

    def append_event(self, event: Event) -> None:
        with self._update() as state:
            state["events"] = [event, *state["events"]][: self.max_events]

    def events(self, limit: int) -> list[Event]:
        return cast(list[Event], self._read()["events"][:limit])


# The guarded changes run as scripts so that the check and the change are one atomic step.
# KEYS: records hash, retired set, champion string.
_PROMOTE = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 'unknown' end
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then return 'retired' end
redis.call('SET', KEYS[3], ARGV[1])
return 'ok'
"""
_RETIRE = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 'unknown' end
if redis.call('GET', KEYS[3]) == ARGV[1] then return 'champion' end
redis.call('SADD', KEYS[2], ARGV[1])
return 'ok'
"""
_REMOVE = """
local champion = redis.call('GET', KEYS[3])
local removed = {}
for _, version in ipairs(ARGV) do
  if version ~= champion and redis.call('HDEL', KEYS[1], version) == 1 then
    redis.call('SREM', KEYS[2], version)
    table.insert(removed, version)
  end
end
return removed
"""


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


class RedisIndex:
    """The index in Redis, for distributed mode, under ``{prefix}registry:*``.

    A hash of records, a counter (INCR hands out version numbers), the champion as a string,
    the retired versions as a set and the events as a list trimmed to ``max_events``.
    """

    def __init__(self, client: redis.Redis, prefix: str, *, max_events: int = MAX_EVENTS) -> None:
        self._client = client
        self.max_events = max_events
        base = f"{prefix}registry:"
        self._records, self._next = base + "records", base + "next"
        self._champion, self._retired = base + "champion", base + "retired"
        self._events = base + "events"
        self._guarded_keys = [self._records, self._retired, self._champion]
        self._promote = client.register_script(_PROMOTE)
        self._retire = client.register_script(_RETIRE)
        self._remove = client.register_script(_REMOVE)

    def allocate(self) -> int:
        return int(self._client.incr(self._next))

    def put(self, version: str, record: str) -> None:
        self._client.hset(self._records, version, record)

    def get(self, version: str) -> str | None:
        raw = self._client.hget(self._records, version)
        return None if raw is None else _text(raw)

    def all(self) -> dict[str, str]:
        raw = self._client.hgetall(self._records)
        return {_text(version): _text(record) for version, record in raw.items()}

    def champion(self) -> str | None:
        raw = self._client.get(self._champion)
        return None if raw is None else _text(raw)

    def promote(self, version: str) -> Outcome:
        return cast(Outcome, _text(self._promote(keys=self._guarded_keys, args=[version])))

    def retire(self, version: str) -> Outcome:
        return cast(Outcome, _text(self._retire(keys=self._guarded_keys, args=[version])))

    def retired(self) -> set[str]:
        return {_text(version) for version in self._client.smembers(self._retired)}

    def remove(self, versions: Sequence[str]) -> list[str]:
        if not versions:
            return []
        return [_text(v) for v in self._remove(keys=self._guarded_keys, args=list(versions))]

    def append_event(self, event: Event) -> None:
        pipeline = self._client.pipeline(transaction=True)
        pipeline.lpush(self._events, json.dumps(event))
        pipeline.ltrim(self._events, 0, self.max_events - 1)
        pipeline.execute()

    def events(self, limit: int) -> list[Event]:
        raw = self._client.lrange(self._events, 0, limit - 1)
        return [cast(Event, json.loads(item)) for item in raw]
