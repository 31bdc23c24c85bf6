"""A batch's observation in steps: prepared, started once, answered when called."""

from __future__ import annotations

import redis

from models.memory_state import InMemoryFeatureState
from models.state import WindowSpec
from pipelines.state.observation import RunWhenCalled, observing
from pipelines.state.redis_state import RedisFeatureState
from tests.builders import make_tx


def test_in_memory_the_observation_records_when_called_and_not_before() -> None:
    state, reference = InMemoryFeatureState(WindowSpec()), InMemoryFeatureState(WindowSpec())
    transactions = [make_tx(i, hours=i) for i in range(3)]
    observation = observing(state, transactions)
    assert isinstance(observation, RunWhenCalled)
    observation.start()  # nothing to send ahead
    assert state.watermark is None
    assert observation() == reference.observe(transactions)
    assert state.watermark == reference.watermark


def test_a_redis_observation_is_prepared_by_the_state_itself(redis_url: str) -> None:
    with redis.Redis.from_url(redis_url) as client:
        state = RedisFeatureState(client, WindowSpec(), prefix="fraudstream:observation-test:")
        transactions = [make_tx(100 + i, hours=i) for i in range(3)]
        client.delete(
            *[f"fraudstream:observation-test:answer:{tx.transaction_id}" for tx in transactions]
        )
        observation = observing(state, transactions)
        assert not isinstance(observation, RunWhenCalled)
        observation.start()
        observation.start()  # a second start sends nothing more
        answers = observation()
        assert [a.duplicate for a in answers] == [False] * 3
        assert [a.duplicate for a in state.observe(transactions)] == [True] * 3
