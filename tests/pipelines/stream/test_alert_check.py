"""Reading the alerts topic back for a replay's unmarked alerts, against a real broker."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from models.schemas import Decision
from models.scored import Scored
from pipelines.stream.alert_check import AlertTopicCheck
from pipelines.stream.kafka_clients import KafkaSettings, ensure_topics
from pipelines.stream.scoring_batch import alert_record
from pipelines.stream.topics import Topics
from tests.builders import make_tx
from tests.pipelines.stream.test_kafka_clients import produce

pytestmark = pytest.mark.anyio


def alerts(numbers: range) -> list[tuple[str, str]]:
    """(transaction id, card id) of transactions over a few cards."""
    return [(f"t{number}", f"c{number % 7}") for number in numbers]


async def test_alerts_in_the_topic_are_found_and_the_others_are_not(
    kafka_settings: KafkaSettings, topics: Topics
) -> None:
    await ensure_topics(kafka_settings, topics.names(), 3)
    raised_at = datetime(2026, 11, 29, tzinfo=UTC)
    records = []
    for transaction_id, card_id in alerts(range(200)):
        tx = make_tx(int(transaction_id[1:]), card=card_id)
        scored = Scored(transaction_id, 0.9, "logistic+1", Decision.ALERT, 0.5, ())
        records.append(alert_record(topics, tx, scored, raised_at))
    await produce(kafka_settings, records)

    check = AlertTopicCheck(kafka_settings, topics.alerts)
    await check.start()
    try:
        asked = [*alerts(range(190, 200)), *alerts(range(500, 505))]
        assert await check.sent(asked) == {f"t{number}" for number in range(190, 200)}
        # Asked again, with the topic read once already, it reads it again.
        assert await check.sent(alerts(range(3))) == {"t0", "t1", "t2"}
        assert await check.sent([]) == set()
    finally:
        await check.stop()
