"""The batch retrain job: a scikit-learn model trained on a window of the offline store,
measured against the champion on a later hold-out, registered with its provenance.

Windows, at ``now`` (event time, floored to the UTC day; labels are known ``delay`` late):

- ``end = day(now) - delay``: transactions before it have their labels;
- hold-out ``[end - test_days, end)``, the most recent fully labelled period;
- back-test training window ``[holdout.start - delay - train_days, holdout.start - delay)``,
  with only the labels known by the hold-out's start: the gap equal to the label delay hides
  labels a model trained at that moment could not have had, as the live service would;
- final window ``[end - train_days, end)``: the same recipe and seed refit on the latest labels,
  which is the model registered (EVALUATION.md: a batch model is trained on a window ending the
  label delay before the period it scores).

The back-test model's scores on the hold-out rows are measured side by side with the scores
the champion gave those very rows at arrival (recorded in the store), with the metrics of
EVALUATION.md. The decision: promote when the candidate's hold-out AP beats the champion's by
``margin``; otherwise keep it as a challenger. Too few labels or no fraud, in any window, fails
the job with the reason, before anything changes.

With ``warm_restart``, a fresh online learner of the serving kind is also replayed over the
final window (``pipelines.retrain.warm_restart``), to be registered as a challenger.

Deterministic: the store returns rows in a fixed order, training uses a fixed seed and one
OpenMP thread, so the same store, ``now`` and options give the same model, scores and metrics.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import numpy as np
import pandas as pd

from models.batch_model import Algorithm, BatchLearner, BatchSpec, BatchTrainingError, train_batch
from models.blend import Blend, best_blend
from models.learners import DEFAULT_LEARNER, OnlineLearner
from models.model_record import NewModel
from models.period_metrics import EvaluationMetrics, evaluate_scores
from pipelines.retrain.offline_store import feature_columns
from pipelines.retrain.warm_restart import replay_online

Progress = Callable[[float, str], None]


class RetrainError(ValueError):
    """The job cannot run on this data: nothing was changed."""


class ExampleSource(Protocol):
    """Where the job reads labelled examples: the offline store on disk or in memory."""

    feature_names: tuple[str, ...]

    def read(
        self, start: datetime, end: datetime, known_by: datetime | None = None
    ) -> pd.DataFrame: ...


@dataclass(frozen=True)
class RetrainOptions:
    """The windows, the model and the promotion rule of one retrain."""

    train_days: int = 28
    delay: timedelta = timedelta(days=7)
    test_days: int = 7
    seed: int = 0
    algorithm: Algorithm = "hgb"
    params: Mapping[str, Any] = field(default_factory=dict)
    positive_weight: float | str = "balanced"
    margin: float = 0.01
    """How much the candidate's hold-out AP must exceed the champion's to be promoted."""
    k: int = 100
    min_labels: int = 1_000
    min_frauds: int = 10
    warm_restart: bool = False
    """Also replay a fresh online learner over the final window (a challenger to be)."""
    online_learner: str = DEFAULT_LEARNER
    """The warm restart's recipe and parameters: the serving online learner's."""
    online_params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.train_days < 1 or self.test_days < 1:
            raise ValueError("train_days and test_days must be at least 1")
        if self.delay < timedelta(0):
            raise ValueError("the label delay cannot be negative")

    def spec(self) -> BatchSpec:
        weight: Any = self.positive_weight
        return BatchSpec(
            self.algorithm,
            dict(self.params),
            weight if weight == "balanced" else float(weight),
            self.seed,
            self.min_labels,
            self.min_frauds,
        )


Window = tuple[datetime, datetime]


@dataclass(frozen=True)
class RetrainWindows:
    known_by: datetime
    backtest: Window
    holdout: Window
    final: Window

    def as_dict(self) -> dict[str, object]:
        return {
            "known_by": self.known_by.isoformat(),
            **{
                name: [window[0].isoformat(), window[1].isoformat()]
                for name, window in (
                    ("backtest", self.backtest),
                    ("holdout", self.holdout),
                    ("final", self.final),
                )
            },
        }


def windows_at(now: datetime, options: RetrainOptions) -> RetrainWindows:
    """The job's windows at ``now`` (see the module docstring).

    >>> w = windows_at(datetime(2018, 8, 8, 15, tzinfo=UTC), RetrainOptions())
    >>> [day.date().isoformat() for window in (w.backtest, w.holdout, w.final) for day in window]
    ['2018-06-20', '2018-07-18', '2018-07-25', '2018-08-01', '2018-07-04', '2018-08-01']
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    end = today - options.delay
    holdout_start = end - timedelta(days=options.test_days)
    backtest_end = holdout_start - options.delay
    return RetrainWindows(
        known_by=now,
        backtest=(backtest_end - timedelta(days=options.train_days), backtest_end),
        holdout=(holdout_start, end),
        final=(end - timedelta(days=options.train_days), end),
    )


@dataclass(frozen=True)
class RetrainResult:
    """A trained candidate, how it and the champion did on the hold-out, and the decision."""

    model: BatchLearner
    windows: RetrainWindows
    options: RetrainOptions
    candidate: EvaluationMetrics
    champion: EvaluationMetrics
    holdout: pd.DataFrame
    """The hold-out rows: ``timestamp, card_id, is_fraud, label_known_at``, the champion's
    recorded ``score`` and the candidate's ``candidate_score``."""
    rows: dict[str, int]
    warm: OnlineLearner | None = None
    """The warm restart's online learner, when asked for: it learned the final window."""

    @property
    def gain(self) -> float:
        return self.candidate.mean_weekly_average_precision - (
            self.champion.mean_weekly_average_precision
        )

    @property
    def promote(self) -> bool:
        gain = self.gain
        return not math.isnan(gain) and gain >= self.options.margin

    @functools.cached_property
    def holdout_blend(self) -> Blend:
        """How the candidate would best be blended with the champion, on the hold-out's
        labels: the champion's recorded scores against the candidate's (`models.blend`)."""
        holdout = self.holdout
        return best_blend(holdout["is_fraud"], holdout["score"], holdout["candidate_score"])

    def metrics(self) -> dict[str, float]:
        """The figures a model record keeps (undefined ones dropped by the record)."""
        figures = {}
        for who, metrics in (("holdout", self.candidate), ("champion_holdout", self.champion)):
            overall = metrics.overall
            figures[f"{who}_average_precision"] = metrics.mean_weekly_average_precision
            figures[f"{who}_card_precision_at_k"] = metrics.mean_weekly_card_precision_at_k
            figures[f"{who}_roc_auc"] = overall.roc_auc
        figures["holdout_rows"] = float(self.rows["holdout"])
        figures["holdout_frauds"] = float(self.rows["holdout_frauds"])
        return figures

    def summary(self) -> dict[str, object]:
        return {
            "decision": "promote" if self.promote else "challenger",
            "gain": None if math.isnan(self.gain) else round(self.gain, 6),
            "margin": self.options.margin,
            "windows": self.windows.as_dict(),
            "rows": dict(self.rows),
            "candidate": self.candidate.to_dict(),
            "champion": self.champion.to_dict(),
        }

    def describe(self, feature_schema: str, code_version: str) -> NewModel:
        """The record of the registered (final-window) model: kind batch, full provenance."""
        options = self.options
        model = self.model
        return NewModel(
            kind="batch",
            learner=model.name,
            params={
                **{name: _json_value(value) for name, value in model.params.items()},
                "train_days": options.train_days,
                "label_delay_seconds": int(options.delay.total_seconds()),
                "test_days": options.test_days,
                "promote_margin": options.margin,
                "windows": self.windows.as_dict(),
            },
            feature_schema=feature_schema,
            labels_learned=model.labels_learned,
            frauds_learned=model.frauds_learned,
            data_window=self.windows.final,
            code_version=code_version,
            seed=options.seed,
            metrics=self.metrics(),
            reason="retrain: promoted" if self.promote else "retrain: challenger",
        )

    def describe_warm(self, feature_schema: str, code_version: str) -> NewModel:
        """The record of the warm restart's learner: online, with the window it replayed."""
        if self.warm is None:
            raise ValueError("this retrain made no warm restart")
        learner = self.warm
        return NewModel(
            kind="online",
            learner=learner.name,
            params={name: _json_value(value) for name, value in learner.params.items()},
            feature_schema=feature_schema,
            labels_learned=learner.labels_learned,
            frauds_learned=learner.frauds_learned,
            data_window=self.windows.final,
            code_version=code_version,
            seed=learner.seed,
            reason="retrain: warm restart",
        )


def _json_value(value: object) -> object:
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)


def _matrix(rows: pd.DataFrame, names: tuple[str, ...]) -> np.ndarray[Any, np.dtype[np.float64]]:
    return np.ascontiguousarray(rows[feature_columns(names)].to_numpy(dtype=np.float64))


def _check(rows: pd.DataFrame, what: str, options: RetrainOptions) -> None:
    frauds = int(rows["is_fraud"].sum())
    if len(rows) < options.min_labels:
        raise RetrainError(
            f"too few labels in the {what}: {len(rows)} (at least {options.min_labels})"
        )
    if frauds < options.min_frauds or frauds == len(rows):
        raise RetrainError(
            f"the {what} holds {frauds} frauds among {len(rows)} labels "
            f"(at least {options.min_frauds} and one legitimate example are needed)"
        )


def _scored_frame(rows: pd.DataFrame, scores: np.ndarray[Any, Any]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "timestamp": rows["event_time"].to_numpy(),
            "card_id": rows["card_id"].to_numpy(),
            "score": rows["score"].to_numpy(dtype=np.float64),
            "candidate_score": scores,
            "is_fraud": rows["is_fraud"].to_numpy(dtype=bool),
            "label_known_at": rows["label_time"].to_numpy(),
        }
    )


def _fit(rows: pd.DataFrame, names: tuple[str, ...], options: RetrainOptions) -> BatchLearner:
    try:
        return train_batch(_matrix(rows, names), rows["is_fraud"], names, options.spec())
    except BatchTrainingError as error:
        raise RetrainError(str(error)) from None


def retrain(
    source: ExampleSource,
    now: datetime,
    options: RetrainOptions,
    progress: Progress | None = None,
) -> RetrainResult:
    """Train, back-test and refit at ``now``; raises `RetrainError` (changing nothing) when a
    window has too few labels or no fraud."""
    report = progress or (lambda _done, _step: None)
    windows = windows_at(now, options)
    names = source.feature_names
    report(0.0, "reading the offline store")
    start = min(windows.backtest[0], windows.final[0])
    rows = source.read(start, windows.holdout[1], known_by=windows.known_by)
    in_window = rows["event_time"]
    backtest = rows.loc[
        (in_window >= windows.backtest[0])
        & (in_window < windows.backtest[1])
        & (rows["label_time"] <= windows.holdout[0])
    ]
    holdout = rows.loc[(in_window >= windows.holdout[0]) & (in_window < windows.holdout[1])]
    final = rows.loc[(in_window >= windows.final[0]) & (in_window < windows.final[1])]
    _check(backtest, "back-test training window", options)
    _check(holdout, "hold-out period", options)
    _check(final, "training window", options)
    report(0.1, "training the back-test model")
    scorer = _fit(backtest, names, options)
    report(0.45, "measuring on the hold-out")
    scored = _scored_frame(holdout, scorer.predict_many(_matrix(holdout, names)))
    first, last = windows.holdout
    candidate = evaluate_scores(
        scored.assign(score=scored["candidate_score"]), k=options.k, start=first, end=last
    )
    champion = evaluate_scores(scored, k=options.k, start=first, end=last)
    report(0.55, "training on the latest window")
    model = _fit(final, names, options)
    warm = None
    if options.warm_restart:
        report(0.8, "replaying the window into a fresh online learner")
        warm = replay_online(
            final, names, options.online_learner, options.online_params, options.seed
        )
    report(1.0, "trained")
    return RetrainResult(
        model=model,
        windows=windows,
        options=options,
        candidate=candidate,
        champion=champion,
        holdout=scored,
        rows={
            "backtest": len(backtest),
            "holdout": len(holdout),
            "holdout_frauds": int(holdout["is_fraud"].sum()),
            "final": len(final),
            "final_frauds": int(final["is_fraud"].sum()),
        },
        warm=warm,
    )
