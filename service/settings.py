"""Settings of the ``fraudstream`` processes: one typed class, read from ``FRAUDSTREAM_*``.

This is the only place the environment is read. Every setting is listed, with its default, in
the README's settings table.
"""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from models.durations import parse_duration
from models.learners import DEFAULT_LEARNER
from service.auth import Role


def _duration(value: Any) -> Any:
    return parse_duration(value) if isinstance(value, str) else value


DEFAULT_SECRET_KEY = "fraudstream-embedded-default-secret"
"""Good enough for one process on localhost; a deployment sets its own."""

Duration = Annotated[timedelta, BeforeValidator(_duration)]
"""A duration written as ``7d``, ``12h``, ``30m`` or ``90s``."""


class ChallengerSpec(BaseModel):
    """A learner to shadow: a recipe name and its parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    learner: str
    params: dict[str, Any] = Field(default_factory=dict)


class Settings(BaseSettings):
    """Everything an operator can set; the defaults run the embedded service on a laptop."""

    model_config = SettingsConfigDict(env_prefix="FRAUDSTREAM_", extra="ignore", frozen=True)

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65_535)] = 8000
    data_dir: Path = Path("var")
    learner: str = DEFAULT_LEARNER
    learner_params: dict[str, Any] = Field(default_factory=dict)
    seed: int = 0
    label_delay: Duration = timedelta(days=7)
    reasons: Annotated[int, Field(ge=0, le=20)] = 3
    pending_ttl: Duration = timedelta(days=45)
    implicit_legit_after: Duration | None = None
    alert_threshold: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5
    alert_budget: Annotated[int, Field(gt=0)] | None = None
    alert_cooldown: Duration = timedelta(days=1)
    alert_log_size: Annotated[int, Field(gt=0)] = 10_000
    max_batch: Annotated[int, Field(gt=0)] = 1_000
    max_body_bytes: Annotated[int, Field(gt=0)] = 1_048_576
    queue_size: Annotated[int, Field(gt=0)] = 100_000
    simulate_rate: Annotated[float, Field(ge=0)] = 0.0
    simulate_customers: Annotated[int, Field(gt=0)] = 1_000
    simulate_terminals: Annotated[int, Field(gt=0)] = 2_000
    simulate_history_days: Annotated[int, Field(gt=0)] = 30
    kafka_bootstrap: str | None = None
    """Kafka's bootstrap servers (``host:port,...``); unset runs the embedded queue."""
    redis_url: str | None = None
    """Redis for shared state (``redis://host:6379/0``); unset keeps state in memory."""
    topic_prefix: str = ""
    consumer_group: str = "fraudstream-workers"
    learner_group: str = "fraudstream-learner"
    topic_partitions: Annotated[int, Field(gt=0)] = 12
    """Partitions of the topics created at start-up when missing: the most workers that help."""
    kafka_fetch_max_wait_ms: Annotated[int, Field(ge=0)] = 10
    kafka_session_timeout_ms: Annotated[int, Field(ge=1_000)] = 10_000
    max_poll_records: Annotated[int, Field(gt=0)] = 1_000
    max_record_bytes: Annotated[int, Field(gt=0)] = 65_536
    api_keys: dict[Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")], list[Role]] = Field(
        default_factory=dict
    )
    """API keys by their SHA-256 (hex) -> roles, e.g. ``{"9f86d0...": ["admin"]}``; none:
    the API is open (embedded mode on localhost)."""
    allow_open: bool = False
    """Let `serve` run without API keys on an interface other than localhost."""
    secret_key: SecretStr = SecretStr(DEFAULT_SECRET_KEY)
    """Signs model snapshots (HMAC-SHA256); the same in every process of a deployment."""
    metrics_port: Annotated[int, Field(ge=0, le=65_535)] | None = None
    """Where `worker` and `learner` serve Prometheus metrics (``/metrics`` on the host
    interface); unset: 9400, or the first free port above it (logged) when roles share a host;
    0: not served. The API serves them on its own port."""
    model_poll: Duration = timedelta(seconds=1)
    publish_every_labels: Annotated[int, Field(gt=0)] = 1_000
    publish_every: Duration = timedelta(seconds=10)
    snapshot_every_labels: Annotated[int, Field(gt=0)] = 10_000
    snapshot_every: Duration = timedelta(minutes=10)
    keep_versions: Annotated[int, Field(gt=0)] = 100
    challengers: list[ChallengerSpec] = Field(default_factory=list)
    """Learners to shadow from start-up, e.g. ``[{"learner": "forest"}]``."""
    auto_promote: bool = False
    promote_margin: Annotated[float, Field(ge=0.0, le=1.0)] = 0.02
    promote_min_labels: Annotated[int, Field(gt=0)] = 1_000
    retrain_every: Duration | None = None
    """Run the batch retrain job this often (event time); unset: on demand only."""
    retrain_model: Literal["hgb", "logistic"] = "hgb"
    retrain_train_days: Annotated[int, Field(gt=0)] = 28
    retrain_test_days: Annotated[int, Field(gt=0)] = 7
    retrain_margin: Annotated[float, Field(ge=0.0, le=1.0)] = 0.01
    retrain_min_labels: Annotated[int, Field(gt=0)] = 1_000
    retrain_warm_restart: bool = False
    """Also replay a fresh online learner over each retrain's window, as a challenger."""
    quality_window: Annotated[int, Field(gt=0)] = 10_000
    quality_k: Annotated[int, Field(gt=0)] = 100
    log_level: str = "info"
    bench_endpoints: bool = False
    """Serve `POST /v1/bench/constant`, the bare-HTTP baseline of `fraudstream bench http`."""


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read from the environment once."""
    return Settings()
