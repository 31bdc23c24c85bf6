"""Unpickling that can only build what a model or serving state holds.

A pickle is a program: every global it names is imported and may be called with arguments of
the pickle's choosing (``os.system``, ``builtins.eval``, ``numpy.load``...). A valid signature
says who wrote the bytes, not that running them is harmless, so every model and state this
service loads goes through `restricted_loads`, whose `RestrictedUnpickler.find_class` answers
only:

- the explicit names of `ALLOWED_NAMES`: the data types of ``builtins`` and ``collections``,
  ``random.Random``, ``array``, ``functools.partial``, and the few numpy and Cython
  reconstructors that rebuild arrays, dtypes and random generators;
- classes (never functions, never modules) defined under a prefix of `ALLOWED_CLASS_PREFIXES`:
  river's estimators and their internals, scikit-learn's gradient boosting (the batch
  retrain's tree model; its logistic model is kept as plain weights), and this project's own
  ``models`` package; no subpackage of `REFUSED_MODULE_PARTS`
  (data sets, streams, tests), which hold file and network access.

Everything else is refused with `RefusedGlobalError` before it is imported or constructed.
Only classes come from a prefix because instantiating one of these classes stores its
arguments; it is a function (``numpy.load``, ``numpy.fromfile``, ``joblib.load``) or a class
outside them (``numpy.memmap``, ``subprocess.Popen``, ``pathlib.Path``) that reaches files or
runs code. ``functools.partial`` only binds arguments to a callable that itself had to pass
this check (river keeps ``partial(defaultdict, float)`` as a default factory). A name is
checked where it is defined, not where it was asked for, so a re-export cannot smuggle one
in; dotted names (``dict.fromkeys``, ``Class.method``) are refused whole.
"""

from __future__ import annotations

import importlib
import io
import pickle
from typing import Any

ALLOWED_NAMES: frozenset[tuple[str, str]] = frozenset(
    {
        *(
            ("builtins", name)
            for name in (
                "bool",
                "complex",
                "dict",
                "float",
                "frozenset",
                "int",
                "list",
                "range",
                "set",
                "slice",
                "str",
                "tuple",
            )
        ),
        *(("collections", name) for name in ("Counter", "OrderedDict", "defaultdict", "deque")),
        ("array", "array"),
        ("array", "_array_reconstructor"),
        ("functools", "partial"),
        ("random", "Random"),
        ("numpy", "dtype"),
        ("numpy", "ndarray"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy.random._pickle", "__bit_generator_ctor"),
        ("numpy.random._pickle", "__generator_ctor"),
        ("numpy.random._pickle", "__randomstate_ctor"),
        ("numpy.random._pcg64", "PCG64"),
        ("numpy.random._mt19937", "MT19937"),
        ("numpy.random.bit_generator", "SeedSequence"),
        ("numpy.random.bit_generator", "__pyx_unpickle_SeedSequence"),
        ("sklearn.preprocessing._label", "LabelEncoder"),
    }
)
"""Globals allowed by exact module and name, classes or functions."""

ALLOWED_CLASS_PREFIXES: tuple[str, ...] = (
    "river.",
    "sklearn._loss.",
    "sklearn.ensemble._hist_gradient_boosting.",
    "models.",
)
"""Modules whose classes (only classes) a model or a serving state may hold."""

REFUSED_MODULE_PARTS: frozenset[str] = frozenset(
    {"datasets", "stream", "api", "checks", "conftest", "tests", "_testing", "testing"}
)
"""Subpackages refused even under an allowed prefix: they read files or the network."""


class RefusedGlobalError(pickle.UnpicklingError):
    """The pickle names a global that no model or state holds: refused, nothing built."""


def _under_allowed_prefix(module: str) -> bool:
    return module.startswith(ALLOWED_CLASS_PREFIXES) and not (
        REFUSED_MODULE_PARTS.intersection(module.split("."))
    )


def allowed_global(module: str, name: str) -> bool:
    """Whether ``module.name`` passes the allow-list by name (a prefix's classes are still
    checked once resolved, in `RestrictedUnpickler.find_class`).

    >>> allowed_global("river.linear_model.log_reg", "LogisticRegression")
    True
    >>> allowed_global("os", "system"), allowed_global("numpy", "load")
    (False, False)
    >>> allowed_global("river.datasets.base", "RemoteDataset")
    False
    """
    if (module, name) in ALLOWED_NAMES:
        return True
    return "." not in name and name.isidentifier() and _under_allowed_prefix(module)


class RestrictedUnpickler(pickle.Unpickler):
    """A `pickle.Unpickler` that resolves only the globals of the allow-list.

    Examples
    --------
    >>> import collections, os, pickle
    >>> blob = pickle.dumps(collections.OrderedDict(a=1.5))
    >>> RestrictedUnpickler(io.BytesIO(blob)).load()
    OrderedDict([('a', 1.5)])
    >>> RestrictedUnpickler(io.BytesIO(pickle.dumps(os.system))).load()
    Traceback (most recent call last):
    ...
    models.safe_pickle.RefusedGlobalError: refused to load posix.system: not a class a model holds
    """

    def __init__(self, file: io.BytesIO) -> None:
        # No mapping of Python 2 names: what is checked is exactly what gets imported.
        super().__init__(file, fix_imports=False)

    def find_class(self, module: str, name: str) -> Any:
        if not allowed_global(module, name):
            raise RefusedGlobalError(f"refused to load {module}.{name}: not a class a model holds")
        if (module, name) in ALLOWED_NAMES:
            return super().find_class(module, name)
        found = getattr(importlib.import_module(module), name, None)
        if (
            not isinstance(found, type)
            or not _under_allowed_prefix(found.__module__)
            or found.__qualname__ != name
        ):
            raise RefusedGlobalError(
                f"refused to load {module}.{name}: only classes defined under "
                f"{', '.join(ALLOWED_CLASS_PREFIXES)} are allowed"
            )
        return found


def restricted_loads(blob: bytes) -> object:
    """The value pickled in ``blob``, built only from the allow-list's globals.

    Raises `RefusedGlobalError` for any other global, before anything is built from it.
    """
    return RestrictedUnpickler(io.BytesIO(blob)).load()
