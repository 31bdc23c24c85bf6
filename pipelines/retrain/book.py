"""What a retrain job is, where its state is kept, and the lock that keeps one at a time.

`RetrainJobs` (``pipelines.retrain.jobs``) runs the one job logic over two small seams:

- a `JobBook` keeps each job's state (``GET /v1/retrain/{id}``): `FileJobBook` under the data
  directory in embedded mode (a job a crash or a stop cut short answers ``failed`` after the
  restart, saying so), `MemoryJobBook` where nothing outlives the process (the command line),
  or Redis (``pipelines.lifecycle.redis_retrain``) in distributed mode, where the learner runs
  them and every API replica reads them;
- a `JobLock` holds the running job's id so that a second trigger is told which job it waits
  on (HTTP 409): `RetrainLock`, the kernel's ``flock`` on a file under the data directory
  (released with its process), or a Redis key set NX with a renewed TTL (gone with its
  process after the TTL).

`Retraining` is what the API asks of either: the jobs themselves, or an API replica's remote
view of the learner's jobs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Protocol

import orjson

from pipelines.durable_files import write_atomically

logger = logging.getLogger(__name__)

FINAL_STATES = ("succeeded", "failed")

INTERRUPTED = "interrupted: the service stopped before the job finished; trigger it again"
"""Why a job found unfinished when its book is opened failed."""

_JOB_ID = re.compile(r"[0-9a-f]{12}")


class RetrainRunningError(Exception):
    """Another retrain holds the lock."""

    def __init__(self, running: str) -> None:
        super().__init__(f"a retrain is already running: job {running}")
        self.running = running


@dataclass
class RetrainJob:
    """What a client sees of a job: ``GET /v1/retrain/{id}``."""

    id: str
    trigger: str
    created_at: datetime
    state: str = "queued"
    """``queued``, ``running``, ``succeeded`` or ``failed``."""
    progress: float = 0.0
    step: str = "queued"
    as_of: datetime | None = None
    """The event time the job ran at: its windows end a label delay before this day."""
    finished_at: datetime | None = None
    decision: str | None = None
    """``promote`` or ``challenger`` once succeeded."""
    version: str | None = None
    metrics: dict[str, object] = field(default_factory=dict)
    error: str | None = None
    report: str | None = None
    warm_restart: bool = False
    """Whether a fresh online learner is also replayed over the training window."""
    warm_restart_version: str | None = None
    """That learner's version, registered and shadowed as a challenger."""

    @property
    def finished(self) -> bool:
        return self.state in FINAL_STATES

    def advance(self, done: float, step: str) -> None:
        self.progress = round(done, 3)
        self.step = step

    def to_json(self) -> bytes:
        # NaN metrics (undefined on one class) become null: JSON has no spelling for them.
        return orjson.dumps(dataclasses.asdict(self), option=orjson.OPT_SERIALIZE_NUMPY)

    @classmethod
    def from_json(cls, raw: bytes | str) -> RetrainJob:
        fields = orjson.loads(raw)
        for name in ("created_at", "as_of", "finished_at"):
            if fields[name] is not None:
                fields[name] = datetime.fromisoformat(fields[name])
        return cls(**fields)


class JobBook(Protocol):
    """Where jobs' states are kept: saved at every change, read by id."""

    def save(self, job: RetrainJob) -> None: ...

    def get(self, job_id: str) -> RetrainJob | None: ...


class MemoryJobBook:
    """The last ``keep`` jobs of this process, in memory."""

    def __init__(self, keep: int = 100) -> None:
        self.keep = keep
        self.jobs: dict[str, RetrainJob] = {}

    def save(self, job: RetrainJob) -> None:
        self.jobs[job.id] = job
        while len(self.jobs) > self.keep:
            del self.jobs[next(iter(self.jobs))]

    def get(self, job_id: str) -> RetrainJob | None:
        return self.jobs.get(job_id)


class FileJobBook:
    """The last ``keep`` jobs as JSON files in ``directory``, one per job, each written whole.

    Opening the book fails every job it finds unfinished: only this process runs jobs from
    it, so one left queued or running was cut short by a crash or a stop.
    """

    def __init__(self, directory: Path, keep: int = 100) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.keep = keep
        found = sorted(directory.glob("*.json"), key=lambda path: path.stat().st_mtime_ns)
        self._order = [path.stem for path in found]
        """Job ids, oldest first: the order the newest ``keep`` are kept in."""
        for path in found:
            job = self._read(path)
            if job is not None and not job.finished:
                job.state, job.error = "failed", INTERRUPTED
                job.finished_at = datetime.now(UTC)
                self.save(job)
                logger.warning("retrain job %s was cut short by a stop: failed", job.id)

    def _read(self, path: Path) -> RetrainJob | None:
        try:
            return RetrainJob.from_json(path.read_bytes())
        except FileNotFoundError:
            return None

    def save(self, job: RetrainJob) -> None:
        write_atomically(self.directory / f"{job.id}.json", job.to_json())
        if job.id not in self._order:
            self._order.append(job.id)
        while len(self._order) > self.keep:
            (self.directory / f"{self._order.pop(0)}.json").unlink(missing_ok=True)

    def get(self, job_id: str) -> RetrainJob | None:
        # The id comes from a URL: only a job id's own spelling names a file.
        if not _JOB_ID.fullmatch(job_id):
            return None
        return self._read(self.directory / f"{job_id}.json")


class JobLock(Protocol):
    """One job at a time: `acquire` raises `RetrainRunningError` naming the holder."""

    def acquire(self, job_id: str) -> None: ...

    def release(self, job_id: str) -> None: ...


@contextlib.contextmanager
def holding(lock: JobLock, job_id: str) -> Iterator[None]:
    lock.acquire(job_id)
    try:
        yield
    finally:
        lock.release(job_id)


class RetrainLock:
    """A non-blocking file lock naming the job that holds it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: IO[str] | None = None

    def acquire(self, job_id: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle: IO[str] = self.path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            running = handle.read().strip() or "unknown"
            handle.close()
            raise RetrainRunningError(running) from None
        handle.seek(0)
        handle.truncate()
        handle.write(job_id)
        handle.flush()
        self._handle = handle

    def release(self, job_id: str) -> None:
        handle, self._handle = self._handle, None
        if handle is None:
            return
        try:
            handle.truncate(0)
            fcntl.flock(handle, fcntl.LOCK_UN)
        finally:
            handle.close()

    def hold(self, job_id: str) -> contextlib.AbstractContextManager[None]:
        return holding(self, job_id)


class Retraining(Protocol):
    """What the API asks of retrain jobs: the jobs of this process, or the learner's."""

    remote: bool
    """Submitting asks another process and waits for it: call it off the event loop."""

    def submit(self, trigger: str, *, warm_restart: bool | None = None) -> RetrainJob: ...

    def get(self, job_id: str) -> RetrainJob | None: ...
