"""How every process the benches and tests start is stopped: SIGTERM, then SIGKILL if it hangs."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from pipelines.bench.server_process import kill_process, stop_process

# Says "ready" once its SIGTERM handling is in place, then waits to be stopped.
CHILD = """
import signal, sys, time
if sys.argv[1] == "ignore":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ready", flush=True)
time.sleep(60)
"""


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[bytes]]]:
    children: list[subprocess.Popen[bytes]] = []
    yield children
    for child in children:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()


def _child(started: list[subprocess.Popen[bytes]], on_sigterm: str) -> subprocess.Popen[bytes]:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, on_sigterm], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    started.append(child)
    assert child.stdout is not None
    assert child.stdout.readline() == b"ready\n"
    return child


def test_a_process_that_leaves_on_sigterm_is_not_killed(
    started: list[subprocess.Popen[bytes]],
) -> None:
    child = _child(started, "leave")
    assert stop_process(child) is True
    assert child.returncode == -signal.SIGTERM


def test_a_process_that_ignores_sigterm_is_killed_after_the_timeout(
    started: list[subprocess.Popen[bytes]],
) -> None:
    child = _child(started, "ignore")
    assert stop_process(child, timeout=0.5) is False
    assert child.returncode == -signal.SIGKILL


def test_stopping_a_process_that_has_already_exited_reports_its_own_exit(
    started: list[subprocess.Popen[bytes]],
) -> None:
    child = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    started.append(child)
    child.wait()
    assert stop_process(child) is True
    assert child.returncode == 3


def test_kill_process_is_a_crash_not_a_clean_stop(
    started: list[subprocess.Popen[bytes]],
) -> None:
    child = _child(started, "leave")
    kill_process(child)
    assert child.returncode == -signal.SIGKILL
