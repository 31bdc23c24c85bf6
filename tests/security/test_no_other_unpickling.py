"""Models and state are unpickled in one place only: `models.safe_pickle`."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
UNPICKLING = re.compile(
    r"pickle\.loads?\(|Unpickler\(|_pickle\.|joblib\.load\(|cloudpickle|dill\.|marshal\.loads?\("
)
ALLOWED = {
    "models/safe_pickle.py": "the restricted unpickler itself",
    # `fraudstream evaluate --data DIR` reads the operator's own data set (the Handbook's
    # per-day pickles), chosen on the command line; no route reaches it.
    "pipelines/offline/datasets.py": "data sets named on the command line",
}


def test_nothing_else_unpickles() -> None:
    found = {
        str(path.relative_to(ROOT))
        for package in ("models", "pipelines", "service")
        for path in (ROOT / package).rglob("*.py")
        if UNPICKLING.search(path.read_text()) or "read_pickle(" in path.read_text()
    }
    assert found <= ALLOWED.keys(), found - ALLOWED.keys()
    assert "models/safe_pickle.py" in found  # the pattern does find what it looks for
