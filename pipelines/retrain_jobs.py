"""Retrain jobs: triggered on demand or on a schedule, one at a time, never blocking scoring.

A job reads the offline store, trains, measures and draws its report in a child process (spawned,
one OpenMP thread, so the scorer keeps a core and the GIL: reading and de-duplicating the rows
and drawing the report hold the GIL for up to a second at a time, which in a thread showed as
scoring stalls); the parent only waits on a pipe for progress and the result. The last step,
registering the model and changing what serves, runs on the event loop, between two requests,
like every other change to the serving models.

One job at a time, across processes sharing the data directory: a non-blocking ``flock`` on
``<data dir>/retrain.lock``, which holds the running job's id so that a second trigger is told
which job it waits on (HTTP 409). The lock is the kernel's: a crashed job's lock goes with its
process. A job that fails (too few labels, no fraud) changes nothing and says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import logging
import multiprocessing
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import IO

import pyarrow

from pipelines.report import write_report
from pipelines.retrain import (
    ExampleSource,
    RetrainError,
    RetrainOptions,
    RetrainResult,
    retrain,
)

logger = logging.getLogger(__name__)

Apply = Callable[[RetrainResult], str]
"""Registers the result and changes what serves; returns the version registered."""


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

    def advance(self, done: float, step: str) -> None:
        self.progress = round(done, 3)
        self.step = step


class RetrainLock:
    """A non-blocking file lock naming the job that holds it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextlib.contextmanager
    def hold(self, job_id: str) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle: IO[str] = self.path.open("a+")
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                raise RetrainRunningError(handle.read().strip() or "unknown") from None
            handle.seek(0)
            handle.truncate()
            handle.write(job_id)
            handle.flush()
            try:
                yield
            finally:
                handle.truncate(0)
                fcntl.flock(handle, fcntl.LOCK_UN)
        finally:
            handle.close()


def new_job_id() -> str:
    return uuid.uuid4().hex[:12]


class RetrainJobs:
    """Runs retrain jobs against one offline store and one serving process."""

    def __init__(
        self,
        source: ExampleSource,
        options: RetrainOptions,
        lock: RetrainLock,
        apply: Apply,
        event_time: Callable[[], datetime | None],
        *,
        reports: Path | None = None,
        keep_jobs: int = 100,
    ) -> None:
        self.source = source
        self.options = options
        self.lock = lock
        self.apply = apply
        self.event_time = event_time
        self.reports = reports
        self.jobs: dict[str, RetrainJob] = {}
        self._keep_jobs = keep_jobs
        self._running: RetrainJob | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_as_of: datetime | None = None

    def get(self, job_id: str) -> RetrainJob | None:
        return self.jobs.get(job_id)

    def submit(self, trigger: str) -> RetrainJob:
        """Start a job on the running loop; `RetrainRunningError` if one is running."""
        if self._running is not None:
            raise RetrainRunningError(self._running.id)
        job = self._new(trigger)
        self._running = job
        task = asyncio.get_running_loop().create_task(self._run(job), name=f"retrain-{job.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job

    async def wait(self) -> None:
        """Until every job started here has finished (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _new(self, trigger: str) -> RetrainJob:
        job = RetrainJob(new_job_id(), trigger, datetime.now(UTC))
        self.jobs[job.id] = job
        while len(self.jobs) > self._keep_jobs:
            del self.jobs[next(iter(self.jobs))]
        return job

    async def _run(self, job: RetrainJob) -> None:
        try:
            with self.lock.hold(job.id):
                job.state = "running"
                as_of = self._as_of()
                job.as_of = as_of
                result = await asyncio.to_thread(self._train_in_child, job, as_of)
                # On the loop: registering and swapping models happens between two requests.
                self._finish(job, result)
        except (RetrainError, RetrainRunningError) as error:
            self._fail(job, str(error))
        except Exception as error:
            logger.exception("retrain job %s failed", job.id)
            self._fail(job, f"internal error: {type(error).__name__}")
        finally:
            self._running = None

    def run_now(
        self,
        trigger: str,
        as_of: datetime | None = None,
        progress: Callable[[float, str], None] | None = None,
    ) -> RetrainJob:
        """Run a job in this thread, start to finish (the command line); never raises for a
        job that fails, which is reported in the returned job."""
        job = self._new(trigger)
        if progress is not None:
            advance = job.advance

            def both(done: float, step: str) -> None:
                advance(done, step)
                progress(done, step)

            job.advance = both  # type: ignore[method-assign]
        try:
            with self.lock.hold(job.id):
                job.state = "running"
                job.as_of = as_of or self._as_of()
                self._finish(job, self._train(job, job.as_of))
        except (RetrainError, RetrainRunningError) as error:
            self._fail(job, str(error))
        return job

    def _as_of(self) -> datetime:
        moment = self.event_time()
        if moment is None:
            raise RetrainError("nothing has been scored yet: there is no event time to train at")
        return moment

    def _train(self, job: RetrainJob, as_of: datetime) -> RetrainResult:
        result = retrain(self.source, as_of, self.options, progress=job.advance)
        self._write_report(job, result)
        return result

    def _train_in_child(self, job: RetrainJob, as_of: datetime) -> RetrainResult:
        context = multiprocessing.get_context("spawn")
        receiver, sender = context.Pipe(duplex=False)
        child = context.Process(
            target=_child,
            args=(sender, self.source, as_of, self.options, self._report_dir(job)),
            name=f"retrain-{job.id}",
            daemon=True,
        )
        child.start()
        sender.close()
        try:
            while True:
                try:
                    message = receiver.recv()
                except EOFError:
                    raise RuntimeError("the retrain process ended without a result") from None
                kind, payload = message
                if kind == "progress":
                    job.advance(*payload)
                elif kind == "failed":
                    raise RetrainError(payload)
                else:
                    job.report = payload[1]
                    result: RetrainResult = payload[0]
                    return result
        finally:
            receiver.close()
            child.join()

    def _report_dir(self, job: RetrainJob) -> Path | None:
        return None if self.reports is None else self.reports / job.id

    def _write_report(self, job: RetrainJob, result: RetrainResult) -> None:
        directory = self._report_dir(job)
        if directory is not None:
            write_job_report(result, directory, job.id)
            job.report = str(directory)

    def _finish(self, job: RetrainJob, result: RetrainResult) -> None:
        job.advance(1.0, "registering")
        job.version = self.apply(result)
        job.decision = "promote" if result.promote else "challenger"
        job.metrics = result.summary()
        job.state = "succeeded"
        job.step = "done"
        job.finished_at = datetime.now(UTC)
        self._last_as_of = job.as_of
        logger.info(
            "retrain %s: %s (hold-out AP %.4f against the champion's %.4f)",
            job.id,
            job.decision,
            result.candidate.mean_weekly_average_precision,
            result.champion.mean_weekly_average_precision,
            extra={"model_version": job.version},
        )

    def _fail(self, job: RetrainJob, reason: str) -> None:
        job.state = "failed"
        job.error = reason
        job.finished_at = datetime.now(UTC)
        logger.warning("retrain %s failed: %s", job.id, reason)

    async def run_schedule(self, every: timedelta, check_seconds: float = 5.0) -> None:
        """Retrain whenever event time has moved ``every`` past the last retrain (or past the
        first event time seen)."""
        start: datetime | None = None
        while True:
            await asyncio.sleep(check_seconds)
            now = self.event_time()
            if now is None:
                continue
            start = start or now
            since = self._last_as_of or start
            if now - since >= every and self._running is None:
                with contextlib.suppress(RetrainRunningError):
                    self.submit("schedule")
                # A failed job waits for the next period too, instead of retrying every check.
                self._last_as_of = now


def event_time_of(watermark: Callable[[], int | None]) -> Callable[[], datetime | None]:
    """The detector's watermark (latest event second scored) as an aware datetime."""

    def now() -> datetime | None:
        second = watermark()
        return None if second is None else datetime.fromtimestamp(second, UTC)

    return now


def write_job_report(result: RetrainResult, directory: Path, job_id: str) -> None:
    """``metrics.json`` and ``report.png``: candidate and champion on the hold-out."""
    write_report(
        result.candidate,
        result.holdout,
        directory,
        title=f"retrain {job_id}: {result.model.name} against the champion, hold-out",
        extra={"job": job_id, **result.summary()},
        score_columns=("candidate_score", "score"),
    )


def _child(
    sender: Connection,
    source: ExampleSource,
    as_of: datetime,
    options: RetrainOptions,
    report: Path | None,
) -> None:
    """The retrain process: progress, then the result (or the reason it failed), on the pipe."""
    # Background work: the scheduler favours the serving process, and Arrow reads with one
    # thread instead of one per core.
    os.nice(10)
    pyarrow.set_cpu_count(1)
    pyarrow.set_io_thread_count(1)
    try:
        result = retrain(
            source,
            as_of,
            options,
            progress=lambda done, step: sender.send(("progress", (done, step))),
        )
        if report is not None:
            write_job_report(result, report, report.name)
        # The parent needs the model and the figures; the hold-out rows stay here (in the
        # report), so that unpickling the result costs the serving process next to nothing.
        light = dataclasses.replace(result, holdout=result.holdout.iloc[:0])
        sender.send(("result", (light, None if report is None else str(report))))
    except RetrainError as error:
        sender.send(("failed", str(error)))
    finally:
        sender.close()
