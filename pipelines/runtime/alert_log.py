"""Recent alerts kept in memory, the analysts' verdicts on them, and the live feed that
subscribers (SSE) read from.

The log is bounded; a subscriber that falls behind loses its oldest undelivered alerts rather
than holding memory for ever or slowing the scorer down. A verdict is kept as long as its
alert is.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Iterable
from datetime import datetime

from models.schemas import Alert, Decision


class AlertLog:
    """The last ``capacity`` alerts, newest last, with live subscriptions.

    Reviews a rule asked for travel with the alerts (investigators work from one list) and
    say so in their ``decision``; `raised` counts the alerts alone.
    """

    def __init__(self, capacity: int = 10_000, subscriber_buffer: int = 1_000) -> None:
        self._alerts: deque[Alert] = deque(maxlen=capacity)
        self._by_id: dict[str, Alert] = {}
        self._verdicts: dict[str, bool] = {}
        self._subscribers: set[asyncio.Queue[Alert]] = set()
        self._subscriber_buffer = subscriber_buffer
        self.published = 0
        """Alerts and reviews published."""
        self.raised = 0
        """Alerts published, reviews left out: what an alert rate counts."""

    @property
    def capacity(self) -> int:
        return self._alerts.maxlen or 0

    def __len__(self) -> int:
        return len(self._alerts)

    def publish(self, alerts: Iterable[Alert]) -> None:
        for alert in alerts:
            if len(self._alerts) == self._alerts.maxlen:
                self._forget(self._alerts[0])
            self._alerts.append(alert)
            self._by_id[alert.transaction.transaction_id] = alert
            self.published += 1
            if alert.decision is Decision.ALERT:
                self.raised += 1
            for queue in self._subscribers:
                if queue.full():
                    queue.get_nowait()  # a slow subscriber loses its oldest alert
                queue.put_nowait(alert)

    def recent(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        card_id: str | None = None,
        limit: int = 100,
    ) -> list[Alert]:
        """Newest first, filtered by when they were raised and by card."""
        found: list[Alert] = []
        for alert in reversed(self._alerts):
            if since is not None and alert.raised_at < since:
                break  # raised in order: everything further back is older still
            if until is not None and alert.raised_at >= until:
                continue
            if card_id is not None and alert.transaction.card_id != card_id:
                continue
            found.append(alert)
            if len(found) >= limit:
                break
        return found

    def find(self, transaction_id: str) -> Alert | None:
        """The alert kept for ``transaction_id``, if any."""
        return self._by_id.get(transaction_id)

    def judge(self, transaction_id: str, is_fraud: bool) -> None:
        """Record an analyst's verdict on a kept alert (the latest one stands)."""
        if transaction_id in self._by_id:
            self._verdicts[transaction_id] = is_fraud

    def verdict(self, transaction_id: str) -> bool | None:
        """The analysts' verdict on the alert: fraud (True), legitimate (False) or none yet."""
        return self._verdicts.get(transaction_id)

    def _forget(self, oldest: Alert) -> None:
        transaction_id = oldest.transaction.transaction_id
        if self._by_id.get(transaction_id) is oldest:
            del self._by_id[transaction_id]
            self._verdicts.pop(transaction_id, None)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[Alert]]:
        """A queue that receives every alert published while the context is open."""
        queue: asyncio.Queue[Alert] = asyncio.Queue(maxsize=self._subscriber_buffer)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)

    @property
    def complete_since(self) -> datetime | None:
        """When the log stopped being complete: the oldest alert kept, once older ones were
        dropped for capacity (``None`` while it holds every alert published)."""
        if self.published > len(self._alerts):
            return self._alerts[0].raised_at
        return None

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)
