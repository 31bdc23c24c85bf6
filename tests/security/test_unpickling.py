"""A signature is not enough to unpickle: signed gadgets are refused and build nothing."""

from __future__ import annotations

import io
import pickle
import subprocess
import sys
import time
from pathlib import Path

import pytest

import models.batch_model  # noqa: F401 - its scikit-learn imports are among those checked
from models.detector import DetectorState, ServingModels
from models.learners import OnlineLearner
from models.safe_pickle import (
    ALLOWED_CLASS_PREFIXES,
    ALLOWED_NAMES,
    RefusedGlobalError,
    restricted_loads,
)
from models.snapshots import SnapshotError, load_signed, load_snapshot
from tests.security.gadgets import REFUSED_NAMES, by_name, file_gadgets, signed

KEY = b"k" * 32


def _settled(loot: Path) -> list[str]:
    """What the gadgets left in ``loot``, once a spawned process has had time to act."""
    time.sleep(0.3)
    return sorted(path.name for path in loot.iterdir())


def test_the_gadgets_are_real_plain_pickle_creates_every_file(tmp_path: Path) -> None:
    gadgets = file_gadgets(tmp_path)
    for payload in gadgets.values():
        made = pickle.loads(payload)  # the control: what the service must never do
        if isinstance(made, io.IOBase):
            made.close()
        elif isinstance(made, subprocess.Popen):
            made.wait()
    deadline = time.monotonic() + 10
    while len(list(tmp_path.iterdir())) < len(gadgets) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(list(tmp_path.iterdir())) == len(gadgets)


@pytest.mark.parametrize("expected", [OnlineLearner, ServingModels, DetectorState, dict])
def test_a_signed_gadget_is_refused_whatever_is_expected_and_creates_no_file(
    tmp_path: Path, expected: type[object]
) -> None:
    for name, payload in file_gadgets(tmp_path).items():
        with pytest.raises(SnapshotError, match="refused to load") as refused:
            load_signed(signed(payload, KEY), KEY, expected)
        assert "does not verify" not in str(refused.value), name  # the signature was good
    assert _settled(tmp_path) == []


def test_the_upload_path_refuses_a_gadget_before_its_type_check(tmp_path: Path) -> None:
    payload = file_gadgets(tmp_path)["posix.system"]
    with pytest.raises(SnapshotError, match=r"refused to load posix\.system"):
        load_snapshot(signed(payload, KEY), KEY)
    assert _settled(tmp_path) == []


@pytest.mark.parametrize(("module", "name"), REFUSED_NAMES)
def test_callables_that_reach_files_or_code_are_refused_under_any_prefix(
    module: str, name: str
) -> None:
    with pytest.raises(RefusedGlobalError, match="refused to load"):
        restricted_loads(by_name(module, name))


def test_no_class_imported_into_an_allowed_module_passes_as_its_own() -> None:
    smuggled = [
        (module_name, attribute)
        for module_name, module in list(sys.modules.items())
        if module is not None and module_name.startswith(ALLOWED_CLASS_PREFIXES)
        for attribute, value in vars(module).items()
        if isinstance(value, type)
        and not value.__module__.startswith(ALLOWED_CLASS_PREFIXES)
        and (module_name, attribute) not in ALLOWED_NAMES
    ]
    assert len(smuggled) > 20  # collections' and sklearn.utils' classes among them
    for module_name, attribute in smuggled:
        with pytest.raises(RefusedGlobalError):
            restricted_loads(by_name(module_name, attribute))


def test_refusal_comes_before_the_module_is_imported() -> None:
    module = "river.datasets.credit_card"
    sys.modules.pop(module, None)
    with pytest.raises(RefusedGlobalError):
        restricted_loads(by_name(module, "CreditCard"))
    assert module not in sys.modules


def test_bytes_that_do_not_unpickle_are_a_snapshot_error_not_a_crash() -> None:
    for payload in (b"\x80\x05N", b"not a pickle at all", by_name("builtins", "int", "x")):
        with pytest.raises(SnapshotError, match="does not unpickle"):
            load_signed(signed(payload, KEY), KEY, dict)
