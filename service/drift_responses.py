"""The answer of `GET /v1/drift`: the latest day's label-free drift report."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

from pydantic import BaseModel, Field

from models.drift import Cell, DriftReport

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC).date()


def _day(day: int) -> date:
    return _EPOCH + timedelta(days=day)


def _finite(value: float) -> float | None:
    """JSON has no infinity or NaN: an open bin edge or an undefined PSI is null."""
    return value if math.isfinite(value) else None


class FeaturePsi(BaseModel):
    feature: str
    psi: float | None = Field(description="Population stability index (null: undefined)")


class SurprisingCell(BaseModel):
    """A cell of binned features holding more recent cards than the reference predicts."""

    features: list[str]
    lower: list[float | None] = Field(description="Each feature's lower bound (null: none)")
    upper: list[float | None] = Field(description="Each feature's upper bound, excluded")
    cards: int
    expected: float
    surprise: float = Field(description="-log10 of the Bonferroni-corrected p-value")

    @classmethod
    def of(cls, cell: Cell) -> SurprisingCell:
        return cls(
            features=list(cell.features),
            lower=[_finite(value) for value in cell.lower],
            upper=[_finite(value) for value in cell.upper],
            cards=cell.cards,
            expected=cell.expected,
            surprise=cell.surprise,
        )


class DriftResponse(BaseModel):
    """The latest day against its reference window; ``day`` null while there is none."""

    watched: bool = Field(description="Whether this process watches drift")
    alarm: bool
    threshold: float | None = Field(description="The cell surprise past which the alarm is on")
    novelty_threshold: float | None = Field(
        default=None, description="The novelty surprise past which the alarm is on"
    )
    day: date | None = None
    reference_start: date | None = None
    reference_end: date | None = None
    transactions: int = 0
    score_psi: float | None = None
    features: list[FeaturePsi] = Field(default_factory=list)
    cells: list[SurprisingCell] = Field(default_factory=list)
    card_days: int = Field(default=0, description="Cards that paid on the day")
    novel_card_days: int | None = Field(
        default=None, description="Card-days more isolated than nearly all the reference's"
    )
    novelty_expected: float | None = Field(
        default=None, description="Novel card-days a day like the reference would have"
    )
    novelty_surprise: float | None = Field(
        default=None, description="-log10 of the novel count's Poisson p-value"
    )

    @classmethod
    def of(
        cls,
        report: DriftReport | None,
        threshold: float | None,
        novelty_threshold: float | None = None,
    ) -> DriftResponse:
        """``threshold`` none: the process does not watch drift."""
        if report is None:
            return cls(
                watched=threshold is not None,
                alarm=False,
                threshold=threshold,
                novelty_threshold=novelty_threshold,
            )
        found = report.novelty
        return cls(
            watched=True,
            alarm=report.alarm,
            threshold=threshold,
            novelty_threshold=novelty_threshold,
            day=_day(report.day),
            reference_start=_day(report.reference_first_day),
            reference_end=_day(report.reference_last_day),
            transactions=report.transactions,
            score_psi=_finite(report.score_psi),
            features=[FeaturePsi(feature=f.name, psi=_finite(f.psi)) for f in report.features],
            cells=[SurprisingCell.of(cell) for cell in report.cells],
            card_days=0 if found is None else found.card_days,
            novel_card_days=None if found is None else found.novel,
            novelty_expected=None if found is None else found.expected,
            novelty_surprise=None if found is None else found.surprise,
        )
