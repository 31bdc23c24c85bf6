"""The rule sets of a deployment: write a version, read the one in force, roll back.

Every version is sealed (`pipelines.rules.sealed`) and every text parsed by the grammar before
it is stored, and again when it is loaded. A rollback writes an earlier version's rules as a
new version, so versions only grow and every follower sees the change the same way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from models.rules.grammar import RuleFields, RuleSyntaxError
from models.rules.ruleset import RULE_NAME, Rule, RuleSet
from pipelines.rules.sealed import (
    RuleSetRecord,
    RuleSpec,
    TamperedRulesError,
    key_id,
    seal,
    unseal,
)
from pipelines.rules.storage import RuleStorage

logger = logging.getLogger(__name__)

WRITE_ATTEMPTS = 5


class InvalidRuleError(ValueError):
    """A rule that is not one: ``index`` says which of the set, ``field`` which of its parts
    (``None``: the set as a whole, e.g. a repeated name)."""

    def __init__(self, message: str, index: int | None = None, field: str | None = None):
        super().__init__(message)
        self.index = index
        self.field = field


class UnknownVersionError(KeyError):
    """A version the history does not hold (never written, or dropped as too old)."""


class WriteConflictError(RuntimeError):
    """Other writers kept coming first."""


@dataclass(frozen=True)
class InForce:
    """The rule set in force and the record it was built from (none written yet: ``None``)."""

    rules: RuleSet
    record: RuleSetRecord | None


def utc_now() -> datetime:
    return datetime.now(UTC)


class RuleBook:
    """Writes and reads sealed rule sets through one `RuleStorage`."""

    def __init__(
        self,
        storage: RuleStorage,
        key: bytes,
        fields: RuleFields,
        *,
        keep: int = 50,
        clock: Callable[[], datetime] = utc_now,
        on_change: Callable[[RuleSet], None] | None = None,
    ) -> None:
        self.storage = storage
        self._key = key
        self.fields = fields
        self.keep = keep
        self._clock = clock
        self.on_change = on_change
        """Called with each version this book writes (the local detector applies it)."""

    def parse(self, specs: Sequence[RuleSpec], version: int = 0) -> RuleSet:
        """The rule set ``specs`` make, or `InvalidRuleError` naming the rule at fault."""
        rules = []
        for index, spec in enumerate(specs):
            try:
                rules.append(Rule.parse(spec.name, spec.text, self.fields, enabled=spec.enabled))
            except RuleSyntaxError as error:
                field = "text" if RULE_NAME.match(spec.name) else "name"
                raise InvalidRuleError(str(error), index, field) from None
        try:
            return RuleSet(tuple(rules), version)
        except RuleSyntaxError as error:
            raise InvalidRuleError(str(error)) from None

    def current(self) -> InForce:
        """The version in force, verified and parsed again.

        Raises `TamperedRulesError` when it does not verify, `InvalidRuleError` when a stored
        text no longer parses (a field it reads is gone).
        """
        history = self.storage.history()
        if not history:
            return InForce(RuleSet(), None)
        record = unseal(history[-1], self._key)
        return InForce(self.parse(record.rules, record.version), record)

    def versions(self) -> list[RuleSetRecord]:
        """The versions kept, newest first; one that does not verify is left out, logged."""
        records = []
        for sealed in reversed(self.storage.history()):
            try:
                records.append(unseal(sealed, self._key))
            except TamperedRulesError as error:
                logger.error("a stored rule-set version was refused: %s", error)
        return records

    def write(self, specs: Sequence[RuleSpec]) -> InForce:
        """Put ``specs`` in force as the next version."""
        self.parse(specs)
        for _ in range(WRITE_ATTEMPTS):
            expected = self.storage.version()
            version = (expected or 0) + 1
            record = RuleSetRecord(version, self._clock(), key_id(self._key), tuple(specs))
            if self.storage.append(seal(record, self._key), version, expected, self.keep):
                rules = self.parse(specs, version)
                logger.info("rule set version %d written (%d rules)", version, len(specs))
                if self.on_change is not None:
                    self.on_change(rules)
                return InForce(rules, record)
        raise WriteConflictError("other writers kept changing the rule set; try again")

    def rollback(self, version: int) -> InForce:
        """Put the rules of ``version`` in force again, as the next version."""
        for record in self.versions():
            if record.version == version:
                return self.write(record.rules)
        raise UnknownVersionError(version)


def rules_at_start(book: RuleBook) -> RuleSet:
    """The rule set in force when a process starts; one that does not verify or parse is
    refused with a log line saying why, and no rule applies until a new version is written."""
    try:
        return book.current().rules
    except (TamperedRulesError, InvalidRuleError) as error:
        logger.error("refused the stored rule set, serving without rules: %s", error)
        return RuleSet()


class RuleFollower:
    """Keeps a scorer on the rule set in force, checking the version at most every
    ``poll_seconds``; a version that does not verify or parse is refused, once, and the set
    already in force is kept."""

    def __init__(
        self,
        book: RuleBook,
        *,
        poll_seconds: float = 1.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.book = book
        self.poll_seconds = poll_seconds
        self.version: int | None = None
        self._monotonic = clock or time.monotonic
        self._next_check = 0.0

    def newer(self, *, force: bool = False) -> RuleSet | None:
        """A rule set newer than the one last returned, or ``None``."""
        now = self._monotonic()
        if not force and now < self._next_check:
            return None
        self._next_check = now + self.poll_seconds
        version = self.book.storage.version()
        if version is None or version == self.version:
            return None
        self.version = version  # a refused version is not read again on every poll
        try:
            in_force = self.book.current()
        except (TamperedRulesError, InvalidRuleError) as error:
            logger.error(
                "refused rule set version %d, keeping the rules in force: %s", version, error
            )
            return None
        logger.info("applying rule set version %d", in_force.rules.version)
        return in_force.rules
