"""Memory of the in-process feature state, and of the pending vectors, for many distinct cards.

A population of distinct cards pays a few times each; the cards arrive spread over
``arrival_days`` and each spreads its payments over ``active_days``. With the defaults (cards
arriving over 50 days, paying over 40) every card is held at once at the stream's peak, since
none has yet been idle for the 30-day card horizon; by the end, the first 40% have been idle
that long and are evicted. Each card's first payment is older than the horizon by the time its
last comes, so bucket pruning runs too, and the terminals (37-day horizon) prune and evict
likewise. The peak therefore holds every card of the stream with its payments: the figure the
budget is stated for.

Each variant runs in a fresh process: its peak resident memory (VmHWM) minus its resident
memory just before streaming is what the state cost, allocator overhead included, with nothing
left over from another variant. Transactions are made as they are streamed, a batch at a time,
so the stream itself holds next to nothing.
"""

from __future__ import annotations

import contextlib
import gc
import math
import multiprocessing
import random
import time
from array import array
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from models.detector import DetectorPolicy
from models.explain import ReasonCode
from models.features import FeatureSet, FeatureSpec
from models.memory_state import InMemoryFeatureState
from models.pending import PendingEntry, PendingVectors
from models.schemas import Decision, Transaction
from models.scored import Scored
from models.state import DAY, WindowSpec, event_second
from pipelines.bench.run import load_average, step_counter
from pipelines.options import require_positive

BUDGET_BYTES_PER_CARD = 2_000
"""The documented budget: feature state per card held, with its payments, terminals and ids."""
STEPS = 3
"""Progress steps: the three variants."""

Variant = Literal["state", "capped", "pending"]


@dataclass(frozen=True)
class MemoryBenchOptions:
    """The card population streamed, and what the capped variant caps."""

    cards: int = 1_000_000
    payments_per_card: int = 4
    arrival_days: float = 50.0
    """The cards' first payments are spread evenly over this many days."""
    active_days: float = 40.0
    """Each card spreads its payments evenly over this many days."""
    terminals: int = 100_000
    batch_size: int = 1_000
    cap: int | None = None
    """The capped variant's card cap (and, times the payments per card, its id cap);
    default: a tenth of the cards."""
    budget_mb: float | None = None
    """Budget of the feature state's peak; default: `BUDGET_BYTES_PER_CARD` per card."""
    seed: int = 0

    def __post_init__(self) -> None:
        require_positive(self, "cards", "payments_per_card", "terminals", "batch_size")
        if self.payments_per_card < 2:
            raise ValueError("payments_per_card must be at least 2: one card, a few payments")
        if self.arrival_days <= 0 or self.active_days <= 0:
            raise ValueError("arrival_days and active_days must be positive")
        if self.cap is not None and self.cap <= 0:
            raise ValueError(f"cap must be positive, not {self.cap}")
        if self.budget_mb is not None and self.budget_mb <= 0:
            raise ValueError(f"budget_mb must be positive, not {self.budget_mb}")

    @property
    def card_cap(self) -> int:
        return self.cap if self.cap is not None else max(1, self.cards // 10)

    @property
    def transactions(self) -> int:
        return self.cards * self.payments_per_card

    @property
    def budget_bytes(self) -> int:
        if self.budget_mb is not None:
            return round(self.budget_mb * 1_000_000)
        return BUDGET_BYTES_PER_CARD * self.cards


def card_stream(options: MemoryBenchOptions) -> Iterator[list[Transaction]]:
    """Batches of transactions in event-time order: every card pays ``payments_per_card`` times.

    Card ``c`` pays at steps ``c, c + gap, c + 2 gap, ...``, so each step holds at most one
    payment per rank and the stream is made in order without a queue of future payments.

    >>> options = MemoryBenchOptions(cards=3, payments_per_card=2, terminals=5, batch_size=4)
    >>> stream = [tx for batch in card_stream(options) for tx in batch]
    >>> len(stream), len({tx.card_id for tx in stream}), len({tx.transaction_id for tx in stream})
    (6, 3, 6)
    >>> [tx.timestamp for tx in stream] == sorted(tx.timestamp for tx in stream)
    True
    """
    cards, payments = options.cards, options.payments_per_card
    step_seconds = options.arrival_days * DAY / cards
    gap = max(1, round(options.active_days * DAY / (payments - 1) / step_seconds))
    start = event_second(datetime(2026, 1, 1, tzinfo=UTC))
    rng = random.Random(options.seed)
    batch: list[Transaction] = []
    count = 0
    for step in range(cards + (payments - 1) * gap):
        at = start + step * step_seconds
        due = [card for rank in range(payments) if 0 <= (card := step - rank * gap) < cards]
        offsets = sorted(rng.random() * step_seconds for _ in due)
        for card, offset in zip(due, offsets, strict=True):
            count += 1
            batch.append(
                Transaction(
                    transaction_id=f"{options.seed:08x}{count:024x}",
                    timestamp=datetime.fromtimestamp(at + offset, UTC),
                    card_id=f"card-{card:012d}",
                    terminal_id=f"terminal-{rng.randrange(options.terminals):08d}",
                    amount=max(0.01, round(rng.lognormvariate(3.5, 1.0), 2)),
                    currency="EUR",
                )
            )
        if len(batch) >= options.batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


# -- measuring a process -----------------------------------------------------------------------


@dataclass(frozen=True)
class ProcessMemory:
    """A process's resident memory now and at its peak (VmRSS and VmHWM), in bytes."""

    resident: int
    peak: int


def process_memory(pid: int | None = None) -> ProcessMemory | None:
    """Read from ``/proc/<pid>/status`` (this process by default); ``None`` where unreadable."""
    try:
        status = Path(f"/proc/{pid or 'self'}/status").read_text()
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    try:
        # The kernel writes these in kB (KiB).
        resident, peak = (int(fields[name].split()[0]) * 1_024 for name in ("VmRSS", "VmHWM"))
    except (KeyError, ValueError, IndexError):
        return None
    return ProcessMemory(resident, peak)


def _reset_peak() -> None:
    """Let VmHWM count from now (Linux 4.0+); where refused, the peak still bounds what follows."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


# -- one variant, in its own process ------------------------------------------------------------


@dataclass(frozen=True)
class VariantResult:
    """What one variant held and what it cost, measured in its own process."""

    variant: Variant
    transactions: int
    seconds: float
    growth_bytes: int
    """Peak resident memory while streaming, less resident memory just before."""
    end_growth_bytes: int
    """Resident memory at the end, less the same baseline."""
    peak_held: dict[str, int]
    """The most entities of each kind held after any batch."""
    end_held: dict[str, int]

    @property
    def main_entity(self) -> str:
        return "entries" if self.variant == "pending" else "cards"

    @property
    def bytes_per_entity(self) -> float:
        """Peak growth per card (or pending entry) held at the peak."""
        held = self.peak_held[self.main_entity]
        return self.growth_bytes / held if held else math.nan


def _feature_state(options: MemoryBenchOptions, capped: bool) -> InMemoryFeatureState:
    if not capped:
        return InMemoryFeatureState(WindowSpec())
    cap = options.card_cap
    return InMemoryFeatureState(
        WindowSpec(), max_cards=cap, max_transaction_ids=cap * options.payments_per_card
    )


def _pending_feed(pending: PendingVectors) -> Callable[[list[Transaction]], dict[str, int]]:
    """Store each transaction's entry as the detector does: vector, answer, three reasons."""
    names = FeatureSet(FeatureSpec()).names
    version = "logistic-v1"

    def feed(batch: list[Transaction]) -> dict[str, int]:
        second = 0
        for tx in batch:
            second = event_second(tx.timestamp)
            values = array("d", [tx.amount] * len(names))
            reasons = tuple(ReasonCode(names[i], tx.amount + i, 0.1 * i) for i in range(3))
            scored = Scored(tx.transaction_id, 0.01, version, Decision.PASS, 0.5, reasons)
            entry = PendingEntry(values, tx.terminal_id, second, scored, None, tx.card_id)
            pending.put(tx.transaction_id, entry)
        pending.expire(second)
        return {"entries": len(pending)}

    return feed


def run_variant(options: MemoryBenchOptions, variant: Variant) -> VariantResult:
    """Stream the cards through one store and measure this process's memory around it."""
    if variant == "pending":
        policy = DetectorPolicy()
        feed = _pending_feed(PendingVectors(policy.pending_ttl_seconds, policy.max_pending))
    else:
        state = _feature_state(options, capped=variant == "capped")

        def feed(batch: list[Transaction]) -> dict[str, int]:
            state.observe(batch)
            return state.sizes()

    stream = card_stream(options)
    gc.collect()
    before = process_memory()
    _reset_peak()
    started = time.perf_counter()
    peak_held: dict[str, int] = {}
    held: dict[str, int] = {}
    transactions = 0
    for batch in stream:
        transactions += len(batch)
        held = feed(batch)
        for name, count in held.items():
            peak_held[name] = max(peak_held.get(name, 0), count)
    seconds = time.perf_counter() - started
    after = process_memory()
    if before is None or after is None:
        raise OSError("this bench reads /proc/self/status, which this system does not have")
    return VariantResult(
        variant=variant,
        transactions=transactions,
        seconds=seconds,
        growth_bytes=after.peak - before.resident,
        end_growth_bytes=after.resident - before.resident,
        peak_held=peak_held,
        end_held=held,
    )


# -- the bench ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class MemoryBenchResult:
    options: MemoryBenchOptions
    state: VariantResult
    """Default caps: only idle eviction and horizon pruning bound it."""
    capped: VariantResult
    pending: VariantResult
    load_average: float | None

    @property
    def pending_ttl_seconds(self) -> int:
        return DetectorPolicy().pending_ttl_seconds

    @property
    def pending_cap(self) -> int:
        return DetectorPolicy().max_pending

    @property
    def budget_met(self) -> bool:
        return self.state.growth_bytes <= self.options.budget_bytes


def _in_fresh_process(options: MemoryBenchOptions, variant: Variant) -> VariantResult:
    # Forked from a fork server that has only imported this module, not from the caller: each
    # variant starts from the same small heap, holding nothing of another variant's nor of the
    # caller's threads and objects, without paying the imports (river's, mostly) every time.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(run_variant, options, variant).result()


def bench_memory(
    options: MemoryBenchOptions | None = None, progress: Callable[[int], None] | None = None
) -> MemoryBenchResult:
    """Run the three variants one after another, each in a fresh process."""
    options = options or MemoryBenchOptions()
    load_at_start = load_average()
    advance = step_counter(progress)
    results: list[VariantResult] = []
    variants: tuple[Variant, ...] = ("state", "capped", "pending")
    for variant in variants:
        results.append(_in_fresh_process(options, variant))
        advance()
    state, capped, pending = results
    return MemoryBenchResult(options, state, capped, pending, load_at_start)
