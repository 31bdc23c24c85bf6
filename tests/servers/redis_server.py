"""A real ``redis-server`` process for the integration tests: no mocks.

The launcher is `pipelines.local_servers.local_redis` (the one `bench stream --local` uses):
127.0.0.1, a free port kept across restarts, files in the test's own directory, stopped by its
pid. With ``appendonly`` every write is on disk before it is acknowledged, so `restart`, or
`kill` then `start`, finds every write a client was told had been made.
"""

from __future__ import annotations

from pathlib import Path

from pipelines.local_servers import LocalProcess, local_redis


class RedisServer:
    """One redis-server process on a fixed port, which `restart` keeps."""

    def __init__(self, directory: Path, *, appendonly: bool = False) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.process: LocalProcess
        self.process, self.url = local_redis(directory, appendonly=appendonly)

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def start(self) -> None:
        """Start the server and wait until it answers PING (after loading its data)."""
        self.process.start()

    def stop(self) -> None:
        """SIGTERM lets Redis flush its append-only file; SIGKILL if it hangs."""
        self.process.stop()

    def kill(self) -> None:
        """SIGKILL: a crash. Only what the append-only file holds survives it."""
        self.process.kill()

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self) -> str:
        return self.process.log_tail()
