"""No shared secret: `serve` makes its own key (0600) and keeps it across restarts; a short
key, an exposed key file, or a distributed role without a key refuses to start."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import NoReturn

import httpx
import pytest
from typer.testing import CliRunner, Result

from models.features import FeatureSet, FeatureSpec
from models.learners import OnlineLearner
from models.model_record import NewModel
from models.snapshots import dump_snapshot
from pipelines.bench.server_process import free_port, serve
from pipelines.lifecycle.registry import ModelRegistry
from pipelines.lifecycle.registry_index import FileIndex
from pipelines.signing_key import KEY_FILE
from service import cli
from tests.service.client import transaction

FRAUDSTREAM = str(Path(sys.executable).with_name("fraudstream"))
SHORT = "a-secret-of-31-bytes-only-here!"
_UNREACHABLE = {
    "FRAUDSTREAM_KAFKA_BOOTSTRAP": "127.0.0.1:1",
    "FRAUDSTREAM_REDIS_URL": "redis://127.0.0.1:1/0",
}


def _start(monkeypatch: pytest.MonkeyPatch, *arguments: str, data: Path, **settings: str) -> Result:
    """Run a role that should refuse to start, in this process: every refusal here comes before
    a server or a client starts, so a role that got past it fails the test instead of serving.
    `test_the_real_process_refuses_in_one_line_with_status_2` runs one as its own process."""
    for name in os.environ:
        if name.startswith("FRAUDSTREAM_"):
            monkeypatch.delenv(name)
    for name, value in {**_UNREACHABLE, "FRAUDSTREAM_DATA_DIR": str(data), **settings}.items():
        monkeypatch.setenv(name, value)
    for started in ("_run_http", "run_worker", "run_learner"):
        monkeypatch.setattr(cli, started, _started_anyway)
    return CliRunner().invoke(cli.app, list(arguments))


def _started_anyway(*_: object) -> NoReturn:
    raise AssertionError("the role got past its refusal and started")


def _said(result: Result | subprocess.CompletedProcess[str]) -> str:
    """The error as one line (the console wraps it to the terminal's width)."""
    return " ".join(result.stderr.split())


def test_serve_makes_a_private_key_on_first_start_and_keeps_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    settings = {"FRAUDSTREAM_DATA_DIR": str(data)}
    with serve(settings=settings) as server, httpx.Client(base_url=server.url) as client:
        key = (data / KEY_FILE).read_bytes()
        assert stat.S_IMODE((data / KEY_FILE).stat().st_mode) == 0o600
        assert len(key.strip()) >= 32
        client.post("/v1/score/batch", json=[transaction(i) for i in range(10)])
        snapshot = client.post("/v1/models/snapshots").json()["version"]
    with serve(settings=settings) as server, httpx.Client(base_url=server.url) as client:
        assert (data / KEY_FILE).read_bytes() == key
        # Signed with the kept key, the registered models still verify and load.
        assert client.get("/v1/models").json()["champion_version"] == snapshot
        assert client.post(f"/v1/models/{snapshot}/promote").status_code == 200


def test_the_real_process_refuses_in_one_line_with_status_2(tmp_path: Path) -> None:
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith("FRAUDSTREAM_")
    }
    environment |= {
        **_UNREACHABLE,
        "FRAUDSTREAM_DATA_DIR": str(tmp_path),
        "FRAUDSTREAM_SECRET_KEY": SHORT,
    }
    result = subprocess.run(
        [FRAUDSTREAM, "serve", "--port", str(free_port())],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "FRAUDSTREAM_SECRET_KEY is shorter than 32 bytes" in _said(result)
    assert "Traceback" not in result.stderr
    assert SHORT not in result.stdout + result.stderr  # a secret is never echoed
    assert not (tmp_path / KEY_FILE).exists()


@pytest.mark.parametrize("role", ["serve", "worker"])
def test_a_key_under_32_bytes_refuses_to_start(
    tmp_path: Path, role: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    arguments = [role, "--port", str(free_port())] if role in {"serve", "api"} else [role]
    result = _start(monkeypatch, *arguments, data=tmp_path, FRAUDSTREAM_SECRET_KEY=SHORT)
    assert result.exit_code == 2, result.output
    assert "FRAUDSTREAM_SECRET_KEY is shorter than 32 bytes" in _said(result)
    assert SHORT not in result.output  # a secret is never echoed
    assert not (tmp_path / KEY_FILE).exists()


@pytest.mark.parametrize("role", ["api", "worker", "learner"])
def test_a_distributed_role_without_a_key_refuses_to_start(
    tmp_path: Path, role: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    arguments = [role, "--port", str(free_port())] if role == "api" else [role]
    result = _start(monkeypatch, *arguments, data=tmp_path)
    assert result.exit_code == 2, result.output
    assert "needs the deployment's secret: set FRAUDSTREAM_SECRET_KEY" in _said(result)
    assert not (tmp_path / KEY_FILE).exists()  # never a key of its own


@pytest.mark.parametrize("exposure", ["group-readable", "symbolic link"])
def test_serve_refuses_a_key_file_others_could_read_or_swap(
    tmp_path: Path, exposure: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = tmp_path / KEY_FILE
    if exposure == "symbolic link":
        (tmp_path / "elsewhere").write_text("k" * 64)
        (tmp_path / "elsewhere").chmod(0o600)
        key.symlink_to(tmp_path / "elsewhere")
    else:
        key.write_text("k" * 64)
        key.chmod(0o640)
    result = _start(monkeypatch, "serve", "--port", str(free_port()), data=tmp_path)
    assert result.exit_code == 2, result.output
    assert "refused" in _said(result)
    assert "k" * 64 not in result.output
    assert not (tmp_path / "models").exists()  # nothing was signed with it


def test_serve_refuses_models_another_key_signed_and_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    registry = ModelRegistry(models, FileIndex(models / "index.json"), b"another-key-" * 4)
    record = registry.register(
        dump_snapshot(OnlineLearner("logistic"), b"another-key-" * 4),
        NewModel(
            kind="online",
            learner="logistic",
            params={},
            feature_schema=FeatureSet(FeatureSpec()).schema_version,
            labels_learned=0,
            frauds_learned=0,
            code_version="0.1.0",
            seed=0,
            reason="an earlier release",
        ),
    )
    registry.set_champion(record.version, detail="an earlier release")
    result = _start(monkeypatch, "serve", "--port", str(free_port()), data=tmp_path)
    assert result.exit_code == 2, result.output
    assert "signed with another key" in _said(result)
    assert "set FRAUDSTREAM_SECRET_KEY to the key that signed them" in _said(result)
    assert "Traceback" not in result.output
