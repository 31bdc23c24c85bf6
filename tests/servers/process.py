"""A server process the tests start, crash, stop and restart by its pid (no mocks)."""

from __future__ import annotations

from pipelines.bench.local_servers import LocalProcess


class ServerUnderTest:
    """One `LocalProcess` on a port it keeps for its life, so a restart keeps its address."""

    def __init__(self, process: LocalProcess) -> None:
        self.process = process

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def start(self) -> None:
        """Start it and wait until it answers (a launcher's readiness check)."""
        self.process.start()

    def stop(self) -> None:
        """SIGTERM (Redis flushes its append-only file), SIGKILL if it hangs."""
        self.process.stop()

    def kill(self) -> None:
        """SIGKILL: a crash."""
        self.process.kill()

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self) -> str:
        return self.process.log_tail()
