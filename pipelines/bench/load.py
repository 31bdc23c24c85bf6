"""A fixed request rate on ``POST /v1/score``: errors, latency, and the server's memory and CPU.

The load is open-loop. Request ``i`` is due at ``start + i / rate`` whatever became of the ones
before it, and its latency runs from that due time, not from when it went out: a server that
stalls shows as every request it held up, not as one slow answer (coordinated omission).
Requests go out over a fixed pool of keep-alive connections, one in flight on each (HTTP/1.1
without pipelining); when every connection is busy, a due request waits for one, and the wait
is part of its latency. How late the load generator queued each request after it was due is
reported beside the latency, so a generator that fell behind (or was starved of CPU) is seen,
not mistaken for a slow server; so is how long requests waited for a free connection.

Each request is a distinct transaction (cards and terminals drawn from a simulated population,
event time advancing, as `TransactionBodies` makes them). Errors are counted by kind: a status
outside 2xx, no answer within the timeout, or a connection that failed; after a timeout or a
failure the connection is dropped and the next request on it opens a new one. The server's
peak resident memory is its VmHWM at the end of the run, the most it held since it started.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import uvloop

from pipelines.bench.http import SCORE_PATH, TransactionBodies, percentile
from pipelines.bench.load_client import KeepAliveConnection, LoadClientError
from pipelines.bench.memory import ProcessMemory, process_memory
from pipelines.bench.run import cores, load_average
from pipelines.bench.server_process import ServerProcess, process_cpu_seconds, serve
from pipelines.options import TrafficOptions, require_positive

TARGET_RATE = 1_000.0
TARGET_SECONDS = 60.0
TARGET_CORES = 2

SERVER_ENVIRONMENT = {
    # An access-log line per request would be measured along with the API.
    "FRAUDSTREAM_LOG_LEVEL": "warning",
}

_Job = tuple[float, bytes]
"""When a request is due (``perf_counter`` seconds), and its body."""


@dataclass(frozen=True)
class LoadBenchOptions(TrafficOptions):
    """The rate to hold, for how long, over how many connections, against which server."""

    warm_up: float = 5.0
    """Seconds at the same rate before the measured window, not counted."""
    rate: float = TARGET_RATE
    """Requests a second, due at fixed intervals."""
    seconds: float = TARGET_SECONDS
    connections: int = 16
    timeout: float = 1.0
    """Seconds a request may take from being written to being answered."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require_positive(self, "rate", "seconds", "connections", "timeout")

    @property
    def first_measured(self) -> int:
        """The index of the first request due in the measured window."""
        return math.ceil(self.warm_up * self.rate)

    @property
    def total_requests(self) -> int:
        return math.ceil((self.warm_up + self.seconds) * self.rate)

    @property
    def progress_seconds(self) -> int:
        """Seconds of load in all, warm-up included: the steps ``progress`` is called with."""
        return math.ceil(self.warm_up + self.seconds)

    @property
    def scheduled(self) -> int:
        """Requests due in the measured window."""
        return self.total_requests - self.first_measured


@dataclass(frozen=True)
class LoadBenchResult:
    """What the measured window's requests met, and what the server used meanwhile."""

    options: LoadBenchOptions
    url: str
    server_pid: int | None
    """The server process the bench started (and stopped), if it started one."""
    cpu_count: int
    load_average: tuple[float, float] | None
    """The machine's one-minute load average at the start and at the end of the run."""
    answered: int
    """Requests answered with a 2xx status."""
    errors: dict[str, int]
    """Requests that failed, by kind: ``HTTP <status>``, ``timeout``, ``connection: <error>``."""
    seconds: float
    """From the window's first due time to its last request's end."""
    latency_ms: dict[str, float]
    """From due time to answer, over every answer (any status): p50 … p99.9 and max."""
    generator_lag_ms: dict[str, float]
    """From due time to the generator queuing the request: p99 and max; its own delay."""
    send_lag_ms: dict[str, float]
    """From due time to the request being written (generator delay plus the wait for a free
    connection): p99 and max."""
    server_memory: ProcessMemory | None
    """The server's resident memory at the end and its peak since it started."""
    server_memory_at_start: ProcessMemory | None
    server_cpu_seconds: float | None
    """CPU the server used over the measured window; unknown for a server not started here."""
    client_cpu_seconds: float

    @property
    def scheduled(self) -> int:
        return self.options.scheduled

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def completed(self) -> int:
        return self.answered + self.error_count

    @property
    def achieved_rate(self) -> float:
        return self.completed / self.seconds if self.seconds > 0 else math.nan

    @property
    def server_cores(self) -> float | None:
        if self.server_cpu_seconds is None or self.seconds <= 0:
            return None
        return self.server_cpu_seconds / self.seconds

    @property
    def client_cores(self) -> float:
        return self.client_cpu_seconds / self.seconds if self.seconds > 0 else math.nan

    @property
    def target(self) -> str:
        return (
            f"0 errors over {TARGET_SECONDS:g} s at {TARGET_RATE:,.0f} req/s "
            f"on {TARGET_CORES} cores"
        )

    @property
    def target_met(self) -> bool:
        """No errors, and every request due in the window answered."""
        return self.scheduled > 0 and self.error_count == 0 and self.answered == self.scheduled

    def target_note(self) -> str:
        """Where this run's conditions differ from the target's, if anywhere."""
        options = self.options
        return "; ".join(
            note
            for differs, note in (
                (options.rate != TARGET_RATE, f"{options.rate:,.0f} req/s asked"),
                (options.seconds < TARGET_SECONDS, f"{options.seconds:g} s measured"),
                (self.cpu_count != TARGET_CORES, f"{self.cpu_count} cores here"),
            )
            if differs
        )


@dataclass
class _Tally:
    measure_from: float
    latencies: list[float] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)
    generator_lags: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    answered: int = 0
    last_done: float = 0.0

    def record(self, due: float, sent: float, done: float, status: int | None, error: str) -> None:
        if due < self.measure_from:
            return
        self.lags.append(sent - due)
        self.last_done = max(self.last_done, done)
        if status is not None:
            self.latencies.append(done - due)
            if 200 <= status < 300:
                self.answered += 1
                return
            error = f"HTTP {status}"
        self.errors[error] += 1


async def _schedule(
    queue: asyncio.Queue[_Job | None],
    bodies: TransactionBodies,
    options: LoadBenchOptions,
    tally: _Tally,
    progress: Callable[[int], None] | None,
) -> None:
    """Put each request on the queue at its due time; late wake-ups catch up at once."""
    interval = 1 / options.rate
    started = tally.measure_from - options.first_measured * interval
    reported = 0
    for index in range(options.total_requests):
        due = started + index * interval
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((due, bodies.one()))
        if index >= options.first_measured:
            tally.generator_lags.append(time.perf_counter() - due)
        if progress is not None and (elapsed := int(due - started)) > reported:
            reported = elapsed
            progress(elapsed)
    for _ in range(options.connections):
        queue.put_nowait(None)


async def _send(url: str, queue: asyncio.Queue[_Job | None], tally: _Tally, timeout: float) -> None:
    """One connection's requests, taken from the queue as it becomes free."""
    connection: KeepAliveConnection | None = None
    try:
        while (job := await queue.get()) is not None:
            due, body = job
            sent = time.perf_counter()
            status: int | None = None
            error = ""
            try:
                async with asyncio.timeout(timeout):
                    if connection is None:
                        connection = await KeepAliveConnection(url).__aenter__()
                    status = await connection.post(SCORE_PATH, body)
            except TimeoutError:
                error = "timeout"
            # IndexError and ValueError: a status line cut short when the server closed.
            except (
                OSError,
                asyncio.IncompleteReadError,
                LoadClientError,
                IndexError,
                ValueError,
            ) as failure:
                error = f"connection: {type(failure).__name__}"
            if status is None and connection is not None:
                # Its answer may still come and would be read as the next request's.
                await connection.__aexit__(None, None, None)
                connection = None
            tally.record(due, sent, time.perf_counter(), status, error)
    finally:
        if connection is not None:
            await connection.__aexit__(None, None, None)


def _quantiles_ms(values: list[float], names: dict[str, float]) -> dict[str, float]:
    ordered = sorted(values)
    figures = {name: percentile(ordered, q) * 1_000 for name, q in names.items()}
    figures["max"] = ordered[-1] * 1_000 if ordered else math.nan
    return figures


@dataclass(frozen=True)
class _Window:
    tally: _Tally
    seconds: float
    server_cpu: float | None
    client_cpu: float


async def _load(
    server: ServerProcess, options: LoadBenchOptions, progress: Callable[[int], None] | None
) -> _Window:
    bodies = TransactionBodies(
        options.cards, options.terminals, options.first_event_time(), options.seed
    )
    queue: asyncio.Queue[_Job | None] = asyncio.Queue()
    started = time.perf_counter() + 0.1
    measure_from = started + options.first_measured / options.rate
    tally = _Tally(measure_from)
    senders = [
        asyncio.create_task(_send(server.url, queue, tally, options.timeout))
        for _ in range(options.connections)
    ]
    schedule = asyncio.create_task(_schedule(queue, bodies, options, tally, progress))
    await asyncio.sleep(max(0.0, measure_from - time.perf_counter()))
    server_cpu, client_cpu = process_cpu_seconds(server.pid), time.process_time()
    await schedule
    await asyncio.gather(*senders)
    server_after = process_cpu_seconds(server.pid)
    return _Window(
        tally,
        max(tally.last_done, measure_from) - measure_from,
        None if server_cpu is None or server_after is None else server_after - server_cpu,
        time.process_time() - client_cpu,
    )


def bench_load(
    options: LoadBenchOptions | None = None, progress: Callable[[int], None] | None = None
) -> LoadBenchResult:
    """Hold ``options.rate`` requests a second on a server; ``progress`` gets seconds elapsed."""
    options = options or LoadBenchOptions()
    load_before = load_average()
    with serve(options.url, SERVER_ENVIRONMENT) as server:
        memory_at_start = None if server.pid is None else process_memory(server.pid)
        # uvloop, as the server runs on: the load generator must cost less than what it measures.
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            window = runner.run(_load(server, options, progress))
        memory = None if server.pid is None else process_memory(server.pid)
    load_after = load_average()
    tally = window.tally
    return LoadBenchResult(
        options=options,
        url=server.url,
        server_pid=server.pid,
        cpu_count=cores(),
        load_average=None
        if load_before is None or load_after is None
        else (load_before, load_after),
        answered=tally.answered,
        errors=dict(tally.errors.most_common()),
        seconds=window.seconds,
        latency_ms=_quantiles_ms(
            tally.latencies, {"p50": 0.50, "p95": 0.95, "p99": 0.99, "p99.9": 0.999}
        ),
        generator_lag_ms=_quantiles_ms(tally.generator_lags, {"p99": 0.99}),
        send_lag_ms=_quantiles_ms(tally.lags, {"p99": 0.99}),
        server_memory=memory,
        server_memory_at_start=memory_at_start,
        server_cpu_seconds=window.server_cpu,
        client_cpu_seconds=window.client_cpu,
    )
