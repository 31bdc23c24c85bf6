"""Backtest of a draft rule or threshold, as the API and the command line ask for one and
answer it: the request, the answer, and the wiring from settings to the offline store.

The draft is taken over the offline store of this process's data directory (the embedded
service's own, or in distributed mode the learner's when the API shares its data directory),
against what the service decides today: the model at the threshold in force and the enabled
rules in force.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from models.backtest import Backtest, Draft, draft_rule
from models.features import FeatureSet, FeatureSpec
from models.rules.grammar import MAX_RULE_CHARS, RuleFields
from models.rules.ruleset import Rule
from models.state import WindowSpec
from pipelines.retrain.matured_rows import backtest_store
from pipelines.rules.book import RuleBook, rules_at_start
from pipelines.rules.storage import RULES_FILE, FileRuleStorage
from pipelines.state.redis_stores import redis_client
from service.distributed import redis_rule_book
from service.responses import finite_or_none
from service.retraining import offline_store
from service.settings import Settings
from service.signing import embedded_key

MAX_DAYS = 365


class BacktestRequest(BaseModel):
    """A draft rule or a draft threshold (exactly one), and the matured days to look back over."""

    model_config = ConfigDict(extra="forbid")

    rule: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_RULE_CHARS,
        description='A rule as an administrator writes it, e.g. "amount > 1000 -> review"',
        examples=["amount > 1000 and card_terminal_first_use == 1 -> review"],
    )
    threshold: float | None = Field(
        default=None, ge=0, le=1, strict=True, description="An alert threshold to try instead"
    )
    days: int = Field(default=28, ge=1, le=MAX_DAYS, strict=True)

    @model_validator(mode="after")
    def _one_draft(self) -> Self:
        if (self.rule is None) == (self.threshold is None):
            raise ValueError("give exactly one of 'rule' or 'threshold'")
        return self

    def draft(self, settings: Settings) -> Draft:
        """The draft, a rule parsed against the stored features (`RuleSyntaxError` if not)."""
        if self.rule is not None:
            return draft_rule(self.rule, stored_features(settings))
        assert self.threshold is not None  # one of them, by validation
        return self.threshold


def stored_features(settings: Settings) -> tuple[str, ...]:
    """The feature names this deployment stores with each label (the store's columns)."""
    windows = WindowSpec(label_delay_seconds=int(settings.label_delay.total_seconds()))
    return FeatureSet(FeatureSpec(windows=windows)).names


def run_backtest(
    settings: Settings,
    draft: Draft,
    days: int,
    threshold_in_force: float,
    rules_in_force: Sequence[Rule] = (),
) -> Backtest | None:
    """Reads the store's matured rows with their features: a blocking call, off the loop."""
    store = offline_store(settings, stored_features(settings))
    return backtest_store(
        store, days, settings.label_delay, draft, threshold_in_force, rules_in_force
    )


def rules_in_force(settings: Settings) -> tuple[Rule, ...]:
    """The deployment's rule set in force, for a backtest run with no service: a distributed
    deployment's in Redis, an embedded service's in the data directory (none stored, or one
    that does not verify: no rule)."""
    fields = RuleFields.of_features(stored_features(settings))
    if settings.redis_url is not None:
        client = redis_client(settings.redis_url)
        try:
            return rules_at_start(redis_rule_book(settings, client, fields)).rules
        finally:
            client.close()
    path = settings.data_dir / RULES_FILE
    if not path.exists():
        return ()
    book = RuleBook(FileRuleStorage(path), embedded_key(settings), fields)
    return rules_at_start(book).rules


class FiguresBody(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    alerts: int
    alerts_per_day: float
    precision: float | None = Field(description="Alerted transactions that were fraud")
    recall: float | None = Field(description="Fraud transactions alerted")
    card_precision: float | None = Field(description="Alerted card-days with a fraud that day")
    card_recall: float | None = Field(description="Compromised card-days alerted")
    legitimate_cards_bothered_per_day: float

    @field_validator("precision", "recall", "card_precision", "card_recall", mode="before")
    @classmethod
    def _defined(cls, value: float | None) -> float | None:
        return None if value is None else finite_or_none(value)


class ChangeBody(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    frauds_added: int = Field(description="Fraud transactions alerted only with the draft")
    frauds_lost: int = Field(description="Fraud transactions the draft no longer alerts")
    fraud_cards_added: int
    fraud_cards_lost: int
    legitimate_cards_bothered: int = Field(
        description="Distinct cards with a legitimate transaction alerted only with the draft"
    )
    legitimate_cards_spared: int


class PeriodBody(BaseModel):
    """A period's figures, read off `models.backtest.Period` attribute by attribute."""

    model_config = ConfigDict(from_attributes=True)

    start: datetime
    days: float
    transactions: int
    frauds: int
    model: FiguresBody = Field(description="Today's model and rules at the threshold in force")
    with_draft: FiguresBody
    change: ChangeBody


class BacktestResponse(BaseModel):
    """The draft beside what the service decides today (the model at the threshold in force and
    the enabled rules in force) over the offline store's matured days (no period when no label
    has matured yet)."""

    rule: str | None
    action: str | None = Field(description="The draft rule's action (null: a threshold)")
    threshold: float | None
    days: int
    alert_threshold: float = Field(description="The threshold in force")
    rules_in_force: list[str] = Field(
        description="The enabled rules in force that the baseline (`model`) and the draft apply"
    )
    rules_not_stored: list[str] = Field(
        description="Enabled rules in force left out: they read a field the store does not keep"
    )
    matched: int | None = Field(description="Transactions the draft rule's condition matches")
    overall: PeriodBody | None
    daily: list[PeriodBody]

    @classmethod
    def of(
        cls, request: BacktestRequest, draft: Draft, in_force: float, found: Backtest | None
    ) -> BacktestResponse:
        return cls(
            rule=request.rule,
            action=draft.action.value if isinstance(draft, Rule) else None,
            threshold=request.threshold,
            days=request.days,
            alert_threshold=in_force,
            rules_in_force=[] if found is None else list(found.rules_in_force),
            rules_not_stored=[] if found is None else list(found.rules_not_stored),
            matched=None if found is None else found.matched,
            overall=None if found is None else PeriodBody.model_validate(found.overall),
            daily=[] if found is None else [PeriodBody.model_validate(d) for d in found.daily],
        )
