"""Where a deployment's rule-set versions are kept: a file, or Redis.

Both keep a bounded history of sealed versions, newest last (the last one is in force), and
append a version only if the version in force is still the one the writer read, so two
administrators writing at once cannot both take the same number.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import orjson
import redis

from pipelines.durable_files import write_atomically

RULES_FILE = "rules.json"
"""The embedded service's rule sets, in its data directory."""


class RuleStorage(Protocol):
    """Sealed rule-set versions, oldest first."""

    def version(self) -> int | None:
        """The version in force, cheaply (``None``: none written)."""
        ...

    def history(self) -> list[bytes]:
        """Every version kept, sealed, oldest first."""
        ...

    def append(self, sealed: bytes, version: int, expected: int | None, keep: int) -> bool:
        """Put ``sealed`` in force as ``version`` if ``expected`` is still in force, keeping
        the last ``keep``; ``False`` when another writer came first."""
        ...


class FileRuleStorage:
    """One JSON file of the data directory, rewritten whole and durably at each version.

    Embedded mode has one process and one writer, so the check of the version in force is
    made in memory against the file as read.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def _read(self) -> dict[str, object]:
        if not self.path.exists():
            return {"version": None, "history": []}
        try:
            document = orjson.loads(self.path.read_bytes())
        except orjson.JSONDecodeError:
            # Unreadable as a whole: no version verifies, and the next write starts afresh.
            return {"version": None, "history": []}
        return document if isinstance(document, dict) else {"version": None, "history": []}

    def version(self) -> int | None:
        version = self._read().get("version")
        return version if isinstance(version, int) else None

    def history(self) -> list[bytes]:
        history = self._read().get("history")
        if not isinstance(history, list):
            return []
        return [item.encode() for item in history if isinstance(item, str)]

    def append(self, sealed: bytes, version: int, expected: int | None, keep: int) -> bool:
        if self.version() != expected:
            return False
        history = [*[item.decode() for item in self.history()], sealed.decode()][-keep:]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(self.path, orjson.dumps({"version": version, "history": history}))
        return True


class RedisRuleStorage:
    """``{prefix}rules:version`` (what followers poll) and ``{prefix}rules:history``."""

    def __init__(self, client: redis.Redis, *, prefix: str) -> None:
        self._client = client
        self._version_key = f"{prefix}rules:version"
        self._history_key = f"{prefix}rules:history"

    def version(self) -> int | None:
        raw = self._client.get(self._version_key)
        return None if raw is None else int(raw)

    def history(self) -> list[bytes]:
        items = self._client.lrange(self._history_key, 0, -1)
        return [item if isinstance(item, bytes) else item.encode() for item in items]

    def append(self, sealed: bytes, version: int, expected: int | None, keep: int) -> bool:
        # One script, run atomically by Redis: the check and the three writes.
        done = self._client.eval(
            _APPEND,
            2,
            self._version_key,
            self._history_key,
            "" if expected is None else str(expected),
            sealed,
            version,
            keep,
        )
        return bool(done)


_APPEND = """
local current = redis.call('GET', KEYS[1]) or ''
if current ~= ARGV[1] then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[4]), -1)
redis.call('SET', KEYS[1], ARGV[3])
return 1
"""
