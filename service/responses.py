"""Response bodies of the API (the contract models travel inside them unchanged)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Literal

import orjson
from fastapi import Response
from pydantic import BaseModel, ConfigDict, Field

from models.model_record import ModelRecord
from models.schemas import Alert, Score
from models.scored import Scored
from pipelines.retrain.matured_rows import WhatIf


class ScoreResponse(Score):
    """A `Score` with the alert threshold it was decided against and the time it took."""

    threshold: float
    latency_ms: float = Field(description="Server-side time to validate, score and decide")


class BatchScoreResponse(BaseModel):
    scores: list[ScoreResponse]
    latency_ms: float


class Accepted(BaseModel):
    accepted: int
    backlog: int = Field(description="Transactions waiting in the queue after these")


class LabelsResponse(BaseModel):
    learned: int
    corrected: int = Field(description="Labels that reversed a learned verdict: learned again")
    repeated: int = Field(description="Labels repeating the verdict learned: nothing to learn")
    unknown: list[str] = Field(description="Ids never scored here, or whose vector expired")
    refused: list[str] = Field(
        default_factory=list,
        description="Ids whose verdict was already corrected as often as "
        "FRAUDSTREAM_MAX_LABEL_CORRECTIONS allows: these labels were not learned",
    )
    statuses: list[str] = Field(
        default_factory=list,
        description="Each label's fate, in the order sent: learned, corrected, repeated, "
        "unknown or refused",
    )


class ModelResponse(BaseModel):
    name: str = Field(description="The champion's learner, or the challenger's name")
    version: str = Field(description="What its scores name: lineage + labels learned since")
    role: str = Field(description="champion (its scores are served) or challenger (shadow)")
    learner: str
    params: dict[str, object]
    labels_learned: int
    frauds_learned: int
    matured_labels: int = Field(description="Labels in the rolling window of the figures")
    rolling_average_precision: float | None
    rolling_card_precision_at_k: float | None
    rolling_alert_precision: float | None = Field(
        description="Share of its scores above the alert threshold that were fraud"
    )
    k: int = Field(description="The daily card budget of the Card Precision@k")


class VersionResponse(ModelRecord):
    """A registered model version with its provenance, and what it is doing now."""

    status: str = Field(description="champion, challenger (shadowing), registered or retired")


class ModelsResponse(BaseModel):
    models: list[ModelResponse] = Field(description="The serving models: champion first")
    champion_version: str | None = Field(description="The registry's champion pointer")
    versions: list[VersionResponse] = Field(description="Registered versions, newest first")


class ChallengerRequest(BaseModel):
    """A learner to shadow: a recipe (`GET /docs` lists them in the README) and parameters."""

    model_config = ConfigDict(extra="forbid")

    learner: str
    params: dict[str, Any] = Field(default_factory=dict)
    seed: int = 0


class Promoted(BaseModel):
    champion_version: str
    model_version: str = Field(description="What the champion's scores name from now on")


class AuditResponse(BaseModel):
    transaction_id: str
    model_version: str
    score: float
    decision: str
    threshold: float
    reasons: list[dict[str, object]]
    features: dict[str, float] = Field(description="The vector the score was computed from")
    shadow_scores: dict[str, float] = Field(description="What each challenger scored, by version")
    label: bool | None = Field(description="The label learned for it so far, if any")


class ModelEvent(BaseModel):
    at: str
    event: str
    version: str
    detail: str


class Health(BaseModel):
    status: str


class ScoreBinResponse(BaseModel):
    lower: float
    upper: float
    count: int
    above_threshold: int = Field(
        description="Those of count strictly above the threshold, the ones that alert: a bin "
        "can hold both, as a score exactly at the threshold does not alert"
    )


class ScoreDistribution(BaseModel):
    scores: int = Field(description="Recent scores counted: the last ones given, at most 5,000")
    threshold: float = Field(description="The alert threshold in force now")
    bins: list[ScoreBinResponse] = Field(description="Equal bins over [0, 1], lowest first")
    above_threshold: int = Field(
        description="Of the recent scores, those strictly above the threshold (they alert)"
    )


class AlertMinute(BaseModel):
    start: datetime
    alerts: int | None = Field(description="None for a minute before the service observed it")


class AlertRateResponse(BaseModel):
    per_minute: float | None = Field(description="Mean over the observed part of the window")
    observed_minutes: float = Field(description="The part of the window the service observed")
    total: int = Field(description="Alerts raised since the service started")
    minutes: list[AlertMinute] = Field(description="The last whole minutes, oldest first")


class QualitySample(BaseModel):
    at: datetime
    rolling_average_precision: float | None


class DashboardModel(BaseModel):
    name: str = Field(description="The champion's learner, or the challenger's name")
    version: str
    role: str = Field("champion", description="champion or challenger (shadow)")
    learner: str
    labels_learned: int
    matured_labels: int
    rolling_average_precision: float | None
    history: list[QualitySample] = Field(
        description="Rolling AP sampled every few seconds: the champion's whichever model "
        "served, a challenger's since it began shadowing"
    )


class DashboardResponse(BaseModel):
    at: datetime
    transactions_scored: int
    score_distribution: ScoreDistribution
    alert_rate: AlertRateResponse
    models: list[DashboardModel] = Field(description="The serving models: champion first")


def score_document(result: Scored, latency_ms: float) -> dict[str, object]:
    """A `ScoreResponse` as plain JSON data, built straight from the score.

    The hot endpoints answer with these serialised by orjson instead of validating a response
    model we built ourselves; `tests/service` pins the shape to `ScoreResponse`.
    """
    document = result.document()
    document["threshold"] = result.threshold
    document["latency_ms"] = latency_ms
    return document


def json_response(document: object) -> Response:
    return Response(orjson.dumps(document), media_type="application/json")


def finite_or_none(value: float) -> float | None:
    """JSON has no NaN: an undefined figure (no matured label yet) travels as ``null``."""
    return None if math.isnan(value) else value


VerdictName = Literal["fraud", "legitimate"]


def verdict_name(is_fraud: bool) -> VerdictName:
    return "fraud" if is_fraud else "legitimate"


class ReviewedAlert(Alert):
    """An alert with the analysts' verdict on it, where one was given to this server."""

    verdict: VerdictName | None = None

    @classmethod
    def of(cls, alert: Alert, is_fraud: bool | None) -> ReviewedAlert:
        verdict = None if is_fraud is None else verdict_name(is_fraud)
        return cls(**dict(alert), verdict=verdict)


class VerdictResponse(BaseModel):
    transaction_id: str
    verdict: VerdictName
    status: Literal["learned", "corrected", "repeated", "unknown", "refused", "accepted"] = Field(
        description="The label's fate: as for POST /v1/labels in embedded mode; in distributed "
        "mode `accepted` (202): the learner learns it from the labels topic"
    )


class ThresholdFigures(BaseModel):
    threshold: float
    alerts_per_day: float
    precision: float | None = Field(description="null: nothing alerted")
    recall: float | None = Field(description="null: no fraud")
    legitimate_cards_bothered_per_day: float


class BudgetFigures(BaseModel):
    cards_per_day: int
    card_precision: float | None
    alert_precision: float | None
    card_recall: float | None


class WhatIfResponse(BaseModel):
    """Each threshold's and card budget's figures over the offline store's matured days."""

    challenger: str | None = Field(
        default=None,
        description="The shadow challenger whose scores these are (null: the champion as served)",
    )
    start: datetime | None
    end: datetime | None
    transactions: int
    frauds: int
    alert_threshold: float | None = Field(
        description="The threshold in force (null from the command line under an alert budget, "
        "where it follows the scores)"
    )
    thresholds: list[ThresholdFigures]
    budgets: list[BudgetFigures]

    @classmethod
    def of(
        cls, found: WhatIf | None, alert_threshold: float | None, challenger: str | None = None
    ) -> WhatIfResponse:
        if found is None:
            return cls(
                challenger=challenger,
                start=None,
                end=None,
                transactions=0,
                frauds=0,
                alert_threshold=alert_threshold,
                thresholds=[],
                budgets=[],
            )
        return cls(
            challenger=challenger,
            start=found.start,
            end=found.end,
            transactions=found.transactions,
            frauds=found.frauds,
            alert_threshold=alert_threshold,
            thresholds=[
                ThresholdFigures(
                    threshold=point.threshold,
                    alerts_per_day=point.alerts_per_day,
                    precision=finite_or_none(point.precision),
                    recall=finite_or_none(point.recall),
                    legitimate_cards_bothered_per_day=point.legitimate_cards_bothered_per_day,
                )
                for point in found.thresholds
            ],
            budgets=[
                BudgetFigures(
                    cards_per_day=point.cards_per_day,
                    card_precision=finite_or_none(point.card_precision),
                    alert_precision=finite_or_none(point.alert_precision),
                    card_recall=finite_or_none(point.card_recall),
                )
                for point in found.budgets
            ],
        )
