"""Changing the serving models in distributed mode: asked through Redis, done by the learner.

The learner is the single writer of the models, so an API replica does not promote, retire,
snapshot or add a challenger itself: it queues a command in Redis and waits for the learner's
answer (a few seconds at most). The learner applies each command through the same
`ModelLifecycle` the embedded service uses, publishes the new serving models, and answers;
the API raises the learner's error as its own (404, 409, 422), or 503 when no learner answers.
A batch retrain is asked the same way: the learner starts the job and answers at once with it
(``pipelines.lifecycle.redis_retrain``), or refuses with the running job's id.
Reads (the registry's versions, an artefact, an audit) need no command: they read Redis and
the shared artefact directory directly.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any, NamedTuple

import orjson
import redis

from models.detector import FraudDetector
from models.learners import LearnerError, OnlineLearner
from models.model_record import ModelRecord
from pipelines.lifecycle.model_lifecycle import (
    AuditEntry,
    ModelLifecycle,
    SchemaMismatchError,
    audit_entry,
    import_artefact,
)
from pipelines.lifecycle.registry import (
    ChampionRetireError,
    ModelRegistry,
    RetiredVersionError,
    TamperedArtefactError,
    UnknownVersionError,
)
from pipelines.retrain.book import Retraining, RetrainRunningError

logger = logging.getLogger(__name__)

ANSWER_TTL_SECONDS = 300
REFUSALS: dict[str, type[Exception]] = {
    error.__name__: error
    for error in (
        UnknownVersionError,
        SchemaMismatchError,
        TamperedArtefactError,
        ChampionRetireError,
        RetiredVersionError,
        LearnerError,
        RetrainRunningError,
    )
}
"""What the learner may refuse a command with, by name: raised again on the asking side."""


class LearnerUnavailableError(RuntimeError):
    """No learner answered the command in time (none running, or it is retrying an outage)."""


class Command(NamedTuple):
    id: str
    action: str
    arguments: dict[str, Any]


class ModelCommands:
    """The command queue and the answers, under ``{prefix}model:commands`` and ``...:answer:``."""

    def __init__(self, client: redis.Redis, *, prefix: str) -> None:
        self._client = client
        self._queue = f"{prefix}model:commands"
        self._answers = f"{prefix}model:answer:"

    def ask(self, action: str, timeout: float, **arguments: Any) -> dict[str, Any]:
        """Queue a command and wait for the learner's answer (blocking: call it off the loop)."""
        command_id = uuid.uuid4().hex
        self._client.rpush(
            self._queue, orjson.dumps({"id": command_id, "action": action, "arguments": arguments})
        )
        popped = self._client.blpop([self._answers + command_id], timeout=timeout)
        if popped is None:
            raise LearnerUnavailableError(
                f"the learner did not answer within {timeout:g} s; is `fraudstream learner` up?"
            )
        answer: dict[str, Any] = orjson.loads(popped[1])
        if not answer["ok"]:
            raise REFUSALS.get(answer["error"], RuntimeError)(answer["detail"])
        return answer

    def take(self, limit: int = 10) -> list[Command]:
        """The commands waiting, oldest first (the learner's side)."""
        raw: list[bytes] | None = self._client.lpop(self._queue, limit)  # type: ignore[assignment]
        return [Command(**orjson.loads(item)) for item in raw or []]

    def answer(self, command_id: str, answer: dict[str, Any]) -> None:
        key = self._answers + command_id
        pipeline = self._client.pipeline(transaction=False)
        pipeline.rpush(key, orjson.dumps(answer))
        pipeline.expire(key, ANSWER_TTL_SECONDS)
        pipeline.execute()


def execute(
    lifecycle: ModelLifecycle, command: Command, retraining: Retraining | None = None
) -> dict[str, Any]:
    """Apply one command through the learner's lifecycle (or start a retrain job); the answer
    says what it did."""
    arguments = command.arguments
    if command.action == "retrain" and retraining is not None:
        return _start_retrain(retraining, arguments)
    try:
        if command.action == "snapshot":
            return {"ok": True, "version": lifecycle.snapshot(arguments["reason"]).version}
        if command.action == "promote":
            serving = lifecycle.promote(arguments["version"], detail=arguments["detail"])
            return {"ok": True, "model_version": serving}
        if command.action == "retire":
            lifecycle.retire(arguments["version"], detail=arguments["detail"])
            return {"ok": True}
        if command.action == "add_challenger":
            learner = OnlineLearner(arguments["learner"], arguments["params"], arguments["seed"])
            return {"ok": True, "version": lifecycle.add_challenger(learner)}
    except tuple(REFUSALS.values()) as error:
        logger.warning("refused %s: %s", command.action, error)
        return {"ok": False, "error": type(error).__name__, "detail": str(error)}
    return {"ok": False, "error": "ValueError", "detail": f"unknown action {command.action!r}"}


def _start_retrain(retraining: Retraining, arguments: dict[str, Any]) -> dict[str, Any]:
    try:
        job = retraining.submit(arguments["trigger"], warm_restart=arguments["warm_restart"])
    except RetrainRunningError as error:
        # The detail is the running job's id: the asking side raises the error again from it.
        return {"ok": False, "error": "RetrainRunningError", "detail": error.running}
    return {"ok": True, "job": job.to_json().decode()}


class RemoteLifecycle:
    """The lifecycle as an API replica sees it: reads direct, changes asked of the learner."""

    remote = True

    def __init__(
        self,
        detector: FraudDetector,
        registry: ModelRegistry,
        commands: ModelCommands,
        key: bytes,
        *,
        timeout: float = 10.0,
    ) -> None:
        self._key = key
        self.detector = detector
        self.registry = registry
        self.commands = commands
        self.timeout = timeout

    def snapshot(self, reason: str) -> ModelRecord:
        answer = self.commands.ask("snapshot", self.timeout, reason=reason)
        return self.registry.record(answer["version"])

    async def snapshot_on_demand(self, reason: str) -> ModelRecord:
        return await asyncio.to_thread(self.snapshot, reason)

    def promote(self, version: str, *, detail: str = "on demand") -> str:
        answer = self.commands.ask("promote", self.timeout, version=version, detail=detail)
        return str(answer["model_version"])

    def retire(self, version: str, *, detail: str = "on demand") -> None:
        self.commands.ask("retire", self.timeout, version=version, detail=detail)

    def add_challenger(self, learner: OnlineLearner, *, reason: str = "challenger") -> str:
        answer = self.commands.ask(
            "add_challenger",
            self.timeout,
            learner=learner.name,
            params=learner.params,
            seed=learner.seed,
        )
        return str(answer["version"])

    def audit(self, transaction_id: str) -> AuditEntry | None:
        return audit_entry(self.detector, transaction_id)

    def import_artefact(self, artefact: bytes, declared_schema: str) -> ModelRecord:
        # Registering a version changes nothing that serves: no need to ask the learner.
        schema = self.detector.features.schema_version
        return import_artefact(self.registry, self._key, schema, artefact, declared_schema)
