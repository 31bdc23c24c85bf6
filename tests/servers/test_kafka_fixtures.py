"""A failed test's report carries what its servers and role processes logged."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.servers.kafka_fixtures import pytest_runtest_makereport
from tests.servers.role_process import RoleProcess


def _report(item: pytest.Item, outcome: str) -> pytest.TestReport:
    """What the report hook makes of a report with ``outcome`` for ``item``."""
    report = pytest.TestReport(
        nodeid=item.nodeid,
        location=item.location,
        keywords={},
        outcome=outcome,  # type: ignore[arg-type]
        longrepr=None,
        when="call",
    )
    hook = pytest_runtest_makereport(item)
    next(hook)
    try:
        hook.send(report)
    except StopIteration as done:
        made: pytest.TestReport = done.value
        return made
    raise AssertionError("the report hook did not return the report")


def test_a_failed_test_shows_the_log_of_each_role_it_started(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    # A role that exits at once, saying why, as a worker that cannot start would.
    role = RoleProcess("no-such-role", {}, tmp_path / "worker-z.log").start()
    deadline = time.monotonic() + 60
    while role.alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert RoleProcess.started == [role]

    failed = _report(request.node, "failed")
    assert [title for title, _ in failed.sections] == ["worker-z.log (tail)"]
    assert "No such command 'no-such-role'" in failed.sections[0][1]
    assert _report(request.node, "passed").sections == []
