"""scripts/bootstrap's install step: `run` installs what running needs, `test` adds the
development tools, each once per change of pyproject.toml.

A unit test: the environment's ``python`` is a stand-in that records how pip was asked, so the
stamp logic is checked without installing anything (the real install is what `scripts/run` and
`scripts/test` do on every fresh machine).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A checkout's scripts and pyproject.toml, with an environment whose python records pip."""
    root = tmp_path / "checkout"
    (root / "scripts").mkdir(parents=True)
    shutil.copy(SCRIPTS / "bootstrap", root / "scripts" / "bootstrap")
    (root / "pyproject.toml").write_text('[project]\nname = "fraudstream"\n')
    python = root / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f'#!/bin/sh\necho "$*" >> {root / "pip.log"}\n')
    python.chmod(0o755)
    return root


def install(checkout: Path, wanted: str) -> list[str]:
    """What pip was asked to install (editable targets) by ``install_fraudstream wanted``."""
    log = checkout / "pip.log"
    log.unlink(missing_ok=True)
    subprocess.run(
        ["bash", "-c", f"source scripts/bootstrap && install_fraudstream {wanted}"],
        cwd=checkout,
        env={
            "FRAUDSTREAM_VENV": str(checkout / "venv"),
            "PYTHON": sys.executable,
            "PATH": "/usr/bin:/bin",
        },
        check=True,
        capture_output=True,
    )
    lines = log.read_text().splitlines() if log.exists() else []
    return [line.rsplit(" ", 1)[1].removeprefix(str(checkout)) for line in lines if " -e " in line]


def test_run_installs_without_the_development_tools_and_test_adds_them(checkout: Path) -> None:
    assert install(checkout, "run") == [""]
    assert install(checkout, "run") == []
    assert install(checkout, "dev") == ["[dev]"]
    assert install(checkout, "dev") == []
    assert install(checkout, "run") == []  # the development tools serve running too


def test_a_change_of_pyproject_installs_once_keeping_the_development_tools(
    checkout: Path,
) -> None:
    assert install(checkout, "dev") == ["[dev]"]
    (checkout / "pyproject.toml").write_text('[project]\nname = "fraudstream"\nversion = "2"\n')
    assert install(checkout, "run") == ["[dev]"]
    assert install(checkout, "dev") == []


def test_a_change_of_pyproject_reinstalls_a_running_environment(checkout: Path) -> None:
    assert install(checkout, "run") == [""]
    (checkout / "pyproject.toml").write_text('[project]\nname = "fraudstream"\nversion = "2"\n')
    assert install(checkout, "run") == [""]
    assert install(checkout, "run") == []
