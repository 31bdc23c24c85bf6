"""The scoring and learning core that every entry point drives.

`FraudDetector` owns the order of operations that keeps the system honest: features are read
from state as it stands right after the transaction; the score comes from the learner as it
stands before the label; the vector that was scored is kept and, when the label arrives, that
exact vector is learned and the label's fraud count enters terminal risk at the transaction's
own event time.

Input is not trusted to be consistent: a transaction id repeated with other content is refused
(`ConflictingRepeatError`, `models.idempotency`) before anything of its batch is scored, and a
verdict reversed by a later label is learned again at most `DetectorPolicy.max_corrections`
times (`models.label_outcome`).

Rules an administrator wrote (`models.rules`) decide beside the model once one is enabled: the
score stays the model's, the decision may be the rule's, and the rule is named in the reasons.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from models.alerting import AlertPolicy
from models.drift import DriftMonitor
from models.explain import ReasonCode
from models.features import FeatureSet, FeatureVector
from models.idempotency import content_digest, refuse_conflicts
from models.label_outcome import LabelStatus, LearnOutcome
from models.learners import OnlineLearner
from models.pending import MaturityQueue, PendingEntry, PendingStore, PendingVectors
from models.quality import MaturedLabel, RollingQuality
from models.rules.grammar import RuleAction, RuleFields
from models.rules.ruleset import RuleSet
from models.schemas import Decision, Label, Transaction
from models.scored import Scored
from models.state import DAY, FeatureState, FraudReport, WindowAggregates, event_second

__all__ = [
    "CHAMPION",
    "DetectorPolicy",
    "DetectorState",
    "FraudDetector",
    "LabelStatus",
    "LearnOutcome",
    "ServingModels",
]

CHAMPION = "champion"
"""The quality window of whichever model is serving."""

_TO_LEARN = (LabelStatus.LEARNED, LabelStatus.CORRECTED)

_scored = Scored._make
_matured = MaturedLabel._make
"""Named tuples from ready tuples: cheaper than their constructors, which Python reaches
through the class's ``__new__``, and one of each is built per transaction scored or learned."""


@dataclass(frozen=True)
class DetectorPolicy:
    """How many reasons a score carries and how long scored vectors wait for their labels."""

    reasons: int = 3
    pending_ttl_seconds: int = 45 * DAY
    max_pending: int = 2_000_000
    implicit_legit_after_seconds: int | None = None
    """Learn a transaction as legitimate when no label came within this period (off: None)."""
    quality_window: int = 10_000
    """Matured labels each model's rolling quality is taken over."""
    quality_k: int = 100
    """The daily card budget of the rolling Card Precision@k."""
    max_corrections: int = 1
    """How many times a later label may reverse a transaction's learned verdict: each reversal
    is learned again, so flipping one id back and forth would otherwise drag the model along."""

    def __post_init__(self) -> None:
        if self.reasons < 0:
            raise ValueError("reasons must not be negative")
        if self.max_corrections < 0:
            raise ValueError("max_corrections must not be negative")
        after = self.implicit_legit_after_seconds
        if after is not None and not 0 < after < self.pending_ttl_seconds:
            # Past the TTL the vector is gone and there is nothing left to learn from.
            raise ValueError(
                "implicit_legit_after_seconds must be positive and shorter than pending_ttl_seconds"
            )


@dataclass
class ServingModels:
    """The models a detector serves: what the learner publishes and every scorer follows."""

    champion: OnlineLearner
    challengers: dict[str, OnlineLearner] = field(default_factory=dict)


@dataclass
class DetectorState:
    """Everything a detector holds besides its champion: what an embedded restart resumes.

    Pickled whole and signed (`models.snapshots.dump_signed`); the champion itself lives in
    the model registry, and ``champion_version`` says which version this state went with.
    """

    champion_version: str
    state: FeatureState
    pending: PendingStore
    alerting: AlertPolicy
    challengers: dict[str, OnlineLearner]
    quality: dict[str, RollingQuality]
    watermark: int | None
    maturity: MaturityQueue | None
    labels_position: int | None = None
    """The offline store's position of the last label this state reflects: a restart learns
    the labels after it (``None``: unknown, nothing is learned again)."""


class FraudDetector:
    """Scores transactions and learns from their delayed labels.

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> from models.features import FeatureSpec
    >>> from models.memory_state import InMemoryFeatureState
    >>> from models.schemas import Label, Transaction
    >>> features = FeatureSet(FeatureSpec())
    >>> detector = FraudDetector(features, InMemoryFeatureState(features.spec.windows),
    ...                          OnlineLearner("logistic"))
    >>> when = datetime(2018, 4, 1, 12, tzinfo=UTC)
    >>> tx = Transaction(transaction_id="t1", timestamp=when, card_id="c1", terminal_id="p1",
    ...                  amount=300.0, currency="EUR")
    >>> detector.score(tx).model_version
    'logistic+0'
    >>> label = Label(transaction_id="t1", is_fraud=True, labelled_at=when, source="analyst")
    >>> detector.learn([label]).learned, detector.model_version
    (1, 'logistic+1')
    """

    def __init__(
        self,
        features: FeatureSet,
        state: FeatureState,
        learner: OnlineLearner,
        policy: DetectorPolicy | None = None,
        alerting: AlertPolicy | None = None,
        pending: PendingStore | None = None,
    ) -> None:
        self.features = features
        self.state = state
        self.learner = learner
        self.policy = policy or DetectorPolicy()
        self.alerting = alerting or AlertPolicy()
        self.pending: PendingStore = pending or PendingVectors(
            self.policy.pending_ttl_seconds, self.policy.max_pending
        )
        after = self.policy.implicit_legit_after_seconds
        self._maturity = MaturityQueue(after) if after is not None else None
        self._watermark: int | None = None
        self._version = self._current_version()
        self.challengers: dict[str, OnlineLearner] = {}
        """Shadow models by name: they score every transaction and learn every label, but
        their scores are only recorded, never returned or alerted on."""
        self.quality: dict[str, RollingQuality] = {CHAMPION: self._new_quality()}
        """Each model's quality on matured labels: the champion's, then each challenger's."""
        self._rules = RuleSet()
        self._active_rules: RuleSet | None = None
        self.rule_decisions: dict[tuple[str, str], int] = {}
        """Transactions each rule decided, by (rule, action): a counter the metrics read."""
        self.drift: DriftMonitor | None = None
        """Given every first-scored vector with its score, for the label-free drift alarm
        (none: not watched)."""

    @property
    def watermark(self) -> int | None:
        """The latest event second scored so far."""
        return self._watermark

    @property
    def model_version(self) -> str:
        """The learner's name and how many labels it has learned: a score names what made it."""
        return self._version

    def _current_version(self) -> str:
        return self.learner.version

    @property
    def rules(self) -> RuleSet:
        """The rule set applied beside the model (empty: the model alone decides)."""
        return self._rules

    def apply_rules(self, rules: RuleSet) -> None:
        """Decide with ``rules`` from the next transaction on."""
        self._rules = rules
        # Scoring asks only this: with no rule enabled it builds no row.
        self._active_rules = rules if rules.active else None

    def rule_fields(self) -> RuleFields:
        """What a rule may read: the transaction's text fields and this feature vector."""
        return RuleFields.of_features(self.features.names)

    def score(self, transaction: Transaction) -> Scored:
        return self.score_many([transaction])[0]

    def replace_learner(self, learner: OnlineLearner, *, new_lineage: bool = False) -> None:
        """Score with ``learner`` from the next transaction on.

        A newer version of the same lineage (the learner's publication) keeps the champion's
        quality window; another lineage (a rollback) starts it afresh.
        """
        self.learner = learner
        self._version = self._current_version()
        if new_lineage:
            self.quality[CHAMPION] = self._new_quality()

    def serving(self) -> ServingModels:
        return ServingModels(self.learner, dict(self.challengers))

    def serve(self, models: ServingModels) -> None:
        """Serve a newer publication: its champion, and exactly its challengers."""
        self.replace_learner(models.champion)
        for name in [name for name in self.challengers if name not in models.challengers]:
            self.retire_challenger(name)
        for name, learner in models.challengers.items():
            if name in self.challengers:
                self.challengers[name] = learner
            else:
                self.add_challenger(name, learner)

    def add_challenger(self, name: str, learner: OnlineLearner) -> None:
        """Shadow ``learner`` under ``name`` from the next transaction on."""
        if name == CHAMPION or name in self.challengers:
            raise ValueError(f"a model named {name!r} is already serving")
        self.challengers[name] = learner
        self.quality[name] = self._new_quality()

    def retire_challenger(self, name: str) -> OnlineLearner:
        learner = self.challengers.pop(name)
        del self.quality[name]
        return learner

    def promote(self, name: str) -> OnlineLearner:
        """Make challenger ``name`` the champion, with its quality window; returns the old one."""
        learner = self.challengers.pop(name)
        previous, self.learner = self.learner, learner
        self.quality[CHAMPION] = self.quality.pop(name)
        self._version = self._current_version()
        return previous

    def export_state(self, champion_version: str) -> DetectorState:
        return DetectorState(
            champion_version,
            self.state,
            self.pending,
            self.alerting,
            self.challengers,
            self.quality,
            self._watermark,
            self._maturity,
        )

    def restore_state(self, saved: DetectorState) -> None:
        """Resume from ``saved``: windows, pending vectors, cooldowns, challengers, quality."""
        self.state = saved.state
        self.pending = saved.pending
        self.alerting = saved.alerting
        self.challengers = saved.challengers
        self.quality = saved.quality
        self._watermark = saved.watermark
        self._maturity = saved.maturity
        self._version = self._current_version()

    def _new_quality(self) -> RollingQuality:
        return RollingQuality(self.policy.quality_window, self.policy.quality_k)

    def score_many(self, transactions: Sequence[Transaction]) -> list[Scored]:
        """Score a batch in order, recording each transaction in feature state once.

        A repeated id whose content differs from what was scored under it raises
        `ConflictingRepeatError` before anything is scored: feature state has recorded the
        batch's new transactions by then (a repeat it leaves alone), and scoring them again
        answers from that record, as after a crash.
        """
        return self.score_observed(transactions, self.state.observe(transactions))

    def score_observed(
        self, transactions: Sequence[Transaction], observed: Sequence[WindowAggregates]
    ) -> list[Scored]:
        """`score_many` for transactions feature state has recorded already: ``observed`` is
        what `FeatureState.observe` answered for exactly these (a stream worker records a
        batch in one step and scores it in another)."""
        if any(aggregates.duplicate for aggregates in observed):
            refuse_conflicts(transactions, observed, self.pending)
        vector = self.features.vector
        scores = [
            self.score_vector(tx, aggregates.duplicate, vector(tx, aggregates))
            for tx, aggregates in zip(transactions, observed, strict=True)
        ]
        self.advance(transactions)
        return scores

    def learn(
        self,
        labels: Sequence[Label],
        on_learned: Callable[[PendingEntry, Label], None] | None = None,
    ) -> LearnOutcome:
        """Learn each label from the vector its transaction was scored with.

        ``on_learned`` is given each label learned with the entry it was learned from (the
        offline store's rows), before the entry takes the new verdict.
        """
        outcome = LearnOutcome()
        reports: list[FraudReport] = []
        pending = self.pending
        names, learners = self.features.names, self._learners()
        judge = self._judge
        max_corrections = self.policy.max_corrections
        latest: datetime | None = None
        for label in labels:
            entry = pending.get(label.transaction_id)
            status = outcome.add(label, entry, max_corrections)
            if entry is None or status not in _TO_LEARN:
                continue
            if status is LabelStatus.CORRECTED:
                entry.corrections += 1
            judge(entry, label)
            if on_learned is not None:
                on_learned(entry, label)
            report = self._learn_entry(entry, label.is_fraud, names, learners)
            if report is not None:
                reports.append(report)
            if latest is None or label.labelled_at > latest:
                latest = label.labelled_at
        if reports:
            self.state.record_frauds(reports)
        if latest is not None:
            second = event_second(latest)
            for learner in learners:
                learner.labels_known(second)
            self._version = self._current_version()
        return outcome

    def vector_of(self, transaction_id: str) -> FeatureVector | None:
        """The feature vector a transaction was scored with, while it is still kept."""
        entry = self.pending.get(transaction_id)
        return None if entry is None else dict(zip(self.features.names, entry.values, strict=True))

    def score_vector(self, tx: Transaction, duplicate: bool, vector: FeatureVector) -> Scored:
        """One transaction's step of `score_observed`, for its vector computed from state."""
        earlier = self.pending.get(tx.transaction_id) if duplicate else None
        if earlier is not None:
            # A replay re-emits the first answer instead of scoring with state it already
            # counted, so downstream sees the same score, version and decision twice and the
            # card is not alerted again; the alert's cooldown is put back in case the process
            # died before writing it.
            if earlier.scored.decision is Decision.ALERT:
                self.alerting.restore(tx.card_id, earlier.second)
            return earlier.scored._replace(replayed=True)
        probability, reasons = self.learner.score_and_explain(vector, self.policy.reasons)
        second = event_second(tx.timestamp)
        alerting = self.alerting
        rules = self._active_rules
        if rules is None:
            alert = alerting.decide(tx.card_id, probability, second)
            decision = Decision.ALERT if alert else Decision.PASS
        else:
            decision, reasons = self._ruled(rules, tx, vector, probability, second, reasons)
        scored = _scored(
            (
                tx.transaction_id,
                probability,
                self._version,
                decision,
                alerting.threshold,
                reasons,
                False,
            )
        )
        if earlier is None:
            # A first sighting, or a repeat whose first answer was never stored (the process
            # died between recording it in state and storing its vector): keep this one.
            challengers = self.challengers
            shadow = (
                tuple([(name, model.score(vector)) for name, model in challengers.items()])
                if challengers
                else ()
            )
            values = array("d", [*vector.values()])
            if self.drift is not None:
                self.drift.observe(second, values, tx.card_id, probability)
            self.pending.put(
                tx.transaction_id,
                PendingEntry(
                    values,
                    tx.terminal_id,
                    second,
                    scored,
                    None,
                    tx.card_id,
                    shadow,
                    content_digest(tx),
                ),
            )
            if self._maturity is not None:
                self._maturity.push(tx.transaction_id, second)
        return scored

    def _ruled(
        self,
        rules: RuleSet,
        tx: Transaction,
        vector: FeatureVector,
        probability: float,
        second: int,
        reasons: tuple[ReasonCode, ...],
    ) -> tuple[Decision, tuple[ReasonCode, ...]]:
        """The decision when rules are active, and the reasons, the deciding rule's first.

        ``allow`` passes whatever the score and marks no cooldown; ``alert`` alerts whatever
        the score, unless the card is in its cooldown; ``review`` asks for a look unless the
        model alerts anyway. The deciding rule is named even when the model agreed with it.
        """
        row = {
            **vector,
            "card_id": tx.card_id,
            "terminal_id": tx.terminal_id,
            "currency": tx.currency,
            "merchant_category": tx.merchant_category,
            "channel": tx.channel,
            "country": tx.country,
        }
        match = rules.decide(row)
        alerting = self.alerting
        if match is None:
            alert = alerting.decide(tx.card_id, probability, second)
            return (Decision.ALERT if alert else Decision.PASS), reasons
        action = match.action
        counted = (match.rule, action.value)
        self.rule_decisions[counted] = self.rule_decisions.get(counted, 0) + 1
        if action is RuleAction.ALLOW:
            alerting.observe(probability, second)
            decision = Decision.PASS
        elif action is RuleAction.ALERT:
            alert = alerting.decide(tx.card_id, probability, second) or alerting.force(
                tx.card_id, second
            )
            decision = Decision.ALERT if alert else Decision.PASS
        else:
            alert = alerting.decide(tx.card_id, probability, second)
            decision = Decision.ALERT if alert else Decision.REVIEW
        named = ReasonCode(f"rule:{match.rule}", float(match.version), 0.0)
        return decision, (named, *reasons)

    def refuse_conflicting(self, transactions: Sequence[Transaction]) -> None:
        """Raise `ConflictingRepeatError` for those whose id was scored with other content:
        a check for a caller that queues transactions to be scored later."""
        refuse_conflicts(transactions, None, self.pending)

    def _judge(self, entry: PendingEntry, label: Label) -> None:
        """Pair the label with the score each model gave its transaction at arrival."""
        known = event_second(label.labelled_at)
        quality = self.quality
        quality[CHAMPION].add(
            _matured((entry.second, entry.card_id, entry.scored.score, label.is_fraud, known))
        )
        for name, score in entry.shadow:
            if name in quality:
                quality[name].add(
                    _matured((entry.second, entry.card_id, score, label.is_fraud, known))
                )

    def _learners(self) -> tuple[OnlineLearner, ...]:
        """Every model that learns a label: the champion, then each shadow challenger."""
        challengers = self.challengers
        return (self.learner, *challengers.values()) if challengers else (self.learner,)

    def _learn_entry(
        self,
        entry: PendingEntry,
        is_fraud: bool,
        names: Sequence[str],
        learners: Sequence[OnlineLearner],
    ) -> FraudReport | None:
        """Every model learns the kept vector; then the verdict is recorded, and what it
        changes in the terminal's fraud count, if anything, is returned.

        ``names`` and ``learners`` are the caller's, read once for a whole batch of labels.
        """
        for learner in learners:
            learner.learn_kept(names, entry.values, is_fraud)
        previous = self.pending.set_verdict(entry, is_fraud)
        if is_fraud and previous is not True:
            return FraudReport(entry.terminal_id, entry.second, +1)
        if not is_fraud and previous is True:
            return FraudReport(entry.terminal_id, entry.second, -1)
        return None

    def advance(self, transactions: Sequence[Transaction]) -> None:
        """Move event time to the latest of ``transactions`` scored: labels that never came
        mature as legitimate, and pending vectors past their TTL expire."""
        if not transactions:
            return
        latest = max(event_second(tx.timestamp) for tx in transactions)
        if self._watermark is not None and latest <= self._watermark:
            return
        self._watermark = latest
        if self._maturity is not None:
            names, learners = self.features.names, self._learners()
            for transaction_id in self._maturity.matured(latest):
                entry = self.pending.get(transaction_id)
                if entry is not None and entry.verdict is None:
                    self._learn_entry(entry, False, names, learners)
            for learner in learners:
                learner.labels_known(latest)
            self._version = self._current_version()
        self.pending.expire(latest)
