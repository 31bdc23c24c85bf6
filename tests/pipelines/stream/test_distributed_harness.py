"""The distributed tests' harness keeps each test's roles apart from every other test's."""

from __future__ import annotations

import pytest

from pipelines.stream.kafka_clients import KafkaSettings
from pipelines.stream.topics import Topics
from service.settings import Settings
from tests.pipelines.stream.distributed_harness import role_env


def test_each_tests_roles_join_consumer_groups_of_their_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The session's broker outlives a test, and with it a group a test left broken (a leader
    # gone mid-rebalance): the next test's workers must not join it.
    kafka = KafkaSettings("127.0.0.1:9092")
    envs = [
        role_env(kafka, "redis://127.0.0.1:6379/0", Topics.with_prefix(prefix))
        for prefix in ("t1.", "t2.")
    ]
    groups = [{env["FRAUDSTREAM_CONSUMER_GROUP"], env["FRAUDSTREAM_LEARNER_GROUP"]} for env in envs]
    assert all(len(names) == 2 for names in groups)
    assert groups[0].isdisjoint(groups[1])
    for name, value in envs[0].items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert (settings.consumer_group, settings.learner_group) == ("t1.workers", "t1.learner")
