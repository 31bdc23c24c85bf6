"""What a retrain job is, where its state is kept, and the lock that keeps one at a time.

`RetrainJobs` (``pipelines.retrain.jobs``) runs the one job logic over two small seams:

- a `JobBook` keeps each job's state (``GET /v1/retrain/{id}``): `MemoryJobBook` in the process
  that runs the jobs, or in Redis (``pipelines.lifecycle.redis_retrain``) in distributed mode,
  where the learner runs them and every API replica reads them;
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
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Protocol

import orjson

FINAL_STATES = ("succeeded", "failed")


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
