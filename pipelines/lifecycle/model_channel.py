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

from models.detector import ServingModels
from models.quality import QualityFigures
from models.snapshots import SnapshotError, dump_signed, load_signed

logger = logging.getLogger(__name__)

Pipeline = redis.client.Pipeline


def publication_version(models: ServingModels) -> str:
    """What changes whenever a scorer should reload: the champion's and challengers' versions.

    >>> from models.learners import OnlineLearner
    >>> publication_version(ServingModels(OnlineLearner("logistic")))
    'logistic+0'
    """
    names = [models.champion.version, *(c.version for c in models.challengers.values())]
    return " ".join(names)


class ModelChannel:
    """The published model of a deployment, under ``{prefix}model:*``."""

    def __init__(self, client: redis.Redis, *, prefix: str, secret_key: bytes) -> None:
        self._client = client
        self._version_key = f"{prefix}model:version"
        self._snapshot_key = f"{prefix}model:snapshot"
        self._quality_key = f"{prefix}model:quality"
        self._key = secret_key

    def queue_publish(
        self,
        pipeline: Pipeline,
        models: ServingModels,
        quality: dict[str, QualityFigures] | None = None,
    ) -> str:
        """Queue the models' snapshot, their version and (when known) their quality onto
        ``pipeline``; returns the champion's version."""
        version = publication_version(models)
        pipeline.set(self._snapshot_key, dump_signed(models, self._key))
        pipeline.set(self._version_key, version)
        if quality is not None:
            pipeline.set(self._quality_key, dump_signed(quality, self._key))
        return models.champion.version

    def publish(self, models: ServingModels) -> str:
        """Publish the models now, snapshot and version together."""
        pipeline = self._client.pipeline(transaction=True)
        version = self.queue_publish(pipeline, models)
        pipeline.execute()
        return version

    def quality(self) -> dict[str, QualityFigures]:
        """The serving models' rolling quality, as the learner last published it."""
        raw = self._client.get(self._quality_key)
        if raw is None:
            return {}
        return load_signed(raw if isinstance(raw, bytes) else raw.encode(), self._key, dict)

    def published_version(self) -> str | None:
        raw = self._client.get(self._version_key)
        return None if raw is None else raw.decode() if isinstance(raw, bytes) else str(raw)

    def load(self) -> ServingModels | None:
        """The published models, or ``None`` when none were published yet.

        Raises `SnapshotError` when the stored bytes do not verify under this deployment's key.
        """
        raw = self._client.get(self._snapshot_key)
        if raw is None:
            return None
        blob = raw if isinstance(raw, bytes) else raw.encode()
        return load_signed(blob, self._key, ServingModels)


class ModelFollower:
    """Keeps a scorer on the latest published model, checking at most every ``poll_seconds``."""

    def __init__(self, channel: ModelChannel, *, poll_seconds: float = 1.0) -> None:
        self.channel = channel
        self.poll_seconds = poll_seconds
        self.version: str | None = None
        self._next_check = 0.0

    def newer(self, *, force: bool = False) -> ServingModels | None:
        """Newer published models than the ones last returned, or ``None``."""
        now = time.monotonic()
        if not force and now < self._next_check:
            return None
        self._next_check = now + self.poll_seconds
        version = self.channel.published_version()
        if version is None or version == self.version:
            return None
        try:
            models = self.channel.load()
        except SnapshotError as error:
            logger.error("refused the published model %s: %s", version, error)
            self.version = version  # do not retry the same bad bytes on every poll
            return None
        if models is None:
            return None
        self.version = version
        logger.info("loaded published models", extra={"model_version": version})
        return models
