"""A real ``redis-server`` process for the integration tests: no mocks.

The server binds 127.0.0.1 on a free port, never snapshots (``--save ""``) and keeps its files
in a directory of the test's own. With ``appendonly`` it writes every command to its
append-only file before answering (``appendfsync always``), so that `restart`, or `kill` then
`start`, finds every write a client was told had been made: the setting a test that restarts
Redis mid-stream needs. It is stopped by its pid: SIGTERM, then SIGKILL if it hangs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

import redis

READY_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0
DEBIAN_PATH = "/usr/bin/redis-server"


class RedisServerError(RuntimeError):
    """redis-server is missing, did not start, or did not answer PING in time."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def redis_server_executable() -> str:
    found = shutil.which("redis-server") or (
        DEBIAN_PATH if os.access(DEBIAN_PATH, os.X_OK) else None
    )
    if found is None:
        raise RedisServerError(
            "redis-server is not installed: the integration tests run a real one "
            "(scripts/test installs Debian's redis-server package through scripts/bootstrap)"
        )
    return found


class RedisServer:
    """One redis-server process on a fixed port, which `restart` keeps.

    Parameters
    ----------
    directory
        Where the server keeps its log and, with ``appendonly``, its data.
    appendonly
        Persist every write, so that a restart keeps the data.
    """

    def __init__(self, directory: Path, *, appendonly: bool = False) -> None:
        self.directory = directory
        self.appendonly = appendonly
        self.port = free_port()
        self._executable = redis_server_executable()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def log(self) -> Path:
        return self.directory / "redis.log"

    def start(self) -> None:
        """Start the server and wait until it answers PING (after loading its data)."""
        if self._process is not None and self._process.poll() is None:
            raise RedisServerError(f"redis-server is already running as pid {self._process.pid}")
        self.directory.mkdir(parents=True, exist_ok=True)
        command = [
            self._executable,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--dir", str(self.directory),
            "--logfile", str(self.log),
            "--daemonize", "no",
        ]  # fmt: skip
        if self.appendonly:
            command += ["--appendonly", "yes", "--appendfsync", "always"]
        self._process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self._wait_ready(self._process)

    def stop(self) -> None:
        """SIGTERM lets Redis flush its append-only file; SIGKILL if it hangs."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
        self._process = None

    def kill(self) -> None:
        """SIGKILL: a crash. Only what the append-only file holds survives it."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.wait()
        self._process = None

    def restart(self) -> None:
        """Stop, then start again on the same port and directory."""
        self.stop()
        self.start()

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _wait_ready(self, process: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        with redis.Redis(port=self.port, socket_timeout=1, socket_connect_timeout=1) as client:
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    self._process = None
                    raise RedisServerError(
                        f"redis-server exited with status {process.returncode}: {self._log_tail()}"
                    )
                # BusyLoadingError (still reading its data) is a ConnectionError too.
                with contextlib.suppress(redis.ConnectionError):
                    if client.ping():
                        return
                time.sleep(0.05)
        self.kill()
        raise RedisServerError(
            f"redis-server did not answer PING within {READY_TIMEOUT_SECONDS:g} s: "
            f"{self._log_tail()}"
        )

    def _log_tail(self, limit: int = 2_000) -> str:
        try:
            return self.log.read_text(errors="replace")[-limit:].strip()
        except OSError:
            return "(no log)"
