"""The distributed roles on one host, as the docs start them: ``fraudstream learner &``,
two ``fraudstream worker &`` and ``fraudstream api --port ...``, with no port set for metrics.

Real processes on the real Redis and Kafka-protocol broker the fixtures start. Each role must
come up beside the others (none exits over a taken metrics port), each serves its own metrics
page, and a transaction is scored through the API, another by a worker, and a label learned.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from pipelines.bench.server_process import serve
from pipelines.stream.kafka_clients import KafkaSettings
from pipelines.stream.topics import Topics
from tests.pipelines.stream.distributed_harness import (
    ADMIN,
    distinct_ids_at_least,
    metrics_page,
    poll,
    read_topic,
    role_env,
    scores_by_id,
    start_learner,
    start_role,
)
from tests.servers.role_process import RoleProcess

METRICS_AT = re.compile(r"metrics at (http://127\.0\.0\.1:\d+/metrics)")
FIRST_VERSION = "m000001+0"


def _transaction(transaction_id: str) -> dict[str, object]:
    return {
        "transaction_id": transaction_id,
        "timestamp": "2026-11-29T12:00:00Z",
        "card_id": "card-1",
        "terminal_id": "term-1",
        "amount": 420.5,
        "currency": "EUR",
    }


def _metrics_url(role: RoleProcess) -> str:
    """Where ``role`` says, in its log, that it serves its metrics."""

    def said() -> str | None:
        found = METRICS_AT.search(role.log_tail(limit=1_000_000))
        return None if found is None else found.group(1)

    url = poll(
        said,
        lambda url: url is not None or not role.alive(),
        what=f"the {role.role}'s metrics page in its log",
    )
    assert url is not None, f"{role.role} exited:\n{role.log_tail()}"
    return url


def test_learner_two_workers_and_the_api_share_one_host_as_the_docs_start_them(
    kafka_settings: KafkaSettings, redis_url: str, topics: Topics, tmp_path: Path
) -> None:
    env = role_env(
        kafka_settings,
        redis_url,
        topics,
        FRAUDSTREAM_LOG_LEVEL="info",  # where each role says its metrics page is
        FRAUDSTREAM_DATA_DIR=str(tmp_path / "var"),  # one data directory, as in one checkout
    )
    del env["FRAUDSTREAM_METRICS_PORT"]  # as the docs' example: every role on its default
    roles: list[RoleProcess] = []
    try:
        roles.append(start_learner(env, tmp_path, redis_url, topics))
        roles.append(start_role("worker", env, tmp_path, "worker-1"))
        roles.append(start_role("worker", env, tmp_path, "worker-2"))
        urls = [_metrics_url(role) for role in roles]
        assert all(role.alive() for role in roles), [role.log_tail() for role in roles]
        assert len(set(urls)) == 3, urls

        with (
            serve(settings=env, role="api") as server,
            httpx.Client(base_url=server.url, headers=ADMIN, timeout=10) as http,
        ):
            scored = http.post("/v1/score", json=_transaction("one-host-score"))
            assert scored.status_code == 200, scored.text
            assert scored.json()["model_version"] == FIRST_VERSION
            assert 0.0 <= scored.json()["score"] <= 1.0

            accepted = http.post("/v1/transactions", json=_transaction("one-host-stream"))
            assert accepted.status_code == 202, accepted.text
            # Both reach the scores topic: the API's answer, and the worker's.
            scores = read_topic(kafka_settings, topics.scores, distinct_ids_at_least(2))
            assert set(scores_by_id(scores)) == {"one-host-score", "one-host-stream"}

            label = {
                "transaction_id": "one-host-score",
                "is_fraud": True,
                "labelled_at": "2026-11-30T09:00:00Z",
                "source": "chargeback",
            }
            assert http.post("/v1/labels", json=label).status_code == 202

        learner_url, *worker_urls = urls
        # The worker that got the transaction counts it; the other has scored none.
        scored_by_workers = poll(
            lambda: [
                metrics_page(url)["fraudstream_transactions_scored_total"] for url in worker_urls
            ],
            lambda counts: sum(counts) == 1,
            what="the stream transaction in a worker's metrics",
        )
        assert sorted(scored_by_workers) == [0.0, 1.0]
        poll(
            lambda: metrics_page(learner_url),
            lambda series: series.get("fraudstream_labels_learned_total") == 1.0,
            what="the label in the learner's metrics",
        )
        assert all(role.alive() for role in roles), [role.log_tail() for role in roles]
        for role in roles:
            assert role.stop() == 0, role.log_tail()
    finally:
        for role in roles:
            if role.alive():
                role.kill()
