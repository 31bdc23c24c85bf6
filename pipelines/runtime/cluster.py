"""The API role's runtime in distributed mode: the `Runtime` interface over Kafka and Redis.

`fraudstream api` serves the same routes as the embedded service, but:

- scores come from Redis state and the latest model the learner published (followed by
  version, swapped between requests);
- scores and alerts of `POST /v1/score` are also produced to the scores and alerts topics;
- `POST /v1/transactions` produces to the transactions topic, and `POST /v1/labels` to the
  labels topic (answered once the broker holds them): the workers and the learner do the rest;
- the alert log behind `GET /v1/alerts` and its stream follows the alerts topic, so it shows
  every worker's alerts, not only this replica's;
- it is ready only while Redis answers and the producer is connected;
- scoring runs on a thread of its own, one request after another, so that the event loop
  goes on serving other requests while a score waits on Redis (a network round trip or two
  per request); following a new model happens on that thread too, between two requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import orjson
import redis

from models.detector import FraudDetector, LearnOutcome
from models.drift import DriftReport
from models.event_time import EventTimeBounds
from models.schemas import Alert, Label, Transaction
from models.scored import Scored
from pipelines.lifecycle.model_channel import ModelFollower
from pipelines.lifecycle.model_lifecycle import Lifecycle
from pipelines.retrain.book import Retraining
from pipelines.retrain.jobs import RetrainJobs
from pipelines.retrying import TRANSIENT_ERRORS
from pipelines.rules.book import RuleBook, RuleFollower
from pipelines.runtime import loops
from pipelines.runtime.alert_log import AlertLog
from pipelines.runtime.model_status import ModelStatus, model_statuses
from pipelines.runtime.scoreboard import DashboardSnapshot, Scoreboard
from pipelines.stream.kafka_clients import (
    KafkaSettings,
    OutgoingRecord,
    make_consumer,
    make_producer,
    send_batch_and_wait,
    start_with_retry,
)
from pipelines.stream.topics import Topics
from pipelines.telemetry import StateGauges, Telemetry

logger = logging.getLogger(__name__)

HEALTH_CHECK_SECONDS = 1.0


class ClusterRuntime:
    """Scores inline over Redis; hands transactions and labels to Kafka; follows the alerts."""

    def __init__(
        self,
        detector: FraudDetector,
        alerts: AlertLog,
        *,
        kafka: KafkaSettings,
        topics: Topics,
        client: redis.Redis,
        follower: ModelFollower,
        telemetry: Telemetry | None = None,
        lifecycle: Lifecycle | None = None,
    ) -> None:
        self.detector = detector
        self.alerts = alerts
        self.telemetry = telemetry or Telemetry()
        self.lifecycle = lifecycle
        """The registry read here; every change asked of the learner (none: not kept)."""
        self.retraining: Retraining | None = None
        """The learner's retrain jobs, asked through Redis (none: not available)."""
        self.event_time: EventTimeBounds | None = None
        """Bounds on the timestamps clients send, against this runtime's clock (none: any)."""
        self.rules: RuleBook | None = None
        """The deployment's rule sets in Redis, written here (none: not kept)."""
        self.rule_follower: RuleFollower | None = None
        """Keeps this replica's scoring on the rule set in force (none: no rules)."""
        self.kafka = kafka
        self.topics = topics
        self.client = client
        self.follower = follower
        self.board = Scoreboard(detector, alerts, self.telemetry)
        self.telemetry.watch(self.gauges)
        self.telemetry.watch_rules(lambda: self.detector.rule_decisions)
        self._producer: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self._sends: set[asyncio.Task[None]] = set()
        self._redis_up = False
        self._scoring = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fraudstream-scoring")

    @property
    def ready(self) -> bool:
        """Redis answers, the producer is connected and the background loops run."""
        return (
            self._producer is not None
            and self._redis_up
            and all(not task.done() for task in self._tasks)
        )

    @property
    def unready_reason(self) -> str:
        if not self._redis_up:
            return "Redis is unavailable; retry shortly"
        if self._producer is None:
            return "not connected to Kafka yet; retry shortly"
        return "a background task stopped; see the logs"

    @property
    def backlog(self) -> int:
        """Nothing waits here: accepted transactions are already on the topic."""
        return 0

    @property
    def local_jobs(self) -> RetrainJobs | None:
        """None: the learner runs the jobs and their schedule."""
        return None

    def input_context(self) -> dict[str, Any] | None:
        bounds = self.event_time
        return None if bounds is None else bounds.window(self.board.clock()).context()

    async def start(self) -> None:
        self.board.start()
        producer = make_producer(self.kafka)
        await start_with_retry(producer, self.kafka, "producer")
        self._producer = producer
        self._tasks = [
            asyncio.create_task(self._watch_redis(), name="redis-health"),
            asyncio.create_task(self._follow_alerts(), name="alerts-topic"),
        ]

    def background_tasks(self) -> dict[str, Coroutine[Any, Any, None]]:
        """The quality sampler only: the learner keeps the models' clock."""
        return {"quality-sampler": loops.sample_quality(self.sample_quality)}

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._sends:
            await asyncio.gather(*self._sends, return_exceptions=True)
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
        await asyncio.get_running_loop().run_in_executor(None, self._scoring.shutdown)

    async def score_request(self, transactions: Sequence[Transaction]) -> list[Scored]:
        """Scored on the scoring thread, off the loop: each score waits on Redis."""
        loop = asyncio.get_running_loop()
        scored, alerts = await loop.run_in_executor(
            self._scoring, self._score_and_alert, transactions
        )
        # Back on the loop: producing is the event loop's work.
        self._publish(transactions, scored, alerts)
        return scored

    def _score_and_alert(
        self, transactions: Sequence[Transaction]
    ) -> tuple[list[Scored], list[Alert]]:
        self._follow_models()
        return self.board.score(transactions)

    def _follow_models(self) -> None:
        """Serve the learner's latest publication and the rule set in force, each checked at
        most every poll period."""
        models = self.follower.newer()
        if models is not None:
            self.detector.serve(models)
        if self.rule_follower is not None:
            rules = self.rule_follower.newer()
            if rules is not None:
                self.detector.apply_rules(rules)

    def model_statuses(self) -> list[ModelStatus]:
        """The serving models with the quality the learner published (it sees the labels)."""
        published = self.follower.channel.quality()
        return [
            replace(status, quality=published.get(status.slot, status.quality))
            for status in model_statuses(self.detector)
        ]

    def shadowing(self) -> Collection[str]:
        return self.detector.challengers.keys()

    def sample_quality(self) -> None:
        """Add the serving models' published rolling AP, as of now, to the quality history."""
        self.board.sample_quality(self.model_statuses())

    def dashboard(self, *, bins: int = 20, minutes: int = 15) -> DashboardSnapshot:
        return self.board.dashboard(self.model_statuses()[0], bins=bins, minutes=minutes)

    def alert_threshold(self) -> float:
        return self.detector.alerting.threshold

    def drift_report(self) -> DriftReport | None:
        """None: the workers watch drift over the stream they score, in their own metrics
        and in the registry's events; a replica sees only the scores asked of it."""
        return None

    def gauges(self) -> StateGauges:
        """The state Prometheus reads at each scrape."""
        return self.board.gauges(self.backlog, self.model_statuses())

    def _publish(
        self, transactions: Sequence[Transaction], scored: Sequence[Scored], alerts: list[Alert]
    ) -> None:
        """To the scores and alerts topics; the alert log hears them back from the topic."""
        records = [
            OutgoingRecord(self.topics.scores, tx.card_id.encode(), orjson.dumps(result.document()))
            for tx, result in zip(transactions, scored, strict=True)
        ]
        records += [
            OutgoingRecord(
                self.topics.alerts,
                alert.transaction.card_id.encode(),
                alert.model_dump_json().encode(),
            )
            for alert in alerts
        ]
        # The caller has its answer already: delivery completes in the background, and a
        # failure is logged (the HTTP response, not the topic, is this path's record).
        task = asyncio.create_task(self._send(records))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    async def accept(self, transactions: Sequence[Transaction]) -> None:
        """To the transactions topic, answered once the broker holds them."""
        await send_batch_and_wait(
            self._producer,
            [
                OutgoingRecord(
                    self.topics.transactions, tx.card_id.encode(), tx.model_dump_json().encode()
                )
                for tx in transactions
            ],
        )

    async def take_labels(self, labels: Sequence[Label]) -> LearnOutcome | None:
        """To the labels topic for the learner, answered once the broker holds them."""
        await send_batch_and_wait(
            self._producer,
            [
                OutgoingRecord(self.topics.labels, None, label.model_dump_json().encode())
                for label in labels
            ],
        )
        return None

    async def _send(self, records: list[OutgoingRecord]) -> None:
        try:
            await send_batch_and_wait(self._producer, records)
        except TRANSIENT_ERRORS as error:
            logger.error("%d score and alert records not delivered: %s", len(records), error)

    async def _watch_redis(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                await asyncio.to_thread(self.client.ping)
            except TRANSIENT_ERRORS as error:
                if self._redis_up:
                    logger.error("Redis is unreachable; not ready until it answers: %s", error)
                self._redis_up = False
            else:
                if not self._redis_up:
                    logger.info("Redis answers; ready")
                self._redis_up = True
                # Idle, the models are followed here; busy, before each request's scoring.
                # Either way on the scoring thread, never in the middle of a score.
                with contextlib.suppress(*TRANSIENT_ERRORS):
                    await loop.run_in_executor(self._scoring, self._follow_models)
            await asyncio.sleep(HEALTH_CHECK_SECONDS)

    async def _follow_alerts(self) -> None:
        """Feed the alert log from the alerts topic, from now on (no consumer group)."""
        consumer = make_consumer(self.kafka, self.topics.alerts, group_id=None, from_start=False)
        await start_with_retry(consumer, self.kafka, "alerts consumer")
        try:
            while True:
                batches = await consumer.getmany(timeout_ms=500, max_records=1_000)
                alerts: list[Alert] = []
                for records in batches.values():
                    for record in records:
                        with contextlib.suppress(ValueError):
                            alerts.append(Alert.model_validate_json(record.value))
                if alerts:
                    self.alerts.publish(alerts)
        finally:
            await consumer.stop()
