"""`fraudstream drift`: replay a labelled data set as the service would score it and report the
label-free drift alarm day by day.

The detector scores in event time and learns each label after the label delay (`models.replay`),
and its `DriftMonitor` is the one the service runs; the data set's fraud scenarios, when it has
them, are only counted beside each day's report, never shown to the monitor.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from models.drift import DriftMonitor, DriftPolicy, DriftReport, watched_features
from models.replay import replay
from models.state import DAY, event_second
from pipelines.offline.datasets import LabelledDataset
from pipelines.offline.evaluation import EvaluationOptions, build_detector


@dataclass(frozen=True)
class DriftDay:
    report: DriftReport
    scenario_transactions: dict[int, int]
    """Transactions of each fraud scenario on the report's day (empty: none known)."""


def drift_days(
    dataset: LabelledDataset,
    options: EvaluationOptions,
    policy: DriftPolicy,
    progress: Callable[[int], None] | None = None,
) -> list[DriftDay]:
    """Each ended day's drift report over the replay of ``dataset``, oldest first."""
    if not dataset.transactions:
        raise ValueError("the data set holds no valid transaction to replay")
    detector = build_detector(options, reasons=0)
    names = detector.features.names
    monitor = DriftMonitor(names, policy, watched=watched_features(names))
    detector.drift = monitor
    reports: list[DriftReport] = []
    monitor.on_report = reports.append
    replay(
        dataset.transactions,
        dataset.is_fraud,
        detector,
        int(options.label_delay.total_seconds()),
        progress,
    )
    per_day: Counter[tuple[int, int]] = Counter()
    if dataset.scenarios is not None:
        for tx, scenario in zip(dataset.transactions, dataset.scenarios, strict=True):
            if scenario:
                per_day[event_second(tx.timestamp) // DAY, scenario] += 1
    return [
        DriftDay(
            report,
            {s: n for (day, s), n in sorted(per_day.items()) if day == report.day},
        )
        for report in reports
    ]
