"""Rule sets written, verified, parsed again and rolled back, in a file and in real Redis."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
import redis

from models.rules.grammar import RuleAction, RuleFields
from pipelines.rules.book import (
    InvalidRuleError,
    RuleBook,
    RuleFollower,
    UnknownVersionError,
    rules_at_start,
)
from pipelines.rules.sealed import RuleSpec, TamperedRulesError, key_id
from pipelines.rules.storage import FileRuleStorage, RedisRuleStorage, RuleStorage

KEY = b"k" * 32
FIELDS = RuleFields.of_features(("amount", "card_terminal_first_use"))
WHEN = datetime(2026, 12, 1, tzinfo=UTC)
BIG = RuleSpec("big", "amount > 1000 -> review")
HOUSE = RuleSpec("house", 'terminal_id == "T1" -> allow')


@pytest.fixture(params=["file", "redis"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RuleStorage]:
    if request.param == "file":
        yield FileRuleStorage(tmp_path / "rules.json")
        return
    url: str = request.getfixturevalue("redis_url")
    with redis.Redis.from_url(url) as client:
        yield RedisRuleStorage(client, prefix="fraudstream:test:")


def book(storage: RuleStorage, *, key: bytes = KEY, keep: int = 50) -> RuleBook:
    return RuleBook(storage, key, FIELDS, keep=keep, clock=lambda: WHEN)


def test_versions_grow_and_the_last_is_in_force(storage: RuleStorage) -> None:
    rules = book(storage)
    assert rules.current().record is None
    assert rules.write([BIG]).rules.version == 1
    in_force = rules.write([BIG, HOUSE])
    assert (in_force.rules.version, len(in_force.rules.rules)) == (2, 2)
    assert in_force.rules.rules[1].action is RuleAction.ALLOW
    again = book(storage).current()
    assert again.record is not None
    assert (again.record.version, again.record.written_at) == (2, WHEN)
    assert again.record.key_id == key_id(KEY)
    assert [record.version for record in rules.versions()] == [2, 1]


def test_a_bad_rule_is_refused_before_anything_is_stored(storage: RuleStorage) -> None:
    rules = book(storage)
    with pytest.raises(InvalidRuleError) as refused:
        rules.write([BIG, RuleSpec("typo", "amnt > 1 -> alert")])
    assert (refused.value.index, refused.value.field) == (1, "text")
    assert "unknown field 'amnt'" in str(refused.value)
    with pytest.raises(InvalidRuleError, match="unique"):
        rules.write([BIG, BIG])
    assert storage.version() is None


def test_rollback_writes_the_old_rules_as_the_next_version(storage: RuleStorage) -> None:
    rules = book(storage)
    rules.write([BIG])
    rules.write([HOUSE])
    rolled = rules.rollback(1)
    assert rolled.rules.version == 3
    assert [rule.name for rule in rolled.rules.rules] == ["big"]
    with pytest.raises(UnknownVersionError):
        rules.rollback(9)


def test_history_is_bounded(storage: RuleStorage) -> None:
    rules = book(storage, keep=2)
    for _ in range(4):
        rules.write([BIG])
    assert [record.version for record in rules.versions()] == [4, 3]
    with pytest.raises(UnknownVersionError):
        rules.rollback(1)


def test_another_key_or_an_altered_text_is_refused(
    storage: RuleStorage, caplog: pytest.LogCaptureFixture
) -> None:
    book(storage).write([HOUSE])
    with pytest.raises(TamperedRulesError, match="does not verify"):
        book(storage, key=b"j" * 32).current()
    with caplog.at_level(logging.ERROR):
        assert not rules_at_start(book(storage, key=b"j" * 32)).rules
    assert "refused the stored rule set" in caplog.text


def test_a_signed_text_that_no_longer_parses_is_refused(storage: RuleStorage) -> None:
    book(storage).write([BIG])
    narrower = RuleBook(storage, KEY, RuleFields.of_features(("card_terminal_first_use",)))
    with pytest.raises(InvalidRuleError, match="unknown field 'amount'"):
        narrower.current()


def test_the_follower_applies_new_versions_and_keeps_the_set_on_a_tampered_one(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with redis.Redis.from_url(redis_url) as client:
        storage = RedisRuleStorage(client, prefix="fraudstream:test:")
        writer = book(storage)
        follower = RuleFollower(book(storage), poll_seconds=0.0)
        assert follower.newer() is None  # nothing written yet
        writer.write([BIG])
        first = follower.newer()
        assert first is not None
        assert first.version == 1
        assert follower.newer() is None  # unchanged
        writer.write([BIG, HOUSE])
        sealed = client.lrange("fraudstream:test:rules:history", -1, -1)[0]
        altered = sealed.replace(b"T1", b"T9")
        client.lset("fraudstream:test:rules:history", -1, altered)
        with caplog.at_level(logging.ERROR):
            assert follower.newer() is None
        assert "refused rule set version 2, keeping the rules in force" in caplog.text
        writer.write([HOUSE])
        third = follower.newer()
        assert third is not None
        assert [r.name for r in third.rules] == ["house"]


def test_the_file_holds_plain_json_a_reader_can_audit(tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    book(FileRuleStorage(path)).write([HOUSE])
    stored = orjson.loads(path.read_bytes())
    sealed = orjson.loads(stored["history"][-1])
    assert sealed["body"]["rules"] == [
        {"name": "house", "text": 'terminal_id == "T1" -> allow', "enabled": True}
    ]
    assert len(bytes.fromhex(sealed["signature"])) == 32
