"""Retrain jobs: triggered on demand or on a schedule, one at a time, never blocking scoring.

A job reads the offline store, trains, measures and draws its report in a child process (spawned,
one OpenMP thread, so the scorer keeps a core and the GIL: reading and de-duplicating the rows
and drawing the report hold the GIL for up to a second at a time, which in a thread showed as
scoring stalls); the parent only waits on a pipe for progress and the result. The last step,
registering the model and changing what serves, runs on the event loop, between two requests,
like every other change to the serving models.

One job at a time: the lock (``pipelines.retrain.book``: a file lock, or a Redis key in
distributed mode) is taken when a job is submitted, so a second trigger is refused at once
with the running job's id (HTTP 409), and released when it ends. Every change of a job's state
is saved to its job book, where ``GET /v1/retrain/{id}`` reads it. A job that fails (too few
labels, no fraud) changes nothing and says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import multiprocessing
import os
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path

import pyarrow

from pipelines.offline.report import write_report
from pipelines.retrain.book import (
    JobBook,
    JobLock,
    MemoryJobBook,
    RetrainJob,
    RetrainLock,
    RetrainRunningError,
    holding,
)
from pipelines.retrain.job import (
    ExampleSource,
    RetrainError,
    RetrainOptions,
    RetrainResult,
    retrain,
)

__all__ = [
    "Apply",
    "Decide",
    "RetrainJobs",
    "RetrainLock",
    "event_time_of",
    "promotion_decision",
    "write_job_report",
]
"""`RetrainLock` too: the file lock is what a caller of the jobs in one process passes."""

logger = logging.getLogger(__name__)

Apply = Callable[[RetrainResult], str]
"""Registers a result's model and changes what serves; returns the version registered."""

Decide = Callable[[RetrainResult], str]
"""What a job reports it did with its model, once applied."""


def promotion_decision(result: RetrainResult) -> str:
    """``promote`` when the candidate's hold-out gain reached the margin, else ``challenger``."""
    return "promote" if result.promote else "challenger"


Progress = Callable[[float, str], None]


def new_job_id() -> str:
    return uuid.uuid4().hex[:12]


class RetrainJobs:
    """Runs retrain jobs against one offline store and one serving process."""

    remote = False

    def __init__(
        self,
        source: ExampleSource,
        options: RetrainOptions,
        lock: JobLock,
        apply: Apply,
        event_time: Callable[[], datetime | None],
        *,
        reports: Path | None = None,
        keep_jobs: int = 100,
        book: JobBook | None = None,
        apply_warm: Apply | None = None,
        decide: Decide = promotion_decision,
    ) -> None:
        self.source = source
        self.options = options
        self.lock = lock
        self.apply = apply
        self.apply_warm = apply_warm
        """Registers a warm restart's online learner as a challenger (none: no warm restart)."""
        self.decide = decide
        self.event_time = event_time
        self.reports = reports
        self.book = book or MemoryJobBook(keep_jobs)
        self._running: RetrainJob | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_as_of: datetime | None = None
        self._process: BaseProcess | None = None
        self._closing = False

    def get(self, job_id: str) -> RetrainJob | None:
        return self.book.get(job_id)

    def submit(self, trigger: str, *, warm_restart: bool | None = None) -> RetrainJob:
        """Start a job on the running loop; `RetrainRunningError` if one is running (here, or
        wherever the lock is held)."""
        if self._running is not None:
            raise RetrainRunningError(self._running.id)
        job = self._new(trigger, warm_restart)
        self.lock.acquire(job.id)
        self._running = job
        try:
            self.book.save(job)
            task = asyncio.get_running_loop().create_task(self._run(job), name=f"retrain-{job.id}")
        except BaseException:
            self._running = None
            self.lock.release(job.id)
            raise
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job

    async def wait(self) -> None:
        """Until every job started here has finished (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self) -> None:
        """Stop a running job (its process is ended; the job fails saying so) and wait for it:
        shutting down never waits for a training to finish."""
        self._closing = True
        child = self._process
        if child is not None and child.is_alive():
            child.terminate()
        await self.wait()

    def _new(self, trigger: str, warm_restart: bool | None) -> RetrainJob:
        wanted = self.options.warm_restart if warm_restart is None else warm_restart
        return RetrainJob(
            new_job_id(),
            trigger,
            datetime.now(UTC),
            warm_restart=wanted and self.apply_warm is not None,
        )

    def _options(self, job: RetrainJob) -> RetrainOptions:
        return dataclasses.replace(self.options, warm_restart=job.warm_restart)

    def _start(self, job: RetrainJob, as_of: datetime | None) -> datetime:
        job.state = "running"
        job.as_of = as_of or self._as_of()
        self.book.save(job)
        return job.as_of

    async def _run(self, job: RetrainJob) -> None:
        try:
            as_of = self._start(job, None)
            result = await asyncio.to_thread(self._train_in_child, job, as_of)
            # On the loop: registering and swapping models happens between two requests.
            self._finish(job, result)
        except RetrainError as error:
            self._fail(job, str(error))
        except Exception as error:
            logger.exception("retrain job %s failed", job.id)
            self._fail(job, f"internal error: {type(error).__name__}")
        finally:
            self._running = None
            self.lock.release(job.id)

    def run_now(
        self,
        trigger: str,
        as_of: datetime | None = None,
        progress: Progress | None = None,
        *,
        warm_restart: bool | None = None,
    ) -> RetrainJob:
        """Run a job in this thread, start to finish (the command line); never raises for a
        job that fails, which is reported in the returned job."""
        job = self._new(trigger, warm_restart)
        try:
            with holding(self.lock, job.id):
                moment = self._start(job, as_of)
                result = retrain(
                    self.source, moment, self._options(job), progress=self._progress(job, progress)
                )
                self._write_report(job, result)
                self._finish(job, result)
        except (RetrainError, RetrainRunningError) as error:
            self._fail(job, str(error))
        return job

    def _progress(self, job: RetrainJob, also: Progress | None = None) -> Progress:
        def advance(done: float, step: str) -> None:
            job.advance(done, step)
            self.book.save(job)
            if also is not None:
                also(done, step)

        return advance

    def _as_of(self) -> datetime:
        moment = self.event_time()
        if moment is None:
            raise RetrainError(
                "no event time yet (nothing scored or learned): there is no time to train at"
            )
        return moment

    def _train_in_child(self, job: RetrainJob, as_of: datetime) -> RetrainResult:
        context = multiprocessing.get_context("spawn")
        receiver, sender = context.Pipe(duplex=False)
        child = context.Process(
            target=_child,
            args=(sender, self.source, as_of, self._options(job), self._report_dir(job)),
            name=f"retrain-{job.id}",
            daemon=True,
        )
        child.start()
        self._process = child
        sender.close()
        if self._closing:
            child.terminate()
        advance = self._progress(job)
        try:
            while True:
                try:
                    message = receiver.recv()
                except EOFError:
                    if self._closing:
                        raise RetrainError("stopped: the process running it shut down") from None
                    raise RuntimeError("the retrain process ended without a result") from None
                kind, payload = message
                if kind == "progress":
                    advance(*payload)
                elif kind == "failed":
                    raise RetrainError(payload)
                else:
                    job.report = payload[1]
                    result: RetrainResult = payload[0]
                    return result
        finally:
            receiver.close()
            child.join()
            self._process = None

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
        if result.warm is not None and self.apply_warm is not None:
            job.warm_restart_version = self.apply_warm(result)
        job.decision = self.decide(result)
        job.metrics = {**result.summary(), "decision": job.decision}
        job.state = "succeeded"
        job.step = "done"
        job.finished_at = datetime.now(UTC)
        self.book.save(job)
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
        self.book.save(job)
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
