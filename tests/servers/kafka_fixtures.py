"""Fixtures for the tests that need a real Kafka-protocol broker (registered in tests/conftest.py).

Tests share one broker and keep apart by topic names: each test gets its own prefix. A test
that fails shows the tail of the broker's log and of the log of every role process it started.
"""

from __future__ import annotations

import uuid
from collections.abc import Generator, Iterator

import pytest

from pipelines.stream.kafka_clients import KafkaSettings
from pipelines.stream.topics import Topics
from tests.servers.kafka_broker import KafkaBroker
from tests.servers.role_process import RoleProcess

TEST_SESSION_TIMEOUT_MS = 2_000
"""Tansu holds a join for about half the session timeout (never under about a second), and a
consumer of a group's first generation leaves without telling it (see
`KafkaSettings.session_timeout_ms`): short, so that a consumer starts in a second, not five."""
TEST_HEARTBEAT_INTERVAL_MS = 500
ROLE_LOG_TAIL = 12_000
"""Characters of a role's log a failed test shows: its start-up, its group's joins and
assignments, and its last errors."""


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    """One Tansu broker for the session, started on first use."""
    broker = KafkaBroker(tmp_path_factory.mktemp("tansu"))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def kafka_settings(kafka_broker: KafkaBroker) -> KafkaSettings:
    """Settings for the session's broker, with consumers that join their group quickly."""
    if kafka_broker.pid is None:  # a test stopped it (kill, stop) and did not start it again
        kafka_broker.start()
    return KafkaSettings(
        bootstrap=kafka_broker.bootstrap,
        client_id="fraudstream-tests",
        session_timeout_ms=TEST_SESSION_TIMEOUT_MS,
        heartbeat_interval_ms=TEST_HEARTBEAT_INTERVAL_MS,
    )


@pytest.fixture
def topics() -> Topics:
    """Topic names no other test uses."""
    return Topics.with_prefix(f"t{uuid.uuid4().hex[:12]}.")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Each test's failure report names its own roles only."""
    RoleProcess.started.clear()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item,
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed test that used the broker shows the tail of the broker's log, and one that
    started role processes (`start_role`) the tail of each one's log, killed or not."""
    report: pytest.TestReport = yield
    if not report.failed:
        return report
    broker = getattr(item, "funcargs", {}).get("kafka_broker")
    if isinstance(broker, KafkaBroker):
        report.sections.append(("Tansu broker log (tail)", broker.log_tail()))
    for role in RoleProcess.started:
        report.sections.append((f"{role.log.name} (tail)", role.log_tail(ROLE_LOG_TAIL)))
    return report
