"""The drift alarm's outputs in a process that scores: Prometheus gauges and lifecycle events.

The gauges read the detector's `DriftMonitor` report at scrape time, so nothing on the hot path
keeps them up to date. The alarm's changes go to the model registry's event log, where the
operators already see promotions, retirements and refusals (`GET /v1/models/events`): it is the
one lifecycle log both deployments share (a file in embedded mode, Redis in distributed mode),
and an alarm is a reason to look at the serving model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date, timedelta

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from models.detector import FraudDetector
from models.drift import DriftReport
from pipelines.telemetry import Telemetry

_EPOCH = date(1970, 1, 1)


def log_drift_events(detector: FraudDetector, log: Callable[[str, str, str], None]) -> int:
    """Write the alarm's changes since the last call to ``log``; how many there were."""
    monitor = detector.drift
    if monitor is None:
        return 0
    events = monitor.take_events()
    for event in events:
        day = _EPOCH + timedelta(days=event.day)
        log(str(event.kind), detector.model_version, f"{day.isoformat()}: {event.reason}")
    return len(events)


def watch_drift(telemetry: Telemetry, detector: FraudDetector) -> None:
    """Expose the detector's latest drift report as gauges (none while there is no report)."""
    telemetry.registry.register(_DriftCollector(detector))


class _DriftCollector:
    def __init__(self, detector: FraudDetector) -> None:
        self._detector = detector

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterable[Metric]:
        families = self._families()
        monitor = self._detector.drift
        report: DriftReport | None = None if monitor is None else monitor.report
        if report is None:
            return families
        alarm, feature_psi, score_psi, surprise, novelty = families
        alarm.add_metric([], 1.0 if report.alarm else 0.0)
        for feature in report.features:
            feature_psi.add_metric([feature.name], feature.psi)
        score_psi.add_metric([], report.score_psi)
        surprise.add_metric([], report.cells[0].surprise if report.cells else 0.0)
        if report.novelty is not None:
            novelty.add_metric([], report.novelty.surprise)
        return families

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, ...]:
        return (
            GaugeMetricFamily(
                "fraudstream_drift_alarm",
                "1 while the latest day's drift report is past the alarm threshold",
            ),
            GaugeMetricFamily(
                "fraudstream_drift_psi",
                "Population stability index of a feature, latest day against the reference",
                labels=["feature"],
            ),
            GaugeMetricFamily(
                "fraudstream_drift_score_psi",
                "Population stability index of the scores, latest day against the reference",
            ),
            GaugeMetricFamily(
                "fraudstream_drift_surprise",
                "The most surprising cell's -log10 corrected p-value (alarm past the threshold)",
            ),
            GaugeMetricFamily(
                "fraudstream_drift_novelty_surprise",
                "The novel card-days' -log10 Poisson p-value (alarm past the threshold)",
            ),
        )
