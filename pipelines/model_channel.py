"""How the learner's model reaches the scorers: signed snapshots in Redis, polled by version.

The learner is the single writer: it publishes a snapshot with its version, and every worker
and API replica checks the version key now and then (a cheap GET) and loads the snapshot only
when it changed. A snapshot that does not verify is refused and the scorer keeps the model it
has. Loading happens between batches, so no request is ever scored by half a model.
"""

from __future__ import annotations

import logging
import time

import redis

from models.learners import OnlineLearner
from models.snapshots import SnapshotError, dump_snapshot, load_snapshot

logger = logging.getLogger(__name__)

Pipeline = redis.client.Pipeline


class ModelChannel:
    """The published model of a deployment, under ``{prefix}model:*``."""

    def __init__(self, client: redis.Redis, *, prefix: str, secret_key: bytes) -> None:
        self._client = client
        self._version_key = f"{prefix}model:version"
        self._snapshot_key = f"{prefix}model:snapshot"
        self._key = secret_key

    def queue_publish(self, pipeline: Pipeline, learner: OnlineLearner) -> str:
        """Queue the learner's snapshot and version onto ``pipeline``; returns the version."""
        version = learner.version
        pipeline.set(self._snapshot_key, dump_snapshot(learner, self._key))
        pipeline.set(self._version_key, version)
        return version

    def publish(self, learner: OnlineLearner) -> str:
        """Publish the learner now, snapshot and version together."""
        pipeline = self._client.pipeline(transaction=True)
        version = self.queue_publish(pipeline, learner)
        pipeline.execute()
        return version

    def published_version(self) -> str | None:
        raw = self._client.get(self._version_key)
        return None if raw is None else raw.decode() if isinstance(raw, bytes) else str(raw)

    def load(self) -> OnlineLearner | None:
        """The published learner, or ``None`` when none was published yet.

        Raises `SnapshotError` when the stored bytes do not verify under this deployment's key.
        """
        raw = self._client.get(self._snapshot_key)
        if raw is None:
            return None
        return load_snapshot(raw if isinstance(raw, bytes) else raw.encode(), self._key)


class ModelFollower:
    """Keeps a scorer on the latest published model, checking at most every ``poll_seconds``."""

    def __init__(self, channel: ModelChannel, *, poll_seconds: float = 1.0) -> None:
        self.channel = channel
        self.poll_seconds = poll_seconds
        self.version: str | None = None
        self._next_check = 0.0

    def newer(self, *, force: bool = False) -> OnlineLearner | None:
        """A newer published learner than the one last returned, or ``None``."""
        now = time.monotonic()
        if not force and now < self._next_check:
            return None
        self._next_check = now + self.poll_seconds
        version = self.channel.published_version()
        if version is None or version == self.version:
            return None
        try:
            learner = self.channel.load()
        except SnapshotError as error:
            logger.error("refused the published model %s: %s", version, error)
            self.version = version  # do not retry the same bad bytes on every poll
            return None
        if learner is None:
            return None
        self.version = version
        logger.info("loaded published model", extra={"model_version": version})
        return learner
