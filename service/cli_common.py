"""What every command of the CLI shares: where it prints, how it reports a user's error or a
long step's progress, and how it reads a day given as a flag."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from models.learners import LearnerError
from pipelines.bench.server_process import ServerProcessError
from pipelines.offline.datasets import DatasetError
from service.auth import UnsafeSettingsError
from service.distributed import DistributedSettingsError

# Tables stay readable when the output goes to a file or a pipe (rich would assume 80 columns).
console = Console(width=None if sys.stdout.isatty() else 132)
errors = Console(stderr=True)

USER_ERRORS = (
    DatasetError,
    LearnerError,
    ValueError,
    FileNotFoundError,
    ServerProcessError,
    DistributedSettingsError,
    UnsafeSettingsError,
)


@contextmanager
def user_errors() -> Iterator[None]:
    """A user's mistake (a bad data set, an unknown learner, refused settings) is one red line
    and exit status 2, never a traceback."""
    try:
        yield
    except USER_ERRORS as error:
        errors.print(f"[bold red]error:[/] {error}", highlight=False)
        raise typer.Exit(code=2) from None


def no_matured_labels(store: Path, which: str = "") -> NoReturn:
    """What a command over the offline store says, and exits 1 with, when it holds no label
    (``which`` narrows what it looked for)."""
    errors.print(
        f"[bold red]error:[/] no matured label{which} in {store} yet: the service writes one "
        "row per label it learns there",
        highlight=False,
    )
    raise typer.Exit(code=1)


@contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A progress bar that a long step advances by reporting how much it has done."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=errors, transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda done: bar.update(task, completed=done)


def utc_day(value: str | None, flag: str) -> datetime | None:
    """The UTC midnight starting ``value`` (YYYY-MM-DD); ``flag`` names it in the error."""
    if value is None:
        return None
    try:
        return datetime.combine(date.fromisoformat(value), datetime.min.time(), tzinfo=UTC)
    except ValueError:
        raise ValueError(f"{flag}: not a date in YYYY-MM-DD form: {value!r}") from None
