"""Settings of the ``fraudstream`` processes: one typed class, read from ``FRAUDSTREAM_*``.

This is the only place the environment is read. Every setting is listed, with its default, in
the README's settings table.
"""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from models.durations import parse_duration
from models.event_time import DEFAULT_MAX_CLOCK_SKEW, DEFAULT_MIN_EVENT_TIME
from models.learners import DEFAULT_LEARNER
from service.auth import Role


def _duration(value: Any) -> Any:
    return parse_duration(value) if isinstance(value, str) else value


MIN_SECRET_BYTES = 32
"""The shortest signing key accepted: 256 bits, the size of the HMAC-SHA256 it keys."""


def _long_enough(value: SecretStr | None) -> SecretStr | None:
    if value is not None and len(value.get_secret_value().encode()) < MIN_SECRET_BYTES:
        raise ValueError(
            f"FRAUDSTREAM_SECRET_KEY is shorter than {MIN_SECRET_BYTES} bytes: use a long random "
            "value, e.g. `openssl rand -hex 32`"
        )
    return value


Duration = Annotated[timedelta, BeforeValidator(_duration)]
"""A duration written as ``7d``, ``12h``, ``30m`` or ``90s``."""


class ChallengerSpec(BaseModel):
    """A learner to shadow: a recipe name and its parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    learner: str
    params: dict[str, Any] = Field(default_factory=dict)


class Settings(BaseSettings):
    """Everything an operator can set; the defaults run the embedded service on a laptop."""

    # A refused value is named by its setting, never echoed: it may be a secret.
    model_config = SettingsConfigDict(
        env_prefix="FRAUDSTREAM_", extra="ignore", frozen=True, hide_input_in_errors=True
    )

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
    max_clock_skew: Duration = DEFAULT_MAX_CLOCK_SKEW
    """How far ahead of the service's clock a client's timestamp may be (HTTP and Kafka)."""
    min_event_time: AwareDatetime = DEFAULT_MIN_EVENT_TIME
    """The earliest timestamp a client may send: older input is refused."""
    max_label_corrections: Annotated[int, Field(ge=0)] = 1
    """How many times a transaction's learned verdict may be reversed by a later label."""
    max_cards: Annotated[int, Field(gt=0)] = 5_000_000
    """Cards whose windows the embedded service keeps; the least recently active go first."""
    max_pending: Annotated[int, Field(gt=0)] = 2_000_000
    """Scored vectors the embedded service keeps awaiting their labels; the oldest go first."""
    api_keys: dict[Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")], list[Role]] = Field(
        default_factory=dict
    )
    """API keys by their SHA-256 (hex) -> roles, e.g. ``{"9f86d0...": ["admin"]}``; none:
    the API is open (embedded mode on localhost)."""
    allow_open: bool = False
    """Let `serve` run without API keys on an interface other than localhost."""
    secret_key: Annotated[SecretStr | None, AfterValidator(_long_enough)] = None
    """Signs model snapshots (HMAC-SHA256); the same in every process of a deployment, at least
    32 bytes. Unset: embedded mode keeps a random one in the data directory (`secret.key`); the
    distributed roles refuse to start."""
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
    rules_history: Annotated[int, Field(gt=0, le=10_000)] = 50
    """Rule-set versions kept for `GET /v1/rules/versions` and rollback."""
    challengers: list[ChallengerSpec] = Field(default_factory=list)
    """Learners to shadow from start-up, e.g. ``[{"learner": "forest"}]``."""
    auto_promote: bool = False
    promote_margin: Annotated[float, Field(ge=0.0, le=1.0)] = 0.02
    promote_min_labels: Annotated[int, Field(gt=0)] = 1_000
    retrain_every: Duration | None = None
    """Run the batch retrain job this often (event time); unset: on demand only."""
    retrain_serve: Literal["champion", "blend"] = "champion"
    """What a retrain's batch model does: ``champion``, serve alone when its hold-out beats the
    champion's (else shadow it); ``blend``, serve blended with the online learner
    (`models.blended_learner`)."""
    retrain_model: Literal["hgb", "logistic"] = "hgb"
    retrain_train_days: Annotated[int, Field(gt=0)] = 28
    retrain_test_days: Annotated[int, Field(gt=0)] = 7
    retrain_margin: Annotated[float, Field(ge=0.0, le=1.0)] = 0.01
    retrain_min_labels: Annotated[int, Field(gt=0)] = 1_000
    retrain_warm_restart: bool = False
    """Also replay a fresh online learner over each retrain's window, as a challenger."""
    quality_window: Annotated[int, Field(gt=0)] = 10_000
    quality_k: Annotated[int, Field(gt=0)] = 100
    drift_watch: bool = True
    """Compare each day's scored vectors with a reference window for the drift alarm."""
    drift_reference_days: Annotated[int, Field(gt=0)] = 7
    drift_gap_days: Annotated[int, Field(ge=0)] = 7
    """Days between the reference window's end and the day compared with it."""
    drift_warmup_days: Annotated[int, Field(ge=0)] | None = None
    """Days of history before a reference window may start; unset: the longest feature window
    (30 days) plus the label delay, which the terminal windows are shifted by."""
    drift_cell_features: Annotated[int, Field(ge=1, le=4)] = 3
    drift_min_cards: Annotated[int, Field(gt=0)] = 3
    drift_alarm_surprise: Annotated[float, Field(ge=0.0)] = 4.0
    """A cell raises the alarm past this: -log10 of its Bonferroni-corrected p-value."""
    drift_novelty_surprise: Annotated[float, Field(ge=0.0)] = 2.0
    """The novel card-days raise the alarm past this: -log10 of their Poisson p-value."""
    drift_rows_per_day: Annotated[int, Field(gt=0)] = 50_000
    """Scored vectors kept a day for the comparison (a uniform sample past it)."""
    log_level: str = "info"
    allowed_hosts: list[str] | None = None
    """``Host`` names the API answers to (``*.example.com`` for subdomains, ``*``: any); unset:
    the localhost names and ``host`` when it is not a wildcard. Others get 400 (DNS rebinding)."""
    allowed_origins: list[str] = Field(default_factory=list)
    """Web origins besides the service's own whose pages may call the API (``https://x.org``)."""
    max_stream_subscribers: Annotated[int, Field(gt=0)] = 100
    """Open `GET /v1/alerts/stream` connections at most; past it, 503."""
    max_connections: Annotated[int, Field(gt=0)] = 500
    """Open connections (or requests in flight) at which a new request gets 503 (uvicorn)."""
    read_timeout: Annotated[float, Field(gt=0)] = 10.0
    """Seconds a client has to send a whole request (headers and body); then it is closed."""
    keep_alive_timeout: Annotated[int, Field(gt=0)] = 5
    """Seconds an idle keep-alive connection is kept open between requests."""
    bench_endpoints: bool = False
    """Serve `POST /v1/bench/constant`, the bare-HTTP baseline of `fraudstream bench http`."""


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read from the environment once."""
    return Settings()
