"""Prometheus metrics of one runtime: plain counts on the hot path, turned into series at scrape.

Each `Telemetry` owns its `CollectorRegistry` rather than using prometheus-client's global one:
several apps live in one test process, and a global registry would refuse the second app's
metrics (or add them together).

Two kinds of series:

- **Events** (transactions scored, alerts, labels learned, dead-lettered records, the latency
  histogram) are counted where they happen, once per call, never once per transaction. They
  are plain numbers, not prometheus-client metric objects: those take a lock per increment
  (about 1.5 µs a call for the counters and the histogram, against 0.5 µs here, on a score of
  about 30 µs), and the runtime has one writer, the event loop, so there is nothing to lock
  against.
- **State** (queue backlog, vectors kept for their label, the model's version and rolling
  quality) is read from a snapshot function the runtime provides, only when Prometheus
  scrapes. Nothing on the hot path keeps it up to date, and a model version that has moved on
  does not linger as a stale series.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

LATENCY_BUCKETS = (50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 0.1)
"""Seconds per transaction: from a lone river score (tens of µs) to a stalled loop (100 ms)."""

DLQ_REASONS = ("invalid", "oversize")
"""Reasons shown at zero before any record is dead-lettered, so dashboards find the series."""

_INF = float("inf")


@dataclass(frozen=True, slots=True)
class ModelGauges:
    """What a scrape shows of one live model."""

    name: str
    version: str
    role: str
    rolling_average_precision: float
    """``nan`` until a label has matured."""
    rolling_card_precision_at_k: float
    """``nan`` while it cannot be computed (see `EmbeddedRuntime.gauges`)."""


@dataclass(frozen=True, slots=True)
class StateGauges:
    """A snapshot of the runtime's state, taken when Prometheus scrapes."""

    consumer_lag: int
    label_backlog: int | None
    """``None`` where this process cannot know it (a worker): the series is left out."""
    models: Sequence[ModelGauges]


class Telemetry:
    """The metrics of one runtime, in a registry of their own.

    Examples
    --------
    >>> from prometheus_client import generate_latest
    >>> telemetry = Telemetry()
    >>> telemetry.scored(transactions=4, seconds=0.0002, alerts=1)
    >>> text = generate_latest(telemetry.registry).decode()
    >>> "fraudstream_transactions_scored_total 4.0" in text
    True
    >>> 'fraudstream_scoring_latency_seconds_bucket{le="5e-05"} 1.0' in text
    True
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.transactions_scored = 0
        self.alerts = 0
        self.labels_learned = 0
        self.verdicts = {True: 0, False: 0}
        """Analysts' verdicts on alerts by outcome (fraud: True), apart from the labels."""
        self.dlq_records = dict.fromkeys(DLQ_REASONS, 0)
        """Dead-lettered records by reason: the workers' (embedded mode validates bodies
        before they are queued, so nothing is dead-lettered there)."""
        self._latency_counts = [0] * (len(LATENCY_BUCKETS) + 1)  # the last one is +Inf
        self.latency_sum = 0.0
        self.registry.register(_EventCollector(self))
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)

    def watch(self, read: Callable[[], StateGauges]) -> None:
        """Expose the state that ``read`` snapshots, read anew at every scrape."""
        self.registry.register(_StateCollector(read))

    def watch_rules(self, read: Callable[[], Mapping[tuple[str, str], int]]) -> None:
        """Expose the transactions each rule decided, by (rule, action), as ``read`` counts
        them (the detector's own counter, read at every scrape)."""
        self.registry.register(_RuleCollector(read))

    def scored(self, transactions: int, seconds: float, alerts: int) -> None:
        """Count one scoring call: ``transactions`` scored in ``seconds``, raising ``alerts``.

        The histogram observes the call's time per transaction, once per call: a batch of a
        thousand counts once, at its mean, so the histogram's count is of calls, not of
        transactions (``fraudstream_transactions_scored_total`` counts those).
        """
        if not transactions:
            return
        per_transaction = seconds / transactions
        self.transactions_scored += transactions
        self.alerts += alerts
        self.latency_sum += per_transaction
        self._latency_counts[bisect.bisect_left(LATENCY_BUCKETS, per_transaction)] += 1

    def alerted(self, alerts: int) -> None:
        """Count alerts raised apart from their scoring (a worker counts those it sends)."""
        self.alerts += alerts

    def dead_lettered(self, reason: str, records: int = 1) -> None:
        """Count records sent to the dead-letter topic, by reason."""
        self.dlq_records[reason] = self.dlq_records.get(reason, 0) + records

    def learned(self, labels: int) -> None:
        """Count labels the model learned from."""
        self.labels_learned += labels

    def judged(self, is_fraud: bool) -> None:
        """Count an analyst's verdict on an alert."""
        self.verdicts[is_fraud] += 1

    def latency_buckets(self) -> list[tuple[str, float]]:
        """Cumulative counts by upper bound, as Prometheus histograms expose them."""
        bounds = [*LATENCY_BUCKETS, _INF]
        cumulative, buckets = 0, []
        for bound, count in zip(bounds, self._latency_counts, strict=True):
            cumulative += count
            buckets.append((_le(bound), float(cumulative)))
        return buckets


def _le(bound: float) -> str:
    """A bucket's ``le`` label as Prometheus writes it (Python's shortest repr agrees here)."""
    return "+Inf" if bound == _INF else repr(bound)


class _EventCollector:
    """The event counts of a `Telemetry`, as counter and histogram families."""

    def __init__(self, telemetry: Telemetry) -> None:
        self._telemetry = telemetry

    def collect(self) -> Iterator[Metric]:
        counts = self._telemetry
        yield CounterMetricFamily(
            "fraudstream_transactions_scored",
            "Transactions scored (synchronously or from the queue), replays included",
            value=counts.transactions_scored,
        )
        yield HistogramMetricFamily(
            "fraudstream_scoring_latency_seconds",
            "Scoring time per transaction: each scoring call (one request, one batch or one "
            "queued batch) observes its duration divided by its number of transactions",
            buckets=counts.latency_buckets(),
            sum_value=counts.latency_sum,
        )
        yield CounterMetricFamily("fraudstream_alerts", "Alerts raised", value=counts.alerts)
        dlq = CounterMetricFamily(
            "fraudstream_dlq_records",
            "Records sent to the dead-letter path, by reason",
            labels=["reason"],
        )
        for reason, records in sorted(counts.dlq_records.items()):
            dlq.add_metric([reason], records)
        yield dlq
        yield CounterMetricFamily(
            "fraudstream_labels_learned",
            "Labels the live model learned from, implicit legitimate ones included "
            "(repeated labels and unknown ids are not)",
            value=counts.labels_learned,
        )
        verdicts = CounterMetricFamily(
            "fraudstream_alert_verdicts",
            "Analysts' verdicts on alerts (POST /v1/alerts/{id}/verdict), by verdict: the "
            "share judged fraud is the alerts' precision as the investigators found it",
            labels=["verdict"],
        )
        verdicts.add_metric(["fraud"], counts.verdicts[True])
        verdicts.add_metric(["legitimate"], counts.verdicts[False])
        yield verdicts

    def describe(self) -> Iterable[Metric]:
        return self.collect()


class _RuleCollector:
    """The rules' decisions, as one counter family labelled by rule and action."""

    def __init__(self, read: Callable[[], Mapping[tuple[str, str], int]]) -> None:
        self._read = read

    def describe(self) -> Iterable[Metric]:
        return [self._family()]

    def collect(self) -> Iterable[Metric]:
        family = self._family()
        # A copy first: the scoring thread may add a rule while a scrape reads.
        for (rule, action), count in sorted(dict(self._read()).items()):
            family.add_metric([rule, action], count)
        return [family]

    @staticmethod
    def _family() -> CounterMetricFamily:
        return CounterMetricFamily(
            "fraudstream_rule_decisions",
            "Transactions a rule decided (the first rule matching, by precedence), by rule "
            "and its action; the decision may still be the model's (review when it alerts)",
            labels=["rule", "action"],
        )


class _StateCollector:
    """A `StateGauges` snapshot, as gauge families."""

    def __init__(self, read: Callable[[], StateGauges]) -> None:
        self._read = read

    def describe(self) -> Iterable[Metric]:
        # Declared without samples: registering takes no snapshot (the runtime is still being
        # built), yet the registry can still refuse a clash of names.
        return self._families()

    def collect(self) -> Iterable[Metric]:
        state = self._read()
        lag, backlog, info, precision, card_precision = families = self._families()
        lag.add_metric([], state.consumer_lag)
        if state.label_backlog is not None:
            backlog.add_metric([], state.label_backlog)
        for model in state.models:
            info.add_metric([model.name, model.version, model.role], 1)
            precision.add_metric([model.name, model.role], model.rolling_average_precision)
            card_precision.add_metric([model.name, model.role], model.rolling_card_precision_at_k)
        return families

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, ...]:
        per_model = ["model", "role"]
        return (
            GaugeMetricFamily(
                "fraudstream_consumer_lag",
                "Transactions waiting to be scored (embedded mode: the in-process queue)",
            ),
            GaugeMetricFamily(
                "fraudstream_label_backlog",
                "Scored transactions whose label has not arrived yet (their vectors wait for it)",
            ),
            GaugeMetricFamily(
                "fraudstream_model_info",
                "The live model's name and version (always 1)",
                labels=["name", "version", "role"],
            ),
            GaugeMetricFamily(
                "fraudstream_model_rolling_average_precision",
                "Average precision of the scores given at arrival, over the last matured labels",
                labels=per_model,
            ),
            GaugeMetricFamily(
                "fraudstream_model_rolling_card_precision_at_k",
                "Card Precision@k over the last matured labels (NaN: not computed yet)",
                labels=per_model,
            ),
        )
