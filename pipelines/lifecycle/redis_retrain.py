"""Retrain jobs in distributed mode: the lock and the job book in Redis, and the API's view.

The learner is the single writer of the models, so it runs the jobs (`RetrainJobs`, the same
code as the embedded service) and applies their results through its lifecycle, publishing the
new serving models as for any promotion. An API replica asks it to start one through the model
command queue (`RemoteRetrainJobs`), and reads any job's state from Redis, so every replica
answers ``GET /v1/retrain/{id}`` alike.

One job at a time: ``{prefix}retrain:lock`` is set NX to the running job's id, with a TTL that
a thread of the holder renews while it runs; a crashed learner's lock lapses with the TTL.
Renewing and releasing compare the id first (one Lua call each), so a holder that lost its
lock never extends or deletes another job's.
"""

from __future__ import annotations

import dataclasses
import logging
import threading

import redis

from pipelines.lifecycle.model_commands import ModelCommands
from pipelines.retrain.book import RetrainJob, RetrainRunningError

logger = logging.getLogger(__name__)

LOCK_TTL_SECONDS = 60.0
JOB_TTL_SECONDS = 30 * 86_400
"""How long a job's state stays readable after its last change."""

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


def _text(raw: object) -> str | None:
    if raw is None:
        return None
    return raw.decode() if isinstance(raw, bytes) else str(raw)


class RedisRetrainLock:
    """A Redis key holding the running job's id, renewed while the job runs."""

    def __init__(
        self, client: redis.Redis, *, prefix: str, ttl_seconds: float = LOCK_TTL_SECONDS
    ) -> None:
        self._client = client
        self.key = f"{prefix}retrain:lock"
        self.ttl_seconds = ttl_seconds
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self._renewing: dict[str, threading.Event] = {}

    @property
    def _ttl_ms(self) -> int:
        return max(1, int(self.ttl_seconds * 1_000))

    def holder(self) -> str | None:
        """The id of the job holding the lock, if any."""
        return _text(self._client.get(self.key))

    def acquire(self, job_id: str) -> None:
        if not self._client.set(self.key, job_id, nx=True, px=self._ttl_ms):
            raise RetrainRunningError(self.holder() or "unknown")
        stop = threading.Event()
        self._renewing[job_id] = stop
        # A thread, not a task: the job's owner may be an event loop or the command line.
        threading.Thread(
            target=self._keep, args=(job_id, stop), name=f"retrain-lock-{job_id}", daemon=True
        ).start()

    def release(self, job_id: str) -> None:
        stop = self._renewing.pop(job_id, None)
        if stop is not None:
            stop.set()
        self._release(keys=[self.key], args=[job_id])

    def _keep(self, job_id: str, stop: threading.Event) -> None:
        while not stop.wait(self.ttl_seconds / 3):
            try:
                if not self._renew(keys=[self.key], args=[job_id, self._ttl_ms]):
                    logger.error("retrain %s lost its lock (it lapsed); not renewing", job_id)
                    return
            except redis.RedisError as error:
                # Retried at the next period; the TTL leaves two more before the lock lapses.
                logger.warning("could not renew the lock of retrain %s: %s", job_id, error)


class RedisJobBook:
    """Each job's state as JSON under ``{prefix}retrain:job:{id}``, kept ``ttl`` after its last
    change."""

    def __init__(
        self, client: redis.Redis, *, prefix: str, ttl_seconds: int = JOB_TTL_SECONDS
    ) -> None:
        self._client = client
        self._prefix = f"{prefix}retrain:job:"
        self.ttl_seconds = ttl_seconds

    def save(self, job: RetrainJob) -> None:
        self._client.set(self._prefix + job.id, job.to_json(), ex=self.ttl_seconds)

    def get(self, job_id: str) -> RetrainJob | None:
        raw = self._client.get(self._prefix + job_id)
        return None if raw is None else RetrainJob.from_json(raw)


class RemoteRetrainJobs:
    """The learner's retrain jobs as an API replica sees them: started by a command, read from
    Redis."""

    remote = True

    def __init__(
        self,
        commands: ModelCommands,
        book: RedisJobBook,
        lock: RedisRetrainLock,
        *,
        timeout: float = 10.0,
    ) -> None:
        self.commands = commands
        self.book = book
        self.lock = lock
        self.timeout = timeout

    def submit(self, trigger: str, *, warm_restart: bool | None = None) -> RetrainJob:
        """Ask the learner to start a job (blocking: call it off the loop); raises
        `RetrainRunningError` with the running job's id, or `LearnerUnavailableError`."""
        answer = self.commands.ask(
            "retrain", self.timeout, trigger=trigger, warm_restart=warm_restart
        )
        return RetrainJob.from_json(answer["job"])

    def get(self, job_id: str) -> RetrainJob | None:
        job = self.book.get(job_id)
        if job is None or job.finished or self.lock.holder() == job.id:
            return job
        # Its lock is gone: either it finished in between (its final state is saved before
        # the lock is released, so read again), or the learner died while it ran.
        job = self.book.get(job_id)
        if job is None or job.finished:
            return job
        return dataclasses.replace(
            job, state="failed", error="the learner stopped before the job finished"
        )
