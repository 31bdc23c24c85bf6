"""A small labelled offline store, filled by replaying simulated traffic through the detector."""

from __future__ import annotations

import functools
from datetime import datetime, timedelta
from pathlib import Path

from models.learners import OnlineLearner
from models.pending import PendingEntry
from models.replay import replay
from models.schemas import Label
from models.simulator import SimulationConfig, simulate
from pipelines.offline.datasets import dataset_from_frame
from pipelines.offline.evaluation import EvaluationOptions, build_detector
from pipelines.retrain.offline_store import ExampleSink, MemoryOfflineStore, ParquetOfflineStore

DELAY = timedelta(days=7)
SHADOW = "m-shadow"
"""The version of the shadow challenger the replay scores beside the champion."""


@functools.lru_cache
def _replay(days: int) -> tuple[list[tuple[PendingEntry, Label]], datetime, tuple[str, ...]]:
    """Every label a replay of ``days`` simulated days learned (labels a week late), with the
    entry it was learned from, and the event time the replay ended at."""
    dataset = dataset_from_frame(
        simulate(SimulationConfig(customers=300, terminals=600, days=days, seed=0))
    )
    detector = build_detector(EvaluationOptions(label_delay=DELAY), reasons=0)
    # A shadow challenger from the start: the rows carry its scores beside the champion's.
    detector.add_challenger(SHADOW, OnlineLearner("logistic", {"l2": 0.01}))
    learned: list[tuple[PendingEntry, Label]] = []
    replay(
        dataset.transactions,
        dataset.is_fraud,
        detector,
        int(DELAY.total_seconds()),
        on_learned=lambda entry, label: learned.append((entry, label)),
    )
    return learned, dataset.transactions[-1].timestamp, detector.features.names


def _fill(sink: ExampleSink, days: int) -> None:
    for entry, label in _replay(days)[0]:
        sink.append(entry, label)
    sink.flush()


@functools.lru_cache
def replayed_store(days: int = 40) -> tuple[MemoryOfflineStore, datetime]:
    """Every label learned by a replay of ``days`` simulated days (labels a week late), and the
    event time the replay ended at. Shared: read it, do not append to it."""
    store = MemoryOfflineStore(_replay(days)[2])
    _fill(store, days)
    return store, _replay(days)[1]


def parquet_store(root: Path, days: int = 40) -> tuple[ParquetOfflineStore, datetime]:
    """The same rows written to Parquet files under ``root``, as `serve` or the learner would."""
    store = ParquetOfflineStore(root, _replay(days)[2])
    _fill(store, days)
    return store, _replay(days)[1]
