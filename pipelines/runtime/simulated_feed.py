"""Simulated traffic for the embedded service, so a newcomer sees scores and alerts at once.

The simulator's history (``history_days`` ending today) is replayed through the detector at
start-up, labels revealed after the label delay, so the model has learned something before the
first live transaction; the labels it learns go to the offline store as live ones do, so the
batch retrain, the what-if and backtests have history from the start. The rest is then fed live
at ``rate`` transactions a second through the same queue `POST /v1/transactions` uses, each
label following once event time has moved ``delay`` past its transaction: event time runs
faster than the wall clock, so labels come minutes, not days, later.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

from models.detector import FraudDetector, LearnOutcome
from models.replay import replay, revealed_label
from models.schemas import Label, Transaction
from models.simulator import SimulationConfig, simulate
from models.state import event_second
from pipelines.offline.datasets import dataset_from_frame
from pipelines.retrain.offline_store import ExampleSink
from pipelines.runtime.protocol import QueueFullError

logger = logging.getLogger(__name__)

TICK_SECONDS = 0.1


@dataclass(frozen=True)
class FeedConfig:
    """What the simulated traffic looks like and how fast it comes."""

    rate: float
    """Live transactions per second."""
    customers: int = 1_000
    terminals: int = 2_000
    history_days: int = 30
    live_days: int = 90
    seed: int = 0

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise ValueError("the simulation rate must be positive")


class FeedTarget(Protocol):
    """What the feed drives: the embedded runtime, whose queue and detector it feeds."""

    @property
    def detector(self) -> FraudDetector: ...

    @property
    def offline(self) -> ExampleSink | None: ...

    def enqueue(self, transactions: Sequence[Transaction]) -> None: ...

    async def drain(self) -> None: ...

    def learn(self, labels: Sequence[Label]) -> LearnOutcome: ...


class SimulatedFeed:
    """Warms the detector up on simulated history, then feeds it live."""

    def __init__(
        self,
        runtime: FeedTarget,
        config: FeedConfig,
        label_delay_seconds: int,
        today: date | None = None,
    ) -> None:
        self.runtime = runtime
        self.config = config
        self.label_delay_seconds = label_delay_seconds
        start = (today or datetime.now(UTC).date()) - timedelta(days=config.history_days)
        frame = simulate(
            SimulationConfig(
                customers=config.customers,
                terminals=config.terminals,
                days=config.history_days + config.live_days,
                start_date=start,
                seed=config.seed,
            )
        )
        dataset = dataset_from_frame(frame)
        history_end = event_second(
            datetime.combine(start + timedelta(days=config.history_days), datetime.min.time(), UTC)
        )
        split = next(
            (
                index
                for index, tx in enumerate(dataset.transactions)
                if event_second(tx.timestamp) >= history_end
            ),
            len(dataset.transactions),
        )
        self._history = dataset.transactions[:split], dataset.is_fraud[:split]
        self._live = list(zip(dataset.transactions[split:], dataset.is_fraud[split:], strict=True))
        self.fed = 0

    def warm_up(self) -> int:
        """Replay the history through the detector; returns how many transactions it held."""
        transactions, is_fraud = self._history
        offline = self.runtime.offline
        replay(
            transactions,
            is_fraud,
            self.runtime.detector,
            self.label_delay_seconds,
            on_learned=None if offline is None else offline.append,
        )
        if offline is not None:
            offline.flush()
        return len(transactions)

    async def run(self) -> None:
        """Feed the live part at the configured rate, labels after the delay, then stop."""
        delay = timedelta(seconds=self.label_delay_seconds)
        due: deque[tuple[int, Label]] = deque()
        per_tick = max(1, round(self.config.rate * TICK_SECONDS))
        # Resumed from a snapshot, the feed goes on after the last transaction it had fed.
        resumed_at = self.runtime.detector.watermark
        position = 0
        if resumed_at is not None:
            while (
                position < len(self._live)
                and event_second(self._live[position][0].timestamp) <= resumed_at
            ):
                position += 1
        while position < len(self._live):
            chunk = self._live[position : position + per_tick]
            try:
                self.runtime.enqueue([tx for tx, _ in chunk])
            except QueueFullError:
                await asyncio.sleep(TICK_SECONDS)
                continue
            position += len(chunk)
            self.fed += len(chunk)
            due.extend(
                (self._reveal_at(tx), revealed_label(tx, fraud, delay)) for tx, fraud in chunk
            )
            now = event_second(chunk[-1][0].timestamp)
            revealed = []
            while due and due[0][0] <= now:
                revealed.append(due.popleft()[1])
            if revealed:
                await self.runtime.drain()  # a label must not overtake its transaction
                self.runtime.learn(revealed)
            await asyncio.sleep(TICK_SECONDS)
        logger.info("simulated feed finished after %d live transactions", self.fed)

    def _reveal_at(self, tx: Transaction) -> int:
        return event_second(tx.timestamp) + self.label_delay_seconds
