"""Pickles an attacker would sign: each one, if unpickled, creates a file in a given directory."""

from __future__ import annotations

import functools
import operator
import os
import pickle
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib  # type: ignore[import-untyped]
import numpy as np

from models.learners import OnlineLearner
from models.snapshots import MAGIC, sign


class Call:
    """Pickles as ``function(*args)``: the shape of every gadget to the unpickler."""

    def __init__(self, function: Callable[..., Any], *args: Any) -> None:
        self.function = function
        self.args = args

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        return self.function, self.args


def by_name(module: str, name: str, *args: Any) -> bytes:
    """A pickle calling ``module.name(*args)``, naming the global exactly so (``os.system``,
    where `pickle` itself would write ``posix.system``)."""
    arguments = pickle.dumps(args, protocol=2)[2:-1]  # without its PROTO and STOP
    return b"\x80\x02c" + f"{module}\n{name}\n".encode() + arguments + b"R."


def signed(payload: bytes, key: bytes) -> bytes:
    """``payload`` laid out and signed as the service's own snapshots are."""
    return MAGIC + sign(payload, key) + payload


def _dumps(value: object) -> bytes:
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def file_gadgets(loot: Path) -> dict[str, bytes]:
    """Pickles that would each create a file under ``loot`` if unpickled, by name."""

    def target(name: str) -> str:
        return str(loot / name)

    def touch(name: str) -> str:
        return f"touch {target(name)}"

    inside_a_model = OnlineLearner("logistic")
    inside_a_model.explainer = Call(os.system, touch("inside-a-model"))  # type: ignore[assignment]
    return {
        "os.system": by_name("os", "system", touch("os-system")),
        "posix.system": _dumps(Call(os.system, touch("posix-system"))),
        "subprocess.Popen": by_name("subprocess", "Popen", ["touch", target("subprocess-popen")]),
        "subprocess.run": _dumps(Call(subprocess.run, ["touch", target("subprocess-run")])),
        "builtins.exec": _dumps(Call(exec, f"open({target('exec')!r}, 'w').close()")),
        "builtins.eval": by_name("builtins", "eval", f"open({target('eval')!r}, 'w').close()"),
        "builtins.open": by_name("builtins", "open", target("builtins-open"), "w"),
        "io.open": _dumps(Call(open, target("io-open"), "w")),
        "pathlib.Path.touch": _dumps(Call(Path(target("path-touch")).touch)),
        "operator.methodcaller": _dumps(
            Call(operator.methodcaller("touch"), Path(target("methodcaller")))
        ),
        "functools.partial": _dumps(Call(functools.partial(os.system, touch("partial")))),
        "numpy.memmap": _dumps(Call(np.memmap, target("memmap"), "uint8", "w+", 0, (1,))),
        "numpy.save": _dumps(Call(np.save, target("numpy-save.npy"), [1.0])),
        "joblib.dump": _dumps(Call(joblib.dump, [1.0], target("joblib-dump"))),
        "a learner carrying os.system": _dumps(inside_a_model),
    }


REFUSED_NAMES: tuple[tuple[str, str], ...] = (
    ("numpy", "load"),
    ("numpy", "fromfile"),
    ("numpy", "memmap"),
    ("numpy", "save"),
    ("numpy.testing", "assert_equal"),
    ("numpy.lib.npyio", "DataSource"),
    ("joblib", "load"),
    ("joblib", "Memory"),
    ("builtins", "getattr"),
    ("builtins", "__import__"),
    ("builtins", "breakpoint"),
    ("operator", "attrgetter"),
    ("operator", "methodcaller"),
    ("copyreg", "_reconstructor"),
    ("importlib", "import_module"),
    ("river.stream", "iter_csv"),
    ("river.stream.cache", "Cache"),
    ("river.datasets.base", "RemoteDataset"),
    # Re-exports: joblib's Parallel (it calls what it is given) and a transformer that wraps
    # any function, reached through an allowed module.
    ("sklearn.ensemble._hist_gradient_boosting.binning", "Parallel"),
    ("sklearn.ensemble._hist_gradient_boosting.gradient_boosting", "FunctionTransformer"),
    ("sklearn.linear_model._logistic", "LogisticRegression"),  # kept as plain weights
    # A module, a function and a method under allowed prefixes.
    ("models.snapshots", "pickle"),
    ("models.safe_pickle", "restricted_loads"),
    ("river.compose.pipeline", "Pipeline.learn_one"),
    ("sklearn.preprocessing", "FunctionTransformer.__init__"),
)
"""Globals an attacker might reach for under, or beside, what a model holds."""
