"""The model registry, the same behaviour over both indexes: a JSON file and a real Redis.

Every test runs twice, once per index. A `Backend` opens fresh indexes over the same storage
(a restart, or another process) and edits stored records behind the registry's back.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import pickle
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from models.learners import OnlineLearner
from models.model_record import ModelRecord, NewModel, UnsignedRecord, sign_record
from models.snapshots import MAGIC, SnapshotError, dump_snapshot, load_snapshot, sign
from pipelines.lifecycle.registry import (
    ChampionRetireError,
    ModelRegistry,
    RetiredVersionError,
    TamperedArtefactError,
    UnknownVersionError,
    code_version,
)
from pipelines.lifecycle.registry_index import MAX_EVENTS, FileIndex, RedisIndex, RegistryIndex

KEY = b"registry test key"
PREFIX = "fs-test:"
WHEN = datetime(2025, 3, 1, 12, tzinfo=UTC)

RecordEdit = Callable[[dict[str, Any]], None]


@dataclass
class Backend:
    directory: Path
    open_index: Callable[..., RegistryIndex]
    """A new index over the same storage; keyword ``max_events``."""
    edit_record: Callable[[str, RecordEdit], None]
    """Change a stored record's JSON in place, as someone with access to the storage could."""

    def registry(self, *, max_events: int = MAX_EVENTS) -> ModelRegistry:
        return ModelRegistry(
            self.directory, self.open_index(max_events=max_events), KEY, clock=lambda: WHEN
        )


def _file_backend(tmp_path: Path) -> Backend:
    path = tmp_path / "index" / "registry.json"

    def edit(version: str, change: RecordEdit) -> None:
        state = json.loads(path.read_text())
        change(state["records"][version])
        path.write_text(json.dumps(state))

    def open_index(max_events: int = MAX_EVENTS) -> RegistryIndex:
        return FileIndex(path, max_events=max_events)

    return Backend(tmp_path / "models", open_index, edit)


@pytest.fixture(params=["file", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "file":
        yield _file_backend(tmp_path)
        return
    url: str = request.getfixturevalue("redis_url")
    clients: list[redis.Redis] = []

    def open_index(max_events: int = MAX_EVENTS) -> RegistryIndex:
        clients.append(redis.Redis.from_url(url))  # one client per index, as per process
        return RedisIndex(clients[-1], PREFIX, max_events=max_events)

    def edit(version: str, change: RecordEdit) -> None:
        with redis.Redis.from_url(url) as client:
            stored = json.loads(client.hget(f"{PREFIX}registry:records", version))
            change(stored)
            client.hset(f"{PREFIX}registry:records", version, json.dumps(stored))

    yield Backend(tmp_path / "models", open_index, edit)
    for client in clients:
        client.close()


@pytest.fixture
def registry(backend: Backend) -> ModelRegistry:
    return backend.registry()


def snapshot(labels: int = 2) -> bytes:
    learner = OnlineLearner("logistic")
    for index in range(labels):
        learner.learn({"amount": 10.0 * index}, is_fraud=index % 2 == 1)
    return dump_snapshot(learner, KEY)


def new_model(**changes: Any) -> NewModel:
    fields: dict[str, Any] = {
        "kind": "online",
        "learner": "logistic",
        "params": {"learning_rate": 0.01, "l2": 0.0, "positive_weight": 1.0},
        "feature_schema": "features-v3",
        "parent": "m000007",
        "labels_learned": 2,
        "frauds_learned": 1,
        "stream_position": {"labels-0": 41, "labels-1": 17},
        "data_window": (WHEN - timedelta(days=3), WHEN),
        "code_version": "0.1.0+gabc1234",
        "seed": 3,
        "metrics": {"average_precision": 0.42},
        "reason": "periodic",
    }
    return NewModel(**{**fields, **changes})


# Pickles that announce being unpickled: proof that refused bytes were never loaded.
DETONATIONS: list[str] = []


def _detonate() -> None:
    DETONATIONS.append("unpickled")


class Bomb:
    def __reduce__(self) -> tuple[Callable[[], None], tuple[()]]:
        return _detonate, ()


@pytest.fixture(autouse=True)
def _no_detonations() -> Iterator[None]:
    DETONATIONS.clear()
    yield
    assert DETONATIONS == [], "refused bytes were unpickled"


# Registering and reading


def test_a_registered_model_comes_back_with_all_its_provenance(backend: Backend) -> None:
    registry = backend.registry()
    blob = snapshot()
    record = registry.register(blob, new_model())

    assert record.version == "m000001"
    assert record.created_at == WHEN
    assert record.sha256 == hashlib.sha256(blob).hexdigest()
    assert record.model_dump(include=set(NewModel.model_fields)) == new_model().model_dump()
    assert registry.record("m000001") == record
    assert registry.records() == [record]
    assert registry.artefact("m000001") == blob
    assert load_snapshot(registry.artefact("m000001"), KEY).labels_learned == 2
    assert (backend.directory / "m000001.model").read_bytes() == blob
    # A restart (a new registry over the same directory and index storage) sees it all.
    assert backend.registry().record("m000001") == record


def test_versions_increase_and_list_newest_first(registry: ModelRegistry) -> None:
    versions = [registry.register(snapshot(n), new_model(reason=f"r{n}")).version for n in (1, 2)]
    versions.append(registry.register(snapshot(3), new_model(kind="batch")).version)
    assert versions == ["m000001", "m000002", "m000003"]
    assert [record.version for record in registry.records()] == versions[::-1]


def test_concurrent_registrations_get_unique_versions(backend: Backend) -> None:
    # Two registries with their own index (two processes: separate flocks, or two Redis
    # clients), each shared by several threads.
    registries = [backend.registry(), backend.registry()]
    threads, per_thread = 6, 8
    versions: list[str] = []
    lock = threading.Lock()

    def work(index: int) -> None:
        for _ in range(per_thread):
            record = registries[index % 2].register(f"model {index}".encode(), new_model())
            with lock:
                versions.append(record.version)

    workers = [threading.Thread(target=work, args=(index,)) for index in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    expected = {f"m{number:06d}" for number in range(1, threads * per_thread + 1)}
    assert sorted(versions) == sorted(expected)
    fresh = backend.registry()
    assert {record.version for record in fresh.records()} == expected
    for version in expected:
        fresh.artefact(version)


# Refusals


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _plant_a_bomb(path: Path) -> None:
    path.write_bytes(pickle.dumps(Bomb()))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-1])


def _delete(path: Path) -> None:
    path.unlink()


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (_flip_a_byte, "sha256 does not match"),
        (_plant_a_bomb, "sha256 does not match"),
        (_truncate, "sha256 does not match"),
        (_delete, "artefact file is missing"),
    ],
)
def test_a_tampered_artefact_is_refused_unread(
    registry: ModelRegistry, backend: Backend, tamper: Callable[[Path], None], message: str
) -> None:
    registry.register(snapshot(), new_model())
    path = backend.directory / "m000001.model"
    tamper(path)

    with pytest.raises(TamperedArtefactError, match=message):
        registry.artefact("m000001")
    with pytest.raises(TamperedArtefactError):
        registry.set_champion("m000001", detail="should not happen")
    assert registry.champion() is None
    assert registry.events()[0]["event"] == "refused"
    assert registry.events()[0]["version"] == "m000001"
    if path.exists():  # and whoever reads the file directly is refused by the snapshot's check
        with pytest.raises(SnapshotError):
            load_snapshot(path.read_bytes(), KEY)


def test_a_foreign_snapshot_is_served_as_registered_but_never_loaded(
    registry: ModelRegistry,
) -> None:
    # The registry vouches that the bytes are those registered; the snapshot's own signature
    # vouches that this deployment made them. Bytes signed with another key fail the second.
    payload = pickle.dumps(Bomb())
    foreign = MAGIC + sign(payload, b"another deployment's key") + payload
    registry.register(foreign, new_model())

    assert registry.artefact("m000001") == foreign
    with pytest.raises(SnapshotError, match="does not verify"):
        load_snapshot(registry.artefact("m000001"), KEY)


def test_an_edited_record_is_refused(registry: ModelRegistry, backend: Backend) -> None:
    registry.register(snapshot(), new_model())
    kept = registry.register(snapshot(), new_model())

    def flatter(stored: dict[str, Any]) -> None:
        stored["labels_learned"] = 1_000_000

    backend.edit_record("m000001", flatter)
    for read in (registry.record, registry.artefact):
        with pytest.raises(TamperedArtefactError, match="altered or signed with another key"):
            read("m000001")
    with pytest.raises(TamperedArtefactError):
        registry.set_champion("m000001", detail="flattering metadata")
    assert registry.records() == [kept]  # the listing shows only what verifies
    assert registry.events()[0]["event"] == "refused"


def test_a_record_signed_with_another_key_is_refused(
    registry: ModelRegistry, backend: Backend
) -> None:
    genuine = registry.register(snapshot(), new_model())
    unsigned = UnsignedRecord(**genuine.model_dump(exclude={"signature"}))
    foreign = sign_record(unsigned, b"another deployment's key")

    def replace(stored: dict[str, Any]) -> None:
        stored["signature"] = foreign.signature

    backend.edit_record("m000001", replace)
    with pytest.raises(TamperedArtefactError, match="signed with another key"):
        registry.record("m000001")


def test_a_genuine_record_copied_under_another_version_is_refused(
    registry: ModelRegistry, backend: Backend
) -> None:
    first = registry.register(snapshot(1), new_model())
    registry.register(snapshot(2), new_model())
    shutil.copyfile(backend.directory / "m000001.model", backend.directory / "m000002.model")

    def swap(stored: dict[str, Any]) -> None:
        stored.clear()
        stored.update(json.loads(first.model_dump_json()))

    backend.edit_record("m000002", swap)
    with pytest.raises(TamperedArtefactError, match="holds the record of m000001"):
        registry.artefact("m000002")


@pytest.mark.parametrize("version", ["m000042", "latest", "../../etc/passwd", ""])
def test_an_unknown_version_is_a_key_error_naming_it(registry: ModelRegistry, version: str) -> None:
    registry.register(snapshot(), new_model())
    calls: list[Callable[[], object]] = [
        lambda: registry.record(version),
        lambda: registry.artefact(version),
        lambda: registry.set_champion(version, detail=""),
        lambda: registry.retire(version, detail=""),
    ]
    for call in calls:
        with pytest.raises(UnknownVersionError) as caught:
            call()
        assert isinstance(caught.value, KeyError)
        assert str(caught.value) == f"no model version {version!r}"


# Champion, challengers, events


def test_the_champion_is_promoted_rolled_back_and_never_retired(registry: ModelRegistry) -> None:
    for labels in (1, 2, 3):
        registry.register(snapshot(labels), new_model())
    assert registry.champion() is None

    registry.set_champion("m000001", detail="first model")
    registry.set_champion("m000003", detail="beats m000001 on the hold-out")
    assert registry.champion() == "m000003"
    with pytest.raises(ChampionRetireError, match="promote another version"):
        registry.retire("m000003", detail="mistake")
    assert registry.champion() == "m000003"

    registry.retire("m000002", detail="lost to the champion")
    assert [record.version for record in registry.records()] == ["m000003", "m000001"]
    everything = registry.records(include_retired=True)
    assert [record.version for record in everything] == ["m000003", "m000002", "m000001"]
    assert registry.record("m000002").version == "m000002"
    assert load_snapshot(registry.artefact("m000002"), KEY).labels_learned == 2
    with pytest.raises(RetiredVersionError):
        registry.set_champion("m000002", detail="retired")

    registry.set_champion("m000001", detail="rollback")
    assert registry.champion() == "m000001"
    events = [(event["event"], event["version"], event["detail"]) for event in registry.events()]
    assert events == [
        ("promoted", "m000001", "rollback"),
        ("refused", "m000002", "promotion of a retired version: retired"),
        ("retired", "m000002", "lost to the champion"),
        ("refused", "m000003", "retiring the champion: mistake"),
        ("promoted", "m000003", "beats m000001 on the hold-out"),
        ("promoted", "m000001", "first model"),
    ]
    assert registry.events()[0]["at"] == WHEN.isoformat()


def test_events_are_newest_first_and_bounded(backend: Backend) -> None:
    registry = backend.registry(max_events=3)
    for number in range(5):
        registry.log_event("note", f"m{number:06d}", f"event {number}")
    assert [event["detail"] for event in registry.events()] == ["event 4", "event 3", "event 2"]
    assert [event["detail"] for event in registry.events(limit=2)] == ["event 4", "event 3"]


def test_a_restart_finds_champion_retired_versions_and_events(backend: Backend) -> None:
    registry = backend.registry()
    for labels in (1, 2):
        registry.register(snapshot(labels), new_model())
    registry.set_champion("m000002", detail="better")
    registry.retire("m000001", detail="worse")

    again = backend.registry()
    assert again.champion() == "m000002"
    assert [record.version for record in again.records()] == ["m000002"]
    assert [event["event"] for event in again.events()] == ["retired", "promoted"]
    assert again.register(snapshot(3), new_model()).version == "m000003"


def test_prune_keeps_the_newest_and_the_champion(registry: ModelRegistry, backend: Backend) -> None:
    for labels in range(1, 6):
        registry.register(snapshot(labels), new_model())
    registry.set_champion("m000001", detail="still the best")
    registry.retire("m000005", detail="worse")

    assert registry.prune(keep=2) == ["m000003", "m000002"]
    remaining = registry.records(include_retired=True)
    assert [record.version for record in remaining] == ["m000005", "m000004", "m000001"]
    assert sorted(path.name for path in backend.directory.iterdir()) == [
        "m000001.model",
        "m000004.model",
        "m000005.model",
    ]
    with pytest.raises(UnknownVersionError):
        registry.artefact("m000002")
    assert registry.events()[0]["event"] == "pruned"

    assert registry.prune(keep=0) == ["m000005", "m000004"]
    assert [record.version for record in registry.records()] == ["m000001"]
    assert registry.artefact("m000001")
    with pytest.raises(ValueError, match="zero or more"):
        registry.prune(keep=-1)


# Code version


def test_code_version_names_the_package_and_the_commit() -> None:
    version = importlib.metadata.version("fraudstream")
    assert code_version().startswith(version)
    checkout = Path(__file__).resolve().parents[3]
    if shutil.which("git") and (checkout / ".git").exists():
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=checkout,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert code_version() == f"{version}+g{commit}"


def test_code_version_without_git_is_the_package_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_git(*_args: object, **_kwargs: object) -> None:
        raise FileNotFoundError("git")

    monkeypatch.setattr(subprocess, "run", no_git)
    code_version.cache_clear()
    try:
        assert code_version() == importlib.metadata.version("fraudstream")
    finally:
        code_version.cache_clear()


def test_records_are_signed_model_records(registry: ModelRegistry) -> None:
    record = registry.register(b"any bytes at all", new_model(metrics={}))
    assert isinstance(record, ModelRecord)
    assert registry.artefact(record.version) == b"any bytes at all"
