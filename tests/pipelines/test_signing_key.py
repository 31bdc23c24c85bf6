from __future__ import annotations

import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pipelines.signing_key import KEY_FILE, SigningKeyError, load_or_create_key, read_key


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_key_is_private_whatever_the_umask_and_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "data" / KEY_FILE
    previous = os.umask(0)
    try:
        key = load_or_create_key(path, min_bytes=32)
    finally:
        os.umask(previous)
    assert _mode(path) == 0o600
    assert len(key) == 64
    assert int(key, 16) > 0
    assert load_or_create_key(path, min_bytes=32) == key
    assert [p.name for p in path.parent.iterdir()] == [KEY_FILE]  # no draft left behind


def test_two_data_directories_never_share_a_key(tmp_path: Path) -> None:
    one = load_or_create_key(tmp_path / "one" / KEY_FILE, min_bytes=32)
    assert load_or_create_key(tmp_path / "two" / KEY_FILE, min_bytes=32) != one


def test_processes_starting_together_end_up_with_one_key(tmp_path: Path) -> None:
    path = tmp_path / KEY_FILE
    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: load_or_create_key(path, min_bytes=32), range(32)))
    assert len(keys) == 1
    assert [p.name for p in tmp_path.iterdir()] == [KEY_FILE]


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o602, 0o644])
def test_a_key_file_others_can_read_or_write_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / KEY_FILE
    load_or_create_key(path, min_bytes=32)
    path.chmod(mode)
    with pytest.raises(SigningKeyError, match="chmod 600"):
        load_or_create_key(path, min_bytes=32)


def test_a_symbolic_link_is_refused_even_to_a_private_key(tmp_path: Path) -> None:
    real = tmp_path / "elsewhere"
    load_or_create_key(real, min_bytes=32)
    (tmp_path / KEY_FILE).symlink_to(real)
    with pytest.raises(SigningKeyError, match="symbolic link"):
        load_or_create_key(tmp_path / KEY_FILE, min_bytes=32)
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(SigningKeyError, match="symbolic link"):
        load_or_create_key(tmp_path / "dangling", min_bytes=32)
    assert not (tmp_path / "nowhere").exists()  # never created through the link


def test_a_short_key_or_a_directory_is_refused(tmp_path: Path) -> None:
    path = tmp_path / KEY_FILE
    path.write_bytes(b"short\n")
    path.chmod(0o600)
    with pytest.raises(SigningKeyError, match="fewer than 32 bytes"):
        read_key(path, min_bytes=32)
    (tmp_path / "a-directory").mkdir(mode=0o700)
    with pytest.raises(SigningKeyError, match="not a regular file"):
        read_key(tmp_path / "a-directory", min_bytes=32)
