"""A forked child writes the value as it stood at the fork, whatever the parent does after."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.snapshots import SnapshotError, load_signed
from pipelines.lifecycle.forked_write import ForkedWriteError, ForkedWriter, remove_stale

KEY = b"a-test-secret-of-at-least-32-bytes!"
EMPTY: dict[str, object] = {"labels": []}

pytestmark = pytest.mark.anyio


def _name(value: dict[str, object], detail: str) -> None:
    value["version"] = detail


async def test_the_child_writes_the_value_as_it_stood_at_the_fork(tmp_path: Path) -> None:
    target = tmp_path / "state.snapshot"
    value: dict[str, object] = {"labels": [1, 2, 3]}
    writer = ForkedWriter(target, value, KEY, _name)
    value["labels"] = [4]  # the parent goes on changing it
    written = await writer.write("m000007")
    assert not target.exists()  # the parent puts it in place
    assert written.parent == tmp_path
    assert load_signed(written.read_bytes(), KEY, dict) == {
        "labels": [1, 2, 3],
        "version": "m000007",
    }
    with pytest.raises(SnapshotError):
        load_signed(written.read_bytes(), b"another-key-of-at-least-32-bytes!!", dict)


async def test_an_abandoned_child_writes_nothing(tmp_path: Path) -> None:
    writer = ForkedWriter(tmp_path / "state.snapshot", EMPTY, KEY, _name)
    await writer.abandon()
    assert list(tmp_path.iterdir()) == []


def _refuse(value: dict[str, object], detail: str) -> None:
    raise ValueError(detail)


async def test_a_child_that_fails_says_so_and_leaves_no_file(tmp_path: Path) -> None:
    writer = ForkedWriter(tmp_path / "state.snapshot", EMPTY, KEY, _refuse)
    with pytest.raises(ForkedWriteError, match="status 1"):
        await writer.write("m000001")
    assert list(tmp_path.iterdir()) == []


def test_files_left_by_a_child_whose_parent_died_are_removed(tmp_path: Path) -> None:
    target = tmp_path / "state.snapshot"
    target.write_bytes(b"kept")
    (tmp_path / ".state.snapshot.0123abcd.forked").write_bytes(b"half")
    remove_stale(target)
    assert [path.name for path in tmp_path.iterdir()] == ["state.snapshot"]
