"""The file job book: a job's state outlives its process, and one a stop cut short fails."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipelines.retrain.book import INTERRUPTED, FileJobBook, RetrainJob
from tests.service.client import api_client

CREATED = datetime(2026, 12, 1, tzinfo=UTC)


def _job(job_id: str, state: str) -> RetrainJob:
    return RetrainJob(job_id, "on demand", CREATED, state=state, progress=0.4, step="training")


def test_a_job_reads_back_as_saved_from_a_new_book(tmp_path: Path) -> None:
    FileJobBook(tmp_path).save(_job("0123456789ab", "succeeded"))
    again = FileJobBook(tmp_path).get("0123456789ab")
    assert again == _job("0123456789ab", "succeeded")
    assert FileJobBook(tmp_path).get("fedcba987654") is None


def test_jobs_a_stop_cut_short_fail_saying_so_when_the_book_opens(tmp_path: Path) -> None:
    book = FileJobBook(tmp_path)
    book.save(_job("aaaaaaaaaaaa", "running"))
    book.save(_job("bbbbbbbbbbbb", "queued"))
    book.save(_job("cccccccccccc", "succeeded"))
    reopened = FileJobBook(tmp_path)
    for job_id in ("aaaaaaaaaaaa", "bbbbbbbbbbbb"):
        job = reopened.get(job_id)
        assert job is not None
        assert (job.state, job.error) == ("failed", INTERRUPTED)
        assert job.finished_at is not None
    finished = reopened.get("cccccccccccc")
    assert finished is not None
    assert (finished.state, finished.error) == ("succeeded", None)


@pytest.mark.parametrize("job_id", ["../state", "ABCDEF012345", "0123456789abc", ""])
def test_only_a_job_ids_spelling_names_a_file(tmp_path: Path, job_id: str) -> None:
    (tmp_path / "jobs").mkdir()
    (tmp_path / "state.json").write_bytes(_job("0123456789ab", "running").to_json())
    assert FileJobBook(tmp_path / "jobs").get(job_id) is None


def test_the_book_keeps_the_newest_jobs(tmp_path: Path) -> None:
    book = FileJobBook(tmp_path, keep=2)
    for index in range(4):
        book.save(_job(f"{index:012x}", "succeeded"))
    assert [book.get(f"{index:012x}") is not None for index in range(4)] == [
        False,
        False,
        True,
        True,
    ]


@pytest.mark.anyio
async def test_after_a_restart_an_interrupted_job_answers_failed_not_404(tmp_path: Path) -> None:
    # What a process killed mid-training leaves: its job saved as running.
    FileJobBook(tmp_path / "retrain-jobs").save(_job("0123456789ab", "running"))
    async with api_client(data_dir=tmp_path) as (client, _):
        answer = await client.get("/v1/retrain/0123456789ab")
    assert answer.status_code == 200, answer.text
    assert answer.json()["state"] == "failed"
    assert answer.json()["error"] == INTERRUPTED
