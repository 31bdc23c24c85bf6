"""What every bench does around its measurements: it reports its steps to the caller's
progress bar, and notes the machine it ran on (cores, load average at the start), without
which its figures cannot be compared with another run's."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable


def step_counter(progress: Callable[[int], None] | None) -> Callable[[], None]:
    """A function to call once a step is done: ``progress`` gets how many are done so far,
    so that the parts of a bench advance one bar without counting for themselves."""
    done = itertools.count(1)

    def advance() -> None:
        steps = next(done)
        if progress is not None:
            progress(steps)

    return advance


def load_average() -> float | None:
    """The one-minute load average, or None on a system that does not keep one."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def cores() -> int:
    """The cores of this machine (1 where that cannot be told)."""
    return os.cpu_count() or 1
