"""The serving models' lifecycle: snapshots, promotion and rollback, challengers, audit.

A learning model changes with every label, so what is kept are snapshots: the champion is
registered (a signed artefact with its provenance) every N labels or T seconds and on demand,
and becomes the registry's champion pointer; from then on its scores name that version plus
the labels learned since (``m000012+37``). In embedded mode the rest of what serving needs
(windows, pending vectors, cooldowns, challengers, quality windows) is written beside it,
signed too, with the offline store's position of the last label it reflects, so a restart
resumes where the last snapshot stood and then learns the labels acknowledged since
(``pipelines.lifecycle.label_replay``). The saved state is written before the champion pointer
moves, and it names the version it goes with: at a restart that pair is what serves, so a crash
between the two writes loses nothing.

The periodic and on-demand snapshots do not hold the event loop: the champion's artefact
(learner-sized) is dumped on the loop, and a forked child, the operating system's copy-on-write
image of the process at that same instant, serialises, signs and writes the state while the
parent goes on serving (``pipelines.lifecycle.forked_write``); the registry's writes and the
renaming of the state into place are made on a thread.

Promotion swaps the champion between two requests, on the event loop: no request sees half a
swap, and each score names the version that produced it. Promoting an older version is the
rollback; its artefact is verified before a byte is unpickled, and a model built for another
feature schema is refused.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Protocol

from models.batch_model import BatchLearner
from models.blend import Blend, blend_name
from models.blended_learner import serve_blended
from models.detector import CHAMPION, DetectorState, FraudDetector
from models.features import FeatureVector
from models.learners import OnlineLearner
from models.model_record import ModelRecord, NewModel
from models.quality import QualityFigures
from models.scored import Scored
from models.snapshots import SnapshotError, dump_signed, dump_snapshot, load_signed, load_snapshot
from pipelines.durable_files import sync_directory, write_atomically
from pipelines.lifecycle.forked_write import (
    ForkedWriteError,
    ForkedWriter,
    remove_stale,
)
from pipelines.lifecycle.label_replay import LabelJournal, learn_since
from pipelines.lifecycle.registry import (
    ModelRegistry,
    RegistryError,
    TamperedArtefactError,
    code_version,
)

logger = logging.getLogger(__name__)


class SchemaMismatchError(ValueError):
    """A model built for other features than the ones this service computes."""


class NotAChallengerError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class LifecyclePolicy:
    snapshot_every_labels: int = 10_000
    snapshot_every_seconds: float = 600.0
    keep_versions: int = 100
    """Registered versions kept (the champion always is); older ones are pruned."""
    auto_promote: bool = False
    promote_margin: float = 0.02
    """How much higher a challenger's rolling AP must be than the champion's."""
    promote_min_labels: int = 1_000
    """Matured labels both windows must hold before the comparison counts."""


class AuditEntry(NamedTuple):
    """What a transaction got: the version, the score, and the features it was scored from."""

    scored: Scored
    features: FeatureVector
    shadow: dict[str, float]
    verdict: bool | None


class ModelLifecycle:
    """Snapshots, promotes and retires the detector's models through the registry."""

    remote = False

    def __init__(
        self,
        detector: FraudDetector,
        registry: ModelRegistry,
        key: bytes,
        *,
        state_path: Path | None = None,
        policy: LifecyclePolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        labels: LabelJournal | None = None,
    ) -> None:
        self.detector = detector
        self.registry = registry
        self.policy = policy or LifecyclePolicy()
        self._key = key
        self._state_path = state_path
        self._clock = clock
        self._labels = labels
        """Where learned labels are journalled (the offline store): what a restart learns again."""
        self._labels_at_snapshot = detector.learner.labels_learned
        self._watermark_at_snapshot = detector.watermark
        self._snapshot_at = clock()
        self._generation = 0
        """Counts snapshots: a background one superseded while it wrote is not put in place."""
        self._writing = False
        self._in_place = True
        """Whether the last snapshot taken is the one in place (its state written, pointed at)."""
        self.relearned = 0
        """Labels learned again at start-up, acknowledged after the saved state was taken."""

    # --- start-up ------------------------------------------------------------------------

    def resume(self) -> bool:
        """Serve the saved state and its champion (else the registry's champion), then learn
        the labels acknowledged after it.

        Returns whether there was a champion to resume; without one the current models are
        registered as the first version.
        """
        saved = self._saved_state()
        champion = self.registry.champion()
        if saved is not None and saved.champion_version != champion:
            if self._servable(saved.champion_version):
                # A snapshot cut short between its state and the champion pointer.
                logger.warning(
                    "the saved state went with %s, the champion pointer names %s: serving %s",
                    saved.champion_version,
                    champion,
                    saved.champion_version,
                )
                champion = saved.champion_version
            else:
                logger.warning(
                    "the saved state went with %s, which cannot be served: starting afresh",
                    saved.champion_version,
                )
                saved = None
        if champion is None:
            self.snapshot("start")
            return False
        learner = self.load(champion)
        self.detector.replace_learner(learner, new_lineage=True)
        if saved is not None:
            self.detector.restore_state(saved)
            position = saved.labels_position
        else:
            position = self.registry.record(champion).stream_position.get("labels_position")
        if self.registry.champion() != champion:
            self.registry.set_champion(champion, detail="resumed with its saved state")
        self._mark_snapshot()
        logger.info("resumed the champion", extra={"model_version": champion})
        self._learn_acknowledged(position)
        return True

    def _saved_state(self) -> DetectorState | None:
        path = self._state_path
        if path is None:
            return None
        remove_stale(path)
        if not path.exists():
            return None
        try:
            return load_signed(path.read_bytes(), self._key, DetectorState)
        except SnapshotError as error:
            logger.error("refused the saved state %s: %s", path, error)
            return None

    def _servable(self, version: str) -> bool:
        try:
            self.registry.artefact(version)
        except RegistryError:
            return False
        # `records` leaves retired versions out, and a retired version cannot be champion.
        return any(record.version == version for record in self.registry.records())

    def _learn_acknowledged(self, position: int | None) -> None:
        """Learn the labels acknowledged after ``position``, then snapshot so that the next
        restart starts after them (``None``: a state from before positions were kept)."""
        if self._labels is None or position is None:
            return
        outcome = learn_since(self.detector, self._labels, position)
        self.relearned = outcome.learned
        if outcome.learned:
            logger.warning(
                "learned again %d labels acknowledged after the last snapshot", outcome.learned
            )
            self.snapshot("recovery")

    # --- snapshots -----------------------------------------------------------------------

    def due(self) -> bool:
        learned = self.detector.learner.labels_learned - self._labels_at_snapshot
        elapsed = self._clock() - self._snapshot_at
        return learned >= self.policy.snapshot_every_labels or (
            learned > 0 and elapsed >= self.policy.snapshot_every_seconds
        )

    @property
    def changed(self) -> bool:
        """Whether anything was learned or scored since the last snapshot."""
        detector = self.detector
        return (
            detector.learner.labels_learned != self._labels_at_snapshot
            or detector.watermark != self._watermark_at_snapshot
        )

    def tick(self) -> None:
        """Called every second or so: a periodic snapshot when due, then the promotion policy."""
        if self.due():
            self.snapshot("periodic")
        if self.policy.auto_promote:
            self.promote_if_better()

    async def tick_in_background(self) -> None:
        """`tick`, the periodic snapshot's state written without holding the event loop."""
        if self.due() and not self._writing:
            await self.snapshot_in_background("periodic")
        if self.policy.auto_promote:
            self.promote_if_better()

    def stop(self) -> None:
        """The final snapshot of a clean stop, when anything changed since the last one in
        place (a background one cut short by the stop is not)."""
        if self.changed or not self._in_place:
            self.snapshot("stop")

    def snapshot(self, reason: str) -> ModelRecord:
        """Register the champion (and, embedded, save the rest); it becomes the champion pointer.

        Written in full before it returns: the start-up, stop and on-demand snapshots.
        """
        record = self._register_champion(reason)
        if self._state_path is not None:
            write_atomically(self._state_path, dump_signed(self._state(record), self._key))
        self._point_at(record, reason)
        self._in_place = True
        return record

    async def snapshot_in_background(self, reason: str) -> ModelRecord | None:
        """`snapshot` without holding the event loop: what it reflects is taken on the loop in
        one step (the champion's artefact, learner-sized, and a forked child holding the rest
        of the state), then the registry's writes and the state's are made meanwhile.

        Returns the record once it is the champion; ``None`` when a snapshot taken meanwhile
        superseded it (it stays registered, not served) or its state could not be written.
        """
        path = self._state_path
        if path is None:
            return self.snapshot(reason)
        detector = self.detector
        learner = detector.learner
        learned = learner.labels_learned
        artefact = dump_snapshot(learner, self._key)
        model = self._describe(learner, reason, CHAMPION)
        # The version is not known yet: the child is told it once the registry has given it.
        state = detector.export_state("")
        state.labels_position = model.stream_position.get("labels_position")
        try:
            writer = ForkedWriter(path, state, self._key, _name_champion)
        except OSError as error:  # no process to spare (memory, process limits): inline
            logger.warning("could not fork the snapshot writer (%s): writing inline", error)
            return self.snapshot(reason)
        self._generation += 1
        generation = self._generation
        self._in_place = False
        self._mark_snapshot()
        self._writing = True
        try:
            try:
                record = await asyncio.to_thread(self.registry.register, artefact, model)
            except BaseException:
                await writer.abandon()
                raise
            if detector.learner is learner:
                # Named by the version of what was dumped, whatever it learned since.
                learner.lineage, learner.lineage_labels = record.version, learned
                detector.replace_learner(learner)
            written = await writer.write(record.version)
        except ForkedWriteError as error:
            logger.error("the %s snapshot's state was not written: %s", reason, error)
            return None
        finally:
            self._writing = False
        if generation != self._generation:
            written.unlink(missing_ok=True)
            return None
        await asyncio.to_thread(self._put_in_place, written, record, reason)
        if generation == self._generation:
            self._in_place = True
        return record

    async def snapshot_on_demand(self, reason: str) -> ModelRecord:
        """A snapshot asked for on the event loop: the state written by a forked child while
        the loop serves; in full, here, only when another snapshot superseded that one or it
        failed."""
        written = await self.snapshot_in_background(reason)
        return written or self.snapshot(reason)

    def _put_in_place(self, written: Path, record: ModelRecord, reason: str) -> None:
        assert self._state_path is not None
        os.replace(written, self._state_path)
        sync_directory(self._state_path.parent)
        self._point_at(record, reason)

    def _register_champion(self, reason: str) -> ModelRecord:
        detector = self.detector
        learner = detector.learner
        record = self.registry.register(
            dump_snapshot(learner, self._key), self._describe(learner, reason, CHAMPION)
        )
        learner.rebase(record.version)
        detector.replace_learner(learner)
        self._generation += 1
        self._in_place = False
        self._mark_snapshot()
        return record

    def _state(self, record: ModelRecord) -> DetectorState:
        saved = self.detector.export_state(record.version)
        saved.labels_position = record.stream_position.get("labels_position")
        return saved

    def _point_at(self, record: ModelRecord, reason: str) -> None:
        self.registry.set_champion(record.version, detail=reason)
        pruned = self.registry.prune(self.policy.keep_versions)
        if pruned:
            logger.info("pruned %d old model versions", len(pruned))
        logger.info("model snapshot (%s)", reason, extra={"model_version": record.version})

    def _mark_snapshot(self) -> None:
        self._labels_at_snapshot = self.detector.learner.labels_learned
        self._watermark_at_snapshot = self.detector.watermark
        self._snapshot_at = self._clock()

    def _save_state(self, champion_version: str) -> None:
        if self._state_path is not None:
            saved = self.detector.export_state(champion_version)
            if self._labels is not None:
                saved.labels_position = self._labels.position
            write_atomically(self._state_path, dump_signed(saved, self._key))
            self._generation += 1

    def _describe(self, learner: OnlineLearner, reason: str, slot: str) -> NewModel:
        lineage = learner.lineage
        figures = self.detector.quality[slot].figures(self.detector.alerting.threshold)
        return NewModel(
            kind="online",
            learner=learner.name,
            params=dict(learner.params),
            feature_schema=self.detector.features.schema_version,
            parent=lineage if lineage.startswith("m") and lineage[1:].isdigit() else None,
            labels_learned=learner.labels_learned,
            frauds_learned=learner.frauds_learned,
            stream_position=self._stream_position(learner),
            code_version=code_version(),
            seed=learner.seed,
            metrics=figures.as_dict(),
            reason=reason,
        )

    def _stream_position(self, learner: OnlineLearner) -> dict[str, int]:
        position = {"labels_learned": learner.labels_learned}
        if self._labels is not None:
            # Every label learned so far is in the journal: the buffer is flushed before a
            # label is answered, and nothing awaits between learning and flushing.
            position["labels_position"] = self._labels.position
        return position

    # --- promotion, challengers ----------------------------------------------------------

    def load(self, version: str) -> OnlineLearner:
        """The learner of ``version``: artefact and record verified before unpickling."""
        record = self.registry.record(version)
        schema = self.detector.features.schema_version
        if record.feature_schema != schema:
            raise SchemaMismatchError(
                f"{version} was built for features {record.feature_schema}; "
                f"this service computes {schema}"
            )
        try:
            learner = load_snapshot(self.registry.artefact(version), self._key)
        except SnapshotError as error:
            logger.error("refused to load %s: %s", version, error)
            self.registry.log_event("refused", version, str(error))
            raise TamperedArtefactError(f"{version}: {error}") from None
        learner.rebase(version)
        return learner

    def promote(self, version: str, *, detail: str = "on demand") -> str:
        """Serve ``version``; returns the version the champion's scores now name.

        A live challenger takes over with all it learned in shadow, registered at once as a
        new version; any other registered version is loaded as it was registered: a rollback.
        """
        detector = self.detector
        if version in detector.challengers:
            detector.promote(version)
            self.registry.log_event("promoted", version, detail)
            self.snapshot(f"promotion of {version}")
        else:
            detector.replace_learner(self.load(version), new_lineage=True)
            # The state first: a restart serves the version its saved state names.
            self._save_state(version)
            self.registry.set_champion(version, detail=detail)
            self._mark_snapshot()
            self._in_place = True
        logger.warning(
            "promoted %s to champion (%s)", version, detail, extra={"model_version": version}
        )
        return detector.model_version

    def add_challenger(self, learner: OnlineLearner, *, reason: str = "challenger") -> str:
        """Register ``learner`` and shadow it under its version from the next transaction on."""
        return self.adopt_challenger(learner, self._describe_new(learner, reason))

    def adopt_challenger(self, learner: OnlineLearner, model: NewModel) -> str:
        """Register ``learner`` as ``model`` describes it (a fresh one, a batch model, a warm
        restart) and shadow it as a challenger; returns its version."""
        record = self.registry.register(dump_snapshot(learner, self._key), model)
        learner.rebase(record.version)
        self.detector.add_challenger(record.version, learner)
        return record.version

    def adopt_trained(
        self, learner: OnlineLearner, model: NewModel, *, promote: bool, detail: str
    ) -> str:
        """Register a model trained elsewhere (the batch retrain) and serve it: as champion when
        ``promote``, the displaced champion registered and kept shadowing when it learns
        online; otherwise as a shadow challenger. Returns its version."""
        if not promote:
            return self.adopt_challenger(learner, model)
        record = self.registry.register(dump_snapshot(learner, self._key), model)
        learner.rebase(record.version)
        detector = self.detector
        displaced = detector.learner
        if not isinstance(displaced, BatchLearner):
            # Registered first, so that it can be promoted back; it keeps learning in shadow.
            self.snapshot(f"displaced by {record.version}")
            detector.add_challenger(displaced.lineage, displaced)
        # Loaded back from the registry, verified, as a rollback would be.
        self.promote(record.version, detail=detail)
        return record.version

    def adopt_blended(
        self, batch: BatchLearner, model: NewModel, *, holdout_choice: Blend, second: int
    ) -> str:
        """Register a retrain's batch model and serve it blended with the online champion
        (`models.blended_learner`); returns the batch model's version.

        An online champion becomes the blend's online part; a blend keeps its online part and
        its window of recent labels and takes ``batch`` as its new batch part. Either way the
        blend is registered as a new version, which is what serves and what a restart resumes.
        ``holdout_choice`` is the blend the retrain's hold-out chose: served until the recent
        labels hold enough frauds to choose. A batch champion (promoted by hand) has no online
        part to blend: ``batch`` then only shadows it as a challenger.
        """
        detector = self.detector
        champion = detector.learner
        if isinstance(champion, BatchLearner):
            return self.adopt_challenger(batch, model)
        record = self.registry.register(dump_snapshot(batch, self._key), model)
        batch.rebase(record.version)
        serve_blended(detector, batch, holdout_choice, second)
        self.registry.log_event(
            "blended", record.version, f"served blended, {blend_name(holdout_choice)} on hold-out"
        )
        self.snapshot(f"blended with {record.version}")
        return record.version

    def _describe_new(self, learner: OnlineLearner, reason: str) -> NewModel:
        return NewModel(
            kind="online",
            learner=learner.name,
            params=dict(learner.params),
            feature_schema=self.detector.features.schema_version,
            labels_learned=learner.labels_learned,
            frauds_learned=learner.frauds_learned,
            code_version=code_version(),
            seed=learner.seed,
            reason=reason,
        )

    def retire(self, version: str, *, detail: str = "on demand") -> None:
        """Stop shadowing challenger ``version`` and retire it in the registry (never the
        champion: the registry refuses)."""
        self.registry.retire(version, detail=detail)
        if version in self.detector.challengers:
            self.detector.retire_challenger(version)

    def promote_if_better(self) -> str | None:
        """The promotion policy: the best challenger whose rolling AP beats the champion's by
        the margin, both on enough matured labels, is promoted; the change is logged."""
        policy = self.policy
        detector = self.detector
        threshold = detector.alerting.threshold
        champion = detector.quality[CHAMPION].figures(threshold)
        if champion.matured < policy.promote_min_labels:
            return None
        best: tuple[float, str, QualityFigures] | None = None
        for name in detector.challengers:
            figures = detector.quality[name].figures(threshold)
            if figures.matured < policy.promote_min_labels:
                continue
            gain = figures.average_precision - champion.average_precision
            if gain >= policy.promote_margin and (best is None or gain > best[0]):
                best = (gain, name, figures)
        if best is None:
            return None
        gain, name, figures = best
        detail = (
            f"auto-promoted: rolling AP {figures.average_precision:.4f} against the champion's "
            f"{champion.average_precision:.4f} over {figures.matured} matured labels "
            f"(margin {policy.promote_margin})"
        )
        self.promote(name, detail=detail)
        self.registry.log_event("auto-promoted", name, detail)
        return name

    # --- audit ---------------------------------------------------------------------------

    def audit(self, transaction_id: str) -> AuditEntry | None:
        return audit_entry(self.detector, transaction_id)

    def import_artefact(self, artefact: bytes, declared_schema: str) -> ModelRecord:
        schema = self.detector.features.schema_version
        return import_artefact(self.registry, self._key, schema, artefact, declared_schema)


def import_artefact(
    registry: ModelRegistry, key: bytes, schema: str, artefact: bytes, declared_schema: str
) -> ModelRecord:
    """Register an artefact brought from elsewhere (another deployment, a backup): its HMAC must
    verify under this deployment's key before a byte is unpickled, and it must have been built
    for the features computed here."""
    if declared_schema != schema:
        raise SchemaMismatchError(
            f"the artefact was built for features {declared_schema}; this service computes {schema}"
        )
    try:
        learner = load_snapshot(artefact, key)
    except SnapshotError as error:
        logger.error("refused an uploaded artefact: %s", error)
        registry.log_event("refused", "upload", str(error))
        raise TamperedArtefactError(f"uploaded artefact: {error}") from None
    return registry.register(
        artefact,
        NewModel(
            kind="batch" if isinstance(learner, BatchLearner) else "online",
            learner=learner.name,
            params=dict(learner.params),
            feature_schema=schema,
            labels_learned=learner.labels_learned,
            frauds_learned=learner.frauds_learned,
            code_version=code_version(),
            seed=learner.seed,
            reason="upload",
        ),
    )


def _name_champion(state: DetectorState, version: str) -> None:
    state.champion_version = version


def audit_entry(detector: FraudDetector, transaction_id: str) -> AuditEntry | None:
    """The version, score and feature vector a transaction got, while its vector is kept."""
    entry = detector.pending.get(transaction_id)
    if entry is None:
        return None
    features = dict(zip(detector.features.names, entry.values, strict=True))
    return AuditEntry(entry.scored, features, dict(entry.shadow), entry.verdict)


class Lifecycle(Protocol):
    """What the API asks of the models' lifecycle: `ModelLifecycle` in the process that owns
    the models, `pipelines.lifecycle.model_commands.RemoteLifecycle` in an API replica."""

    remote: bool
    """Changes go to another process and wait for it: call them off the event loop."""
    registry: ModelRegistry

    def snapshot(self, reason: str) -> ModelRecord: ...

    async def snapshot_on_demand(self, reason: str) -> ModelRecord:
        """`snapshot` for a caller on the event loop, which it does not hold meanwhile."""
        ...

    def promote(self, version: str, *, detail: str = ...) -> str: ...

    def retire(self, version: str, *, detail: str = ...) -> None: ...

    def add_challenger(self, learner: OnlineLearner, *, reason: str = ...) -> str: ...

    def audit(self, transaction_id: str) -> AuditEntry | None: ...

    def import_artefact(self, artefact: bytes, declared_schema: str) -> ModelRecord: ...
