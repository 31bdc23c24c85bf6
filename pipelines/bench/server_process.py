"""A ``fraudstream serve`` subprocess on a free port, for benchmarks and integration tests.

It is started with the console script installed next to this interpreter, waited for until
``/readyz`` answers, and stopped by its pid with `stop_process`, as is every process that the
benches and tests start: SIGTERM, then SIGKILL if it has not left within `STOP_TIMEOUT_SECONDS`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

READY_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 20.0
"""How long a process has, after SIGTERM, to leave cleanly before SIGKILL: a worker finishes
and commits its batch, a server closes its connections (uvicorn allows them a few seconds) and
then takes its final snapshot; Redis and the broker need less."""


class ServerProcessError(RuntimeError):
    """The server did not start, or did not become ready in time."""


@dataclass(frozen=True)
class ServerProcess:
    url: str
    pid: int | None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _console_script() -> Path:
    script = Path(sys.executable).with_name("fraudstream")
    if not script.exists():
        raise FileNotFoundError(f"no fraudstream command next to {sys.executable}")
    return script


def _tail(output: IO[bytes], limit: int = 2_000) -> str:
    output.seek(0)
    return output.read().decode(errors="replace")[-limit:].strip()


def wait_ready(url: str, process: subprocess.Popen[bytes] | None, output: IO[bytes] | None) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    with httpx.Client(base_url=url, timeout=5, trust_env=False) as client:
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                said = _tail(output) if output is not None else ""
                raise ServerProcessError(
                    f"the server exited with status {process.returncode}: {said}"
                )
            with contextlib.suppress(httpx.TransportError):
                if client.get("/readyz").status_code == 200:
                    return
            time.sleep(0.1)
    raise ServerProcessError(f"{url} was not ready within {READY_TIMEOUT_SECONDS:g} s")


def stop_process(
    process: subprocess.Popen[bytes], *, timeout: float = STOP_TIMEOUT_SECONDS
) -> bool:
    """SIGTERM, so that the process leaves cleanly; SIGKILL if it is still there after
    ``timeout``. True if it left by itself, False if it had to be killed."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_process(process)
        return False
    return True


def kill_process(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL, and wait for the exit: a crash, for the tests that must survive one."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
    process.wait()


@contextlib.contextmanager
def serve(
    url: str | None = None, settings: Mapping[str, str] | None = None, *, role: str = "serve"
) -> Iterator[ServerProcess]:
    """The server at ``url``, or a ``fraudstream serve`` (or ``api``) subprocess stopped by pid
    on exit.

    ``settings`` are ``FRAUDSTREAM_*`` variables for the subprocess; simulated traffic is off
    unless they turn it on, so that what is measured or tested is only what the caller sends.
    """
    if url is not None:
        wait_ready(url.rstrip("/"), None, None)
        yield ServerProcess(url.rstrip("/"), None)
        return
    port = free_port()
    command = [str(_console_script()), role, "--host", "127.0.0.1", "--port", str(port)]
    # Forwarded, not read: the child reads its settings from this environment itself.
    with tempfile.TemporaryFile() as output, tempfile.TemporaryDirectory() as data_dir:
        # A fresh data directory unless one is given: no run resumes another's models.
        environment = {
            **os.environ,
            "FRAUDSTREAM_SIMULATE_RATE": "0",
            "FRAUDSTREAM_DATA_DIR": data_dir,
            **(settings or {}),
        }
        process = subprocess.Popen(command, env=environment, stdout=output, stderr=output)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_ready(base, process, output)
            yield ServerProcess(base, process.pid)
        finally:
            stop_process(process)


def process_cpu_seconds(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # utime and stime are fields 14 and 15; the command name before ")" may hold spaces.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
