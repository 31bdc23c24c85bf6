"""The model registry: versioned, signed artefacts with their provenance.

Artefacts are files in a directory (a local path or a mounted volume), ``<version>.model``,
each written whole or not at all. Their records, the champion pointer, the retired set and an
event log live in an index: a JSON file in embedded mode (`FileIndex`), Redis in distributed
mode (`RedisIndex`), both in `pipelines.lifecycle.registry_index`. One class, `ModelRegistry`, works
over either.

Nothing here unpickles. `ModelRegistry.artefact` hands bytes out only once the record's
signature and the artefact's sha256 both verify, so a swapped file or an edited record is
refused before anyone gets to load it (and `models.snapshots.load_snapshot` checks its own
signature again before unpickling).

Errors (all `RegistryError`)::

    RegistryError
    ├── UnknownVersionError (KeyError)      no such version: 404
    ├── TamperedArtefactError (ValueError)  record or artefact fails its checks, or is missing
    ├── ChampionRetireError (ValueError)    the champion cannot be retired
    └── RetiredVersionError (ValueError)    a retired version cannot become champion
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import importlib.metadata
import logging
import re
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

from pydantic import ValidationError

from models.model_record import (
    ModelRecord,
    NewModel,
    RecordSignatureError,
    UnsignedRecord,
    sign_record,
    verify_record,
)
from pipelines.durable_files import write_atomically
from pipelines.lifecycle.registry_index import Event, RegistryIndex

logger = logging.getLogger(__name__)

_VERSION = re.compile(r"m[0-9]{6,}")


class RegistryError(Exception):
    """Base of the registry's errors."""


class UnknownVersionError(RegistryError, KeyError):
    """No model of that version (never registered, pruned, or not a version at all)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class TamperedArtefactError(RegistryError, ValueError):
    """A record or artefact that fails its checks: refused, never unpickled."""


class ChampionRetireError(RegistryError, ValueError):
    """The champion is retired only after another version took its place."""


class RetiredVersionError(RegistryError, ValueError):
    """A retired version is kept for download, not for serving."""


@functools.cache
def code_version() -> str:
    """The installed package's version, plus ``+g<commit>`` when running from a git checkout."""
    try:
        version = importlib.metadata.version("fraudstream")
    except importlib.metadata.PackageNotFoundError:
        version = "0+unknown"
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):  # no git, or a hung one
        return version
    commit = done.stdout.strip()
    return f"{version}+g{commit}" if done.returncode == 0 and commit else version


def _number(version: str) -> int:
    return int(version[1:])


def utc_now() -> datetime:
    return datetime.now(UTC)


class ModelRegistry:
    """Registers, lists, serves, promotes, retires and prunes model versions.

    Parameters
    ----------
    directory
        Where artefacts live, ``<version>.model``; created if missing.
    index
        Where records and pointers live: `FileIndex` or `RedisIndex`.
    key
        The deployment's secret: signs records, and a record that does not verify under it
        is refused.
    clock
        The time stamped on records and events.
    """

    def __init__(
        self,
        directory: Path,
        index: RegistryIndex,
        key: bytes,
        *,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self._index = index
        self._key = key
        self._clock = clock

    def _path(self, version: str) -> Path:
        return self.directory / f"{version}.model"

    def register(self, artefact: bytes, model: NewModel) -> ModelRecord:
        """Number, sign and store a model; returns its record."""
        version = f"m{self._index.allocate():06d}"
        unsigned = UnsignedRecord(
            **{name: getattr(model, name) for name in NewModel.model_fields},
            version=version,
            created_at=self._clock(),
            sha256=hashlib.sha256(artefact).hexdigest(),
        )
        record = sign_record(unsigned, self._key)
        # The artefact first: a record in the index always has its file.
        write_atomically(self._path(version), artefact)
        self._index.put(version, record.model_dump_json())
        return record

    def records(self, *, include_retired: bool = False) -> list[ModelRecord]:
        """Every version, newest first; retired ones only when asked.

        A record that fails its checks is left out (and logged): the listing shows what can
        be trusted, and `record` names the fault.
        """
        hidden = set() if include_retired else self._index.retired()
        trusted = []
        for version, raw in self._index.all().items():
            if version in hidden:
                continue
            try:
                trusted.append(self._checked(version, raw))
            except TamperedArtefactError as error:
                logger.error("left out of the model list: %s", error)
        return sorted(trusted, key=lambda record: _number(record.version), reverse=True)

    def record(self, version: str) -> ModelRecord:
        """The record of ``version``, once its signature verifies."""
        raw = self._index.get(version) if _VERSION.fullmatch(version) else None
        if raw is None:
            raise UnknownVersionError(f"no model version {version!r}")
        try:
            return self._checked(version, raw)
        except TamperedArtefactError as error:
            self.log_event("refused", version, str(error))
            raise

    def _checked(self, version: str, raw: str) -> ModelRecord:
        try:
            record = ModelRecord.model_validate_json(raw)
            verify_record(record, self._key)
        except (ValidationError, RecordSignatureError):
            raise TamperedArtefactError(
                f"model {version}: its record was altered or signed with another key; refused"
            ) from None
        if record.version != version:  # a genuine record copied under another version
            raise TamperedArtefactError(
                f"model {version}: the index holds the record of {record.version}; refused"
            )
        return record

    def artefact(self, version: str) -> bytes:
        """The bytes of ``version``, once its record's signature and its sha256 both verify."""
        record = self.record(version)
        try:
            blob = self._path(version).read_bytes()
        except FileNotFoundError:
            self._refuse(version, f"model {version}: its artefact file is missing")
        if not hmac.compare_digest(hashlib.sha256(blob).hexdigest(), record.sha256):
            self._refuse(
                version,
                f"model {version}: the artefact's sha256 does not match its signed record "
                "(altered or replaced); refused unread",
            )
        return blob

    def _refuse(self, version: str, reason: str) -> NoReturn:
        self.log_event("refused", version, reason)
        raise TamperedArtefactError(reason)

    def champion(self) -> str | None:
        return self._index.champion()

    def set_champion(self, version: str, *, detail: str) -> None:
        """Serve ``version`` from now on; rollback is promoting an older version."""
        self.artefact(version)  # a champion must be loadable: check it before pointing at it
        outcome = self._index.promote(version)
        if outcome == "unknown":  # pruned since it was read
            raise UnknownVersionError(f"no model version {version!r}")
        if outcome == "retired":
            self.log_event("refused", version, f"promotion of a retired version: {detail}")
            raise RetiredVersionError(f"model {version} is retired and cannot become champion")
        self.log_event("promoted", version, detail)

    def retire(self, version: str, *, detail: str) -> None:
        """Hide a challenger from `records`; its artefact stays downloadable."""
        outcome = self._index.retire(version) if _VERSION.fullmatch(version) else "unknown"
        if outcome == "unknown":
            raise UnknownVersionError(f"no model version {version!r}")
        if outcome == "champion":
            self.log_event("refused", version, f"retiring the champion: {detail}")
            raise ChampionRetireError(
                f"model {version} is the champion: promote another version before retiring it"
            )
        self.log_event("retired", version, detail)

    def log_event(self, event: str, version: str, detail: str) -> None:
        at = self._clock().isoformat()
        self._index.append_event(Event(at=at, event=event, version=version, detail=detail))

    def events(self, limit: int = 100) -> list[Event]:
        """The newest ``limit`` events, newest first."""
        return self._index.events(limit)

    def prune(self, keep: int) -> list[str]:
        """Delete all but the newest ``keep`` versions (retired ones count) and the champion.

        A kept record may name a pruned version as its parent: provenance says where a model
        came from even after that ancestor is gone. Returns the versions deleted.
        """
        if keep < 0:
            raise ValueError("keep must be zero or more")
        versions = sorted(self._index.all(), key=_number, reverse=True)
        # Forget the records first: a version the index no longer names is never served.
        removed = self._index.remove(versions[keep:])
        for version in removed:
            self._path(version).unlink(missing_ok=True)
            self.log_event("pruned", version, f"beyond the newest {keep}")
        return removed
