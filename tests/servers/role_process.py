"""A `fraudstream` role (worker, learner) as a real child process, stopped or killed by pid."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

from pipelines.bench.server_process import kill_process, stop_process


class RoleProcess:
    """``fraudstream <role>`` with the given settings in its environment; output to a log file."""

    started: ClassVar[list[RoleProcess]] = []
    """The roles started since the running test began: a failed test shows their logs
    (`tests.servers.kafka_fixtures`)."""

    def __init__(self, role: str, env: dict[str, str], log: Path) -> None:
        self.role = role
        self.env = env
        self.log = log
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def start(self) -> RoleProcess:
        executable = Path(sys.executable).with_name("fraudstream")
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(
                [str(executable), self.role],
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        if self not in RoleProcess.started:
            RoleProcess.started.append(self)
        return self

    def stop(self) -> int:
        """SIGTERM, and the exit status once the role has finished its batch and left; a role
        still there after the stop timeout is killed and fails the test."""
        process = self._require()
        self._process = None
        if not stop_process(process):
            raise AssertionError(f"{self.role} ignored SIGTERM:\n{self.log_tail()}")
        return process.returncode

    def kill(self) -> None:
        """SIGKILL: the crash a batch in flight must survive."""
        kill_process(self._require())
        self._process = None

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_tail(self, limit: int = 4_000) -> str:
        return self.log.read_text(errors="replace")[-limit:] if self.log.exists() else ""

    def _require(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise RuntimeError(f"{self.role} is not running")
        return self._process
