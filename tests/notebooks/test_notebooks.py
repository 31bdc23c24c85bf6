"""The notebooks run end to end on a small simulated stream, so that they never rot.

Each notebook is checked as stored (no outputs, so diffs stay readable and no stale figure
survives a code change), then executed in a temporary copy with ``FRAUDSTREAM_NOTEBOOK_SCALE``
set to ``small``.

Which Python runs the notebook is decided here, not by the machine. jupyter_client resolves the
kernel name ``python3`` through every Jupyter data directory (the user's, the system's, the
virtualenv's), and a ``python3`` spec installed there for another interpreter would win over
this one, without the project installed. So the tests write their own ``python3`` spec into a
temporary directory, its command being this very interpreter (``sys.executable``), and give
the kernel manager a spec manager that looks only there. Nothing is installed into the
virtualenv or the user's home, no environment variable of the test process changes, and the
notebook scale reaches the kernel through the spec's ``env``.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbformat import NotebookNode

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
EXPLORE = "01-explore-the-stream.ipynb"
ONLINE_VS_BATCH = "02-online-vs-batch.ipynb"
ANALYST = "03-analyst.ipynb"
KERNEL_NAME = "python3"
CELL_TIMEOUT_SECONDS = 300
SMALL_TEST_WEEKS = 3
"""The small scale simulates 58 days; the test period starts after 30 days of warm-up plus the
7-day label delay, which leaves three full weeks."""


@pytest.fixture(scope="module")
def kernel_specs(tmp_path_factory: pytest.TempPathFactory) -> KernelSpecManager:
    """A spec manager that knows one kernel: ``python3``, running this interpreter."""
    kernels = tmp_path_factory.mktemp("kernels")
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (fraudstream tests)",
        "language": "python",
        "env": {"FRAUDSTREAM_NOTEBOOK_SCALE": "small"},
    }
    (kernels / KERNEL_NAME).mkdir()
    (kernels / KERNEL_NAME / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
    return KernelSpecManager(kernel_dirs=[str(kernels)], ensure_native_kernel=False)


def _read(path: Path) -> NotebookNode:
    notebook: NotebookNode = nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]
    return notebook


def _execute(name: str, workdir: Path, kernel_specs: KernelSpecManager) -> NotebookNode:
    """Run a copy of the notebook in ``workdir``; raises on the first cell that fails."""
    copy = workdir / name
    shutil.copyfile(NOTEBOOKS / name, copy)
    notebook = _read(copy)
    manager = AsyncKernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=kernel_specs)
    client = NotebookClient(
        notebook,
        km=manager,
        kernel_name=KERNEL_NAME,
        timeout=CELL_TIMEOUT_SECONDS,
        resources={"metadata": {"path": str(workdir)}},
    )
    # The client does not own a kernel manager it was handed, so it would leave the kernel running
    # and its sockets open unless told to shut both down, failure or not.
    executed: NotebookNode = client.execute(cleanup_kc=True)
    return executed


def _code_cells(notebook: NotebookNode) -> list[NotebookNode]:
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def _outputs(notebook: NotebookNode) -> list[NotebookNode]:
    return [output for cell in _code_cells(notebook) for output in cell.outputs]


def _tagged(notebook: NotebookNode, tag: str) -> NotebookNode:
    cells: list[NotebookNode] = [
        cell for cell in notebook.cells if tag in cell.metadata.get("tags", [])
    ]
    assert len(cells) == 1, f"expected one cell tagged {tag!r}, found {len(cells)}"
    return cells[0]


def _text(cell: NotebookNode) -> str:
    """Everything the cell printed or displayed as plain text."""
    parts = []
    for output in cell.outputs:
        if output.output_type == "stream":
            parts.append(output.text)
        elif "data" in output:
            parts.append(output.data.get("text/plain", ""))
    return "".join(parts)


def _figures(notebook: NotebookNode) -> int:
    return sum("image/png" in output.get("data", {}) for output in _outputs(notebook))


def _check_ran_cleanly(notebook: NotebookNode) -> None:
    """Every code cell ran, without an error or a warning."""
    assert all(cell.execution_count is not None for cell in _code_cells(notebook))
    errors = [output for output in _outputs(notebook) if output.output_type == "error"]
    assert errors == []
    # Only warnings, as the suite treats them: other stderr is allowed (matplotlib says so on
    # stderr when it builds its font cache on a fresh machine).
    stderr = "".join(
        output.text
        for output in _outputs(notebook)
        if output.output_type == "stream" and output.name == "stderr"
    )
    assert re.search(r"\w+Warning: ", stderr) is None, stderr


@pytest.mark.parametrize("name", [EXPLORE, ONLINE_VS_BATCH, ANALYST])
def test_stored_without_outputs(name: str) -> None:
    notebook = _read(NOTEBOOKS / name)
    nbformat.validate(notebook)
    assert notebook.metadata.kernelspec.name == KERNEL_NAME
    cells = _code_cells(notebook)
    assert cells
    assert [cell.execution_count for cell in cells] == [None] * len(cells)
    assert [cell.outputs for cell in cells] == [[]] * len(cells)
    assert [cell.metadata.get("execution") for cell in cells] == [None] * len(cells)


def test_explore_the_stream_runs(tmp_path: Path, kernel_specs: KernelSpecManager) -> None:
    notebook = _execute(EXPLORE, tmp_path, kernel_specs)

    _check_ran_cleanly(notebook)
    scenarios = _text(_tagged(notebook, "scenario-table"))
    for scenario in ("none", "compromised_terminal", "compromised_customer"):
        assert scenario in scenarios
    assert _figures(notebook) == 2  # frauds per day; feature distributions


def test_online_vs_batch_runs(tmp_path: Path, kernel_specs: KernelSpecManager) -> None:
    notebook = _execute(ONLINE_VS_BATCH, tmp_path, kernel_specs)

    _check_ran_cleanly(notebook)
    printed = _text(_tagged(notebook, "weekly-table"))
    weeks = re.findall(r"^\d{4}-\d{2}-\d{2} .*$", printed, flags=re.MULTILINE)
    assert len(weeks) == SMALL_TEST_WEEKS, printed
    for week in weeks:
        # transactions, frauds, training rows, then AP and CP@100 of both models.
        figures = [float(value) for value in week.split()[1:]]
        assert len(figures) == 7, week
        assert all(0.0 <= value <= 1.0 for value in figures[3:]), week
    assert "mean of the weeks" in printed
    assert _figures(notebook) == 1  # AP and CP@100 week by week


def test_analyst_notebook_runs(tmp_path: Path, kernel_specs: KernelSpecManager) -> None:
    notebook = _execute(ANALYST, tmp_path, kernel_specs)

    _check_ran_cleanly(notebook)
    thresholds = _text(_tagged(notebook, "threshold-table"))
    assert "alerts_per_day" in thresholds
    assert len(re.findall(r"^0\.\d+\s", thresholds, flags=re.MULTILINE)) == 19
    chosen = _text(_tagged(notebook, "operating-point"))
    found = re.search(r"(\d+\.\d) alerts a day, precision (\d\.\d+), recall (\d\.\d+)", chosen)
    assert found is not None, chosen
    assert float(found[1]) <= 50
    assert "cards_per_day" in _text(_tagged(notebook, "budget-table"))
    reasons = _text(_tagged(notebook, "reasons-table"))
    assert re.search(r"^[1-9][\d,]* alerts$", reasons, flags=re.MULTILINE), reasons
    assert "share of alerts" in reasons
    # The rule the replay applies decided reviews, and they name it.
    assert re.search(r"^\s*rule:large-at-new-terminal\s+[1-9]", reasons, flags=re.MULTILINE), (
        reasons
    )
    drafted = _text(_tagged(notebook, "backtest"))
    assert re.search(r"^the draft matches [1-9][\d,]* transactions$", drafted, flags=re.MULTILINE)
    assert "with the draft" in drafted
    assert "frauds_added" in drafted
    assert _figures(notebook) == 1  # alert volume; precision and recall
