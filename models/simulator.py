"""Synthetic card transactions, following the Fraud Detection Handbook's generative process.

Written from the prose description in ``EVALUATION.md`` ("The generative process"), so that the
evaluation has a reference data set it can regenerate at any size. Everything is drawn from one
seeded generator: the same :class:`SimulationConfig` always gives the same frame, which is what
makes an evaluation run repeatable.

The work is vectorised over a day's transactions (and over customers for the terminal lists);
Python loops run over days and fraud events only, never over transactions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from enum import IntEnum

import numpy as np
import numpy.typing as npt
import pandas as pd

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]

HANDBOOK_COLUMNS = (
    "TRANSACTION_ID",
    "TX_DATETIME",
    "CUSTOMER_ID",
    "TERMINAL_ID",
    "TX_AMOUNT",
    "TX_TIME_SECONDS",
    "TX_TIME_DAYS",
    "TX_FRAUD",
    "TX_FRAUD_SCENARIO",
)
"""Columns of a simulated frame, in the Handbook's order."""

SECONDS_PER_DAY = 86_400
_GRID_SIZE = 100.0
_NOON = SECONDS_PER_DAY / 2
_TIME_OF_DAY_SD = 20_000.0
_MIN_AMOUNT = 0.01

_FRAUD_AMOUNT = 220.0
_TERMINALS_PER_DAY, _TERMINAL_DAYS = 2, 28
_CUSTOMERS_PER_DAY, _CUSTOMER_DAYS, _CUSTOMER_AMOUNT_FACTOR = 3, 14, 5.0
_TESTED_PER_DAY, _TESTING_DAYS = 3, 7
_TESTS_PER_DAY = (3, 6)
_TEST_AMOUNT = (1.0, 5.0)
_NIGHT_END_SECONDS = 5 * 3600

# Bounds the distance matrix to about 32 MB whatever the number of terminals.
_DISTANCE_CELLS_PER_CHUNK = 4_000_000


class FraudScenario(IntEnum):
    """Why a transaction is fraud: the value of ``TX_FRAUD_SCENARIO``."""

    NONE = 0
    LARGE_AMOUNT = 1
    COMPROMISED_TERMINAL = 2
    COMPROMISED_CUSTOMER = 3
    CARD_TESTING = 4
    """The drift scenario: small night-time payments on unfamiliar terminals."""


@dataclass(frozen=True)
class SimulationConfig:
    """Size, seed and options of a simulation; the defaults give the Handbook's published set.

    Parameters
    ----------
    customers, terminals
        How many customers (cards) and terminals to place on the 100 x 100 grid.
    days
        Length of the simulated period, starting at midnight UTC of ``start_date``.
    seed
        Seed of the single random generator behind every draw.
    radius
        A customer only uses the terminals closer than this.
    new_pattern_day
        If set, card testing (scenario 4) starts on this day: a fraud pattern the models
        have never seen, for measuring how fast they adapt.
    """

    customers: int = 5000
    terminals: int = 10000
    days: int = 183
    start_date: date = date(2018, 4, 1)
    seed: int = 0
    radius: float = 5.0
    new_pattern_day: int | None = None

    def __post_init__(self) -> None:
        for name in ("customers", "terminals", "days"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.seed < 0:
            raise ValueError(f"seed must be non-negative, got {self.seed}")
        if not self.radius > 0 or not np.isfinite(self.radius):
            raise ValueError(f"radius must be positive and finite, got {self.radius}")
        if self.new_pattern_day is not None and not 0 <= self.new_pattern_day < self.days:
            raise ValueError(
                f"new_pattern_day must be in [0, {self.days}), got {self.new_pattern_day}"
            )


@dataclass(frozen=True)
class _Customers:
    xy: Floats
    mean_amount: Floats
    sd_amount: Floats
    mean_per_day: Floats


@dataclass(frozen=True)
class _TerminalLists:
    """Each customer's usable terminals, flat: customer c owns ``size[c]`` ids from ``start[c]``."""

    start: Ints
    size: Ints
    ids: Ints


@dataclass
class _Transactions:
    """Columns under construction; fraud rules update ``amount`` and ``scenario`` in place."""

    customer: Ints
    terminal: Ints
    seconds: Ints
    amount: Floats
    scenario: npt.NDArray[np.int8]

    @property
    def day(self) -> Ints:
        return self.seconds // SECONDS_PER_DAY

    @classmethod
    def concat(cls, parts: list[_Transactions]) -> _Transactions:
        return cls(
            customer=np.concatenate([p.customer for p in parts]),
            terminal=np.concatenate([p.terminal for p in parts]),
            seconds=np.concatenate([p.seconds for p in parts]),
            amount=np.concatenate([p.amount for p in parts]),
            scenario=np.concatenate([p.scenario for p in parts]),
        )


def simulate(
    config: SimulationConfig, progress: Callable[[int], None] | None = None
) -> pd.DataFrame:
    """Generate labelled transactions, sorted by time.

    Parameters
    ----------
    config
        What to simulate.
    progress
        Called with the number of days generated so far, after each day.

    Returns
    -------
    pandas.DataFrame
        The Handbook's columns (:data:`HANDBOOK_COLUMNS`). ``TX_DATETIME`` is naive and means
        UTC. Rows are sorted by time, ties kept in generation order, and ``TRANSACTION_ID``
        numbers them from 0 in that order.

    Examples
    --------
    >>> frame = simulate(SimulationConfig(customers=50, terminals=100, days=5, seed=1))
    >>> list(frame.columns)  # doctest: +NORMALIZE_WHITESPACE
    ['TRANSACTION_ID', 'TX_DATETIME', 'CUSTOMER_ID', 'TERMINAL_ID', 'TX_AMOUNT',
     'TX_TIME_SECONDS', 'TX_TIME_DAYS', 'TX_FRAUD', 'TX_FRAUD_SCENARIO']
    >>> bool((frame.TX_AMOUNT > 0).all()), bool(frame.TX_DATETIME.is_monotonic_increasing)
    (True, True)
    >>> frame.equals(simulate(SimulationConfig(customers=50, terminals=100, days=5, seed=1)))
    True
    """
    rng = np.random.Generator(np.random.PCG64(config.seed))
    customers = _draw_customers(rng, config.customers)
    terminal_xy = rng.uniform(0.0, _GRID_SIZE, size=(config.terminals, 2))
    lists = _terminals_within(customers.xy, terminal_xy, config.radius)

    days = []
    for day in range(config.days):
        days.append(_draw_day(rng, day, customers, lists))
        if progress is not None:
            progress(day + 1)
    transactions = _Transactions.concat(days)

    _mark_large_amounts(transactions)
    _mark_compromised_terminals(rng, transactions, config)
    _mark_compromised_customers(rng, transactions, config)
    if config.new_pattern_day is not None:
        # Drawn after everything else, so the rest of the data is the same with or without it.
        card_testing = _draw_card_testing(rng, config, config.new_pattern_day)
        transactions = _Transactions.concat([transactions, card_testing])
    return _to_frame(transactions, config.start_date)


def _draw_customers(rng: np.random.Generator, n: int) -> _Customers:
    xy = rng.uniform(0.0, _GRID_SIZE, size=(n, 2))
    mean_amount = rng.uniform(5.0, 100.0, size=n)
    mean_per_day = rng.uniform(0.0, 4.0, size=n)
    return _Customers(xy, mean_amount, mean_amount / 2, mean_per_day)


def _terminals_within(customer_xy: Floats, terminal_xy: Floats, radius: float) -> _TerminalLists:
    """Terminal lists by brute-force distances, a chunk of customers at a time."""
    chunk = max(1, _DISTANCE_CELLS_PER_CHUNK // len(terminal_xy))
    ids: list[Ints] = []
    sizes: list[Ints] = []
    for first in range(0, len(customer_xy), chunk):
        block = customer_xy[first : first + chunk]
        squared = ((block[:, None, :] - terminal_xy[None, :, :]) ** 2).sum(axis=2)
        # nonzero walks the matrix row by row, so each customer's ids come out contiguous.
        rows, cols = np.nonzero(squared < radius * radius)
        ids.append(cols.astype(np.int64))
        sizes.append(np.bincount(rows, minlength=len(block)).astype(np.int64))
    size = np.concatenate(sizes)
    start = np.concatenate([[0], np.cumsum(size)[:-1]]).astype(np.int64)
    return _TerminalLists(start=start, size=size, ids=np.concatenate(ids))


def _draw_day(
    rng: np.random.Generator, day: int, customers: _Customers, lists: _TerminalLists
) -> _Transactions:
    # A customer with no terminal in reach cannot pay anywhere, so buys nothing.
    rate = np.where(lists.size > 0, customers.mean_per_day, 0.0)
    customer = np.repeat(np.arange(len(rate), dtype=np.int64), rng.poisson(rate))
    n = len(customer)
    time_of_day = _times_of_day(rng, n)
    amount = _amounts(rng, customers.mean_amount[customer], customers.sd_amount[customer])
    pick = rng.integers(0, lists.size[customer])
    terminal = lists.ids[lists.start[customer] + pick]
    return _Transactions(
        customer=customer,
        terminal=terminal,
        seconds=day * SECONDS_PER_DAY + time_of_day,
        amount=amount,
        scenario=np.zeros(n, dtype=np.int8),
    )


def _times_of_day(rng: np.random.Generator, n: int) -> Ints:
    """Seconds after midnight, normal around noon; draws outside the day are redrawn."""
    seconds = rng.normal(_NOON, _TIME_OF_DAY_SD, size=n)
    outside = np.flatnonzero((seconds < 0) | (seconds >= SECONDS_PER_DAY))
    while len(outside):
        seconds[outside] = rng.normal(_NOON, _TIME_OF_DAY_SD, size=len(outside))
        still = (seconds[outside] < 0) | (seconds[outside] >= SECONDS_PER_DAY)
        outside = outside[still]
    return np.floor(seconds).astype(np.int64)


def _amounts(rng: np.random.Generator, mean: Floats, sd: Floats) -> Floats:
    amount = rng.normal(mean, sd)
    negative = np.flatnonzero(amount < 0)
    amount[negative] = rng.uniform(0.0, 2 * mean[negative])
    return _cents(amount)


def _cents(amount: Floats) -> Floats:
    # Rounding can turn a tiny draw into 0.00, which no card network would carry.
    return np.maximum(np.round(amount, 2), _MIN_AMOUNT)


def _mark_large_amounts(tx: _Transactions) -> None:
    tx.scenario[tx.amount > _FRAUD_AMOUNT] = FraudScenario.LARGE_AMOUNT


def _mark_compromised_terminals(
    rng: np.random.Generator, tx: _Transactions, config: SimulationConfig
) -> None:
    """Each day a few terminals turn bad; all their payments from that day on are fraud."""
    day = tx.day
    bad_until = np.zeros(config.terminals, dtype=np.int64)
    # Transactions are still in generation order here, which is day by day.
    bounds = np.searchsorted(day, np.arange(config.days + 1))
    for d in range(config.days):
        picked = _pick(rng, config.terminals, _TERMINALS_PER_DAY)
        bad_until[picked] = d + _TERMINAL_DAYS
        todays = slice(bounds[d], bounds[d + 1])
        hit = bad_until[tx.terminal[todays]] > d
        tx.scenario[todays][hit] = FraudScenario.COMPROMISED_TERMINAL


def _mark_compromised_customers(
    rng: np.random.Generator, tx: _Transactions, config: SimulationConfig
) -> None:
    """Each day a few cards are stolen; a third of their next payments are inflated frauds."""
    by_customer = np.argsort(tx.customer, kind="stable")
    customer_sorted = tx.customer[by_customer]
    day_sorted = tx.day[by_customer]
    for d in range(config.days):
        victims = _pick(rng, config.customers, _CUSTOMERS_PER_DAY)
        window = np.concatenate(
            [_customer_window(customer_sorted, day_sorted, by_customer, c, d) for c in victims]
        )
        chosen = rng.choice(window, size=len(window) // 3, replace=False)
        tx.amount[chosen] = _cents(tx.amount[chosen] * _CUSTOMER_AMOUNT_FACTOR)
        tx.scenario[chosen] = FraudScenario.COMPROMISED_CUSTOMER


def _customer_window(
    customer_sorted: Ints, day_sorted: Ints, order: Ints, customer: int, day: int
) -> Ints:
    """Positions of one customer's transactions on days ``[day, day + 14)``."""
    first, last = np.searchsorted(customer_sorted, [customer, customer + 1])
    days = day_sorted[first:last]
    lo, hi = np.searchsorted(days, [day, day + _CUSTOMER_DAYS])
    return order[first + lo : first + hi]


def _draw_card_testing(
    rng: np.random.Generator, config: SimulationConfig, first_day: int
) -> _Transactions:
    """Fraudsters check stolen cards with a few tiny payments a night, anywhere."""
    victims: list[Ints] = []
    days: list[Ints] = []
    for d in range(first_day, config.days):
        picked = _pick(rng, config.customers, _TESTED_PER_DAY)
        active_days = np.arange(d, min(d + _TESTING_DAYS, config.days), dtype=np.int64)
        victims.append(np.repeat(picked, len(active_days)))
        days.append(np.tile(active_days, len(picked)))
    low, high = _TESTS_PER_DAY
    counts = rng.integers(low, high + 1, size=sum(len(v) for v in victims))
    customer = np.repeat(np.concatenate(victims), counts)
    day = np.repeat(np.concatenate(days), counts)
    n = len(customer)
    return _Transactions(
        customer=customer,
        terminal=rng.integers(0, config.terminals, size=n, dtype=np.int64),
        seconds=day * SECONDS_PER_DAY + rng.integers(0, _NIGHT_END_SECONDS, size=n),
        amount=_cents(rng.uniform(*_TEST_AMOUNT, size=n)),
        scenario=np.full(n, FraudScenario.CARD_TESTING, dtype=np.int8),
    )


def _pick(rng: np.random.Generator, population: int, k: int) -> Ints:
    """``k`` distinct ids, or all of them when the population is smaller."""
    return rng.choice(population, size=min(k, population), replace=False).astype(np.int64)


def _to_frame(tx: _Transactions, start: date) -> pd.DataFrame:
    order = np.argsort(tx.seconds, kind="stable")
    seconds = tx.seconds[order]
    scenario = tx.scenario[order]
    midnight = np.datetime64(start, "ns")
    return pd.DataFrame(
        {
            "TRANSACTION_ID": np.arange(len(order), dtype=np.int64),
            "TX_DATETIME": midnight + seconds.astype("timedelta64[s]"),
            "CUSTOMER_ID": tx.customer[order],
            "TERMINAL_ID": tx.terminal[order],
            "TX_AMOUNT": tx.amount[order],
            "TX_TIME_SECONDS": seconds,
            "TX_TIME_DAYS": seconds // SECONDS_PER_DAY,
            "TX_FRAUD": (scenario != FraudScenario.NONE).astype(np.int8),
            "TX_FRAUD_SCENARIO": scenario,
        }
    )
