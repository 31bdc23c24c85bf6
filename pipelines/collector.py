"""The garbage collector as a long-running scoring process wants it, once started up.

What start-up built (the model, the settings, imported modules) lives as long as the process:
frozen, the collector stops rescanning it. And at the default 700 allocations a scoring process
collects many times a second, which shows in its latency and, in a stream worker, as about a
third of its CPU per transaction; with a higher threshold, cycles are still collected, less
often.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

GC_YOUNG_THRESHOLD = 50_000
"""Allocations between two young-generation collections (CPython's default is 700)."""


def settle_after_start_up() -> None:
    """Freeze what start-up built and make young collections rarer, for good."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 10)


@contextlib.contextmanager
def settled() -> Iterator[None]:
    """The same within a block, the collector restored after it: a bench measures a path
    under the collector the serving processes run with."""
    thresholds = gc.get_threshold()
    settle_after_start_up()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
