"""Rich tables for the bench figures the command line prints: core, served, HTTP, stream, load,
memory.

Each bench's module computes its figures; these functions only lay them out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console

from pipelines.bench.core import CoreBenchRow
from pipelines.bench.served import ServedCost, ratios_to_first
from service.reporting import figures_table

if TYPE_CHECKING:
    # For annotations only: the bench's module needs httpx, which serving does not.
    from pipelines.bench.http import HttpBenchResult, WorkloadResult
    from pipelines.bench.load import LoadBenchResult
    from pipelines.bench.local_servers import Cores
    from pipelines.bench.memory import MemoryBenchResult
    from pipelines.bench.stream.run import StreamBenchResult


def print_bench(console: Console, rows: list[CoreBenchRow]) -> None:
    """Bench figures per learner, with the whole path's ratio to the bare river model."""
    table = figures_table(
        "per transaction, median of interleaved rounds (microseconds)",
        ("learner", "features", "score", "learn", "whole path", "bare model", "ratio", "tx/s"),
        labels=("learner",),
    )
    for row in rows:
        table.add_row(
            row.learner,
            f"{row.features_us:.1f}",
            f"{row.score_us:.1f}",
            f"{row.learn_us:.1f}",
            f"{row.whole_path_us:.1f}",
            f"{row.bare_model_us:.1f}",
            f"{row.overhead_ratio:.2f}x",
            f"{row.transactions_per_second:,.0f}",
        )
    console.print(table)


def print_served_bench(console: Console, costs: list[ServedCost]) -> None:
    """What each way of serving costs a transaction, with its ratio to the online learner."""
    table = figures_table(
        "per transaction, median of interleaved rounds (microseconds)",
        ("served", "score", "score and 3 reasons", "score vs online"),
        labels=("served",),
    )
    for cost, ratio in zip(costs, ratios_to_first(costs), strict=True):
        explain = "n/a" if cost.explain_us is None else f"{cost.explain_us:.1f}"
        table.add_row(cost.served, f"{cost.score_us:.1f}", explain, f"{ratio:.1f}x")
    console.print(table)


def _times(numerator: float, denominator: float) -> str:
    return f"{numerator / denominator:.1f}x" if denominator > 0 else "n/a"


def _cores(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _workload_row(workload: WorkloadResult) -> list[str]:
    return [
        workload.name,
        workload.path,
        f"{workload.clients}",
        f"{workload.transactions_per_request:,}",
        f"{workload.requests:,}",
        f"{workload.errors:,}",
        f"{workload.requests_per_second:,.0f}",
        f"{workload.transactions_per_second:,.0f}",
        f"{workload.p50_ms:.1f}",
        f"{workload.p95_ms:.1f}",
        f"{workload.p99_ms:.1f}",
        _cores(workload.client_cpu),
        _cores(workload.server_cpu),
    ]


def _machine_note(result: HttpBenchResult) -> str:
    load = "" if result.load_average is None else f"; load average {result.load_average:.2f}"
    if result.server_pid is None:
        return (
            f"server at {result.url}, not started here: its CPU is not measured; the load "
            f"generator had {result.cpu_count} cores{load}"
        )
    return (
        f"server (pid {result.server_pid}, stopped since) and load generator shared this "
        f"machine's {result.cpu_count} cores{load} at the start: the figures are what both "
        "together reach here, not the server alone"
    )


def _milliseconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} ms"


def _cpu_note(result: HttpBenchResult) -> str:
    """CPU per request: the server's cost, and what the load generator spent to cause it."""
    score, baseline, batch = result.score, result.baseline, result.batch
    parts = [f"score {_milliseconds(score.server_ms_per_request)}"]
    if baseline is not None:
        parts.append(f"baseline {_milliseconds(baseline.server_ms_per_request)}")
    per_transaction = batch.server_ms_per_request
    if per_transaction is not None:
        per_transaction /= batch.transactions_per_request
    parts.append(f"batch {_milliseconds(per_transaction)} per transaction")
    return (
        f"server CPU per request: {', '.join(parts)}; load generator CPU per request: "
        f"score {_milliseconds(score.client_ms_per_request)}"
        + (
            ""
            if baseline is None
            else f", baseline {_milliseconds(baseline.client_ms_per_request)}"
        )
    )


def print_http_bench(console: Console, result: HttpBenchResult) -> None:
    """Closed-loop HTTP figures per workload, the score/baseline ratio and the in-process rate."""
    options = result.options
    table = figures_table(
        f"HTTP, closed loop: {options.seconds:g} s per workload after "
        f"{options.warm_up:g} s of warm-up (batch: {options.batch_seconds:g} s)",
        (
            "workload",
            "endpoint",
            "clients",
            "tx/request",
            "requests",
            "errors",
            "req/s",
            "tx/s",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "client CPU",
            "server CPU",
        ),
        labels=("workload", "endpoint"),
    )
    for workload in (result.score, result.baseline, result.batch):
        if workload is not None:
            table.add_row(*_workload_row(workload))
    console.print(table)
    ratio = result.score_over_baseline
    if ratio is None:
        console.print(
            "no baseline: the server does not serve /v1/bench/constant "
            "(start it with FRAUDSTREAM_BENCH_ENDPOINTS=true)"
        )
    else:
        console.print(
            f"score / baseline: {ratio:.2f} of the constant endpoint's requests a second "
            "(features, score, stored vector and alert policy, behind the same HTTP stack)"
        )
    in_process = result.in_process
    console.print(
        f"in process, same learner ({result.learner}, {result.labels_learned:,} labels learned), "
        f"no HTTP: {in_process.single:,.0f} tx/s one per call "
        f"({_times(in_process.single, result.score.transactions_per_second)} the HTTP score "
        f"rate), {in_process.batched:,.0f} tx/s {result.batch.transactions_per_request:,} per "
        f"call ({_times(in_process.batched, result.batch.transactions_per_second)} the HTTP "
        "batch rate)"
    )
    console.print(_cpu_note(result))
    console.print(
        f"{_machine_note(result)}. CPU columns: cores used over the measured window "
        "(1.00 is one core, fully)."
    )


def print_stream_bench(console: Console, result: StreamBenchResult) -> None:
    """Rates in process and end to end, paced latency, and the targets, met or not."""
    options, latency = result.options, result.latency
    cpu_headings = ("bench CPU", "worker CPU", "Redis CPU", "broker CPU")

    def cpu(cores: Cores) -> list[str]:
        return [_cores(value) for value in (cores.bench, cores.workers, cores.redis, cores.broker)]

    rates = figures_table(
        f"stream: {options.transactions:,} transactions, {options.workers} worker(s), "
        f"model {result.model_version}",
        ("path", "transactions", "seconds", "tx/s", "of in-process", *cpu_headings),
        labels=("path",),
    )
    in_process = result.in_process.transactions_per_second
    for name, rate in (
        ("worker path, memory", result.in_process),
        ("detector only, memory", result.in_process_detector),
        ("worker path, Redis", result.in_process_redis),
        ("end to end, Kafka + Redis", result.end_to_end),
    ):
        rates.add_row(
            name,
            f"{rate.transactions:,}",
            f"{rate.seconds:.2f}",
            f"{rate.transactions_per_second:,.0f}",
            f"{rate.transactions_per_second / in_process:.2f}",
            *cpu(rate.cores),
        )
    console.print(rates)
    console.print(
        "In process: the worker path takes transaction records as bytes and gives score and "
        "alert records as bytes, through the worker's own decode, score and encode steps (the "
        "share is against it over memory); the detector only scores parsed transactions."
    )
    paced = figures_table(
        f"produce-to-score latency, paced for {options.seconds:g} s",
        (
            "tx/s asked",
            "tx/s sent",
            "transactions",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "max ms",
            *cpu_headings,
        ),
    )
    paced.add_row(
        f"{options.rate:,.0f}",
        f"{latency.achieved_rate:,.0f}",
        f"{latency.sent:,}",
        *(f"{ms:.1f}" for ms in (latency.p50_ms, latency.p95_ms, latency.p99_ms, latency.max_ms)),
        *cpu(latency.cores),
    )
    console.print(paced)
    targets = figures_table(
        "targets", ("target", "measured", "status", "note"), labels=("target", "status", "note")
    )
    for check in result.targets():
        status = "[green]met[/]" if check.met else "[bold red]NOT met[/]"
        targets.add_row(check.target, check.measured, status, check.note)
    console.print(targets)
    over_redis, end_to_end = result.in_process_redis, result.end_to_end
    per_transaction = ", ".join(
        f"{name} {'n/a' if us is None else f'{us:,.0f} µs'}"
        for name, us in (
            ("Redis in process", over_redis.cpu_us(over_redis.cores.redis)),
            ("worker end to end", end_to_end.cpu_us(end_to_end.cores.workers)),
            ("Redis end to end", end_to_end.cpu_us(end_to_end.cores.redis)),
            ("broker end to end", end_to_end.cpu_us(end_to_end.cores.broker)),
        )
    )
    load = "" if result.load_average is None else f", load average {result.load_average:.2f}"
    console.print(
        f"workers started in {result.start_up_seconds:.1f} s (outside the end-to-end rate, "
        f"which runs from the first batch committed to the last); backlog produced at "
        f"{result.produced_per_second:,.0f} tx/s; {result.score_records:,} score records for "
        f"{options.transactions:,} transactions. CPU per transaction: {per_transaction}. "
        f"{result.cpu_count} cores{load} at the start, shared by every process here; CPU "
        "columns: cores used over the window (1.00 is one core, fully; n/a: a server this "
        "bench did not start)."
    )


def print_load_bench(console: Console, result: LoadBenchResult) -> None:
    """Fixed-rate figures: requests, errors by kind, latency, the server's memory and CPU."""
    options = result.options
    latency_names = ("p50", "p95", "p99", "p99.9", "max")
    table = figures_table(
        f"POST /v1/score, open loop at {options.rate:,.0f} req/s over "
        f"{options.connections} connections: {options.seconds:g} s after {options.warm_up:g} s "
        "of warm-up",
        (
            "due",
            "answered 2xx",
            "errors",
            "req/s achieved",
            *(f"{name} ms" for name in latency_names),
            "server peak RSS MB",
            "server CPU",
            "client CPU",
        ),
    )
    memory = result.server_memory
    table.add_row(
        f"{result.scheduled:,}",
        f"{result.answered:,}",
        f"{result.error_count:,}",
        f"{result.achieved_rate:,.0f}",
        *(f"{result.latency_ms[name]:.1f}" for name in latency_names),
        "n/a" if memory is None else f"{memory.peak / 1e6:,.0f}",
        _cores(result.server_cores),
        _cores(result.client_cores),
    )
    console.print(table)
    if result.errors:
        kinds = ", ".join(f"{kind}: {count:,}" for kind, count in result.errors.items())
        console.print(f"[bold red]errors by kind:[/] {kinds}", highlight=False)
    note = result.target_note()
    status = "[green]met[/]" if result.target_met else "[bold red]NOT met[/]"
    console.print(
        f"target, {result.target}: {status}" + (f" ({note})" if note else ""),
        highlight=False,
    )
    generator, sent = result.generator_lag_ms, result.send_lag_ms
    console.print(
        "latency runs from each request's due time. The load generator queued requests "
        f"{generator['p99']:.1f} ms (p99), {generator['max']:.1f} ms (max) after they were due; "
        f"they were written {sent['p99']:.1f} ms (p99), {sent['max']:.1f} ms (max) after, "
        "waits for a free connection included. Timeout: "
        f"{options.timeout:g} s from the write to the answer."
    )
    start = result.server_memory_at_start
    if memory is not None and start is not None and result.server_cpu_seconds is not None:
        per_request = result.server_cpu_seconds / max(1, result.completed) * 1_000
        console.print(
            f"server (pid {result.server_pid}, stopped since): resident "
            f"{start.resident / 1e6:,.0f} MB when ready, {memory.resident / 1e6:,.0f} MB at the "
            f"end, peak (VmHWM) {memory.peak / 1e6:,.0f} MB; {per_request:.2f} ms of CPU per "
            "request."
        )
    else:
        console.print(f"server at {result.url}, not started here: its memory and CPU are not read.")
    loads = result.load_average
    load = (
        ""
        if loads is None
        else f", load average {loads[0]:.2f} at the start, {loads[1]:.2f} at the end"
    )
    console.print(
        f"{result.cpu_count} cores{load}, shared by the server and the load generator; CPU "
        "columns: cores used over the measured window (1.00 is one core, fully)."
    )


def print_memory_bench(console: Console, result: MemoryBenchResult) -> None:
    """Memory per variant, bytes per card or entry, what was held, and the budget, met or not."""
    options = result.options
    table = figures_table(
        f"memory: {options.cards:,} distinct cards paying {options.payments_per_card} times "
        f"over {options.active_days:g} days, arriving over {options.arrival_days:g} days; "
        f"{options.terminals:,} terminals; {options.transactions:,} transactions",
        (
            "store",
            "peak MB",
            "at end MB",
            "bytes per card/entry",
            "held at peak",
            "held at end",
            "seconds",
        ),
        labels=("store", "held at peak", "held at end"),
    )

    def held(counts: dict[str, int]) -> str:
        return ", ".join(f"{count:,} {name.replace('_', ' ')}" for name, count in counts.items())

    cap = options.card_cap
    for name, variant in (
        ("feature state, eviction on", result.state),
        (f"feature state, capped at {cap:,} cards", result.capped),
        (
            f"pending vectors, TTL {result.pending_ttl_seconds / 86_400:g} days, "
            f"cap {result.pending_cap:,}",
            result.pending,
        ),
    ):
        table.add_row(
            name,
            f"{variant.growth_bytes / 1e6:,.0f}",
            f"{variant.end_growth_bytes / 1e6:,.0f}",
            # Under the card cap, terminals and ids outweigh the cards: a figure per card
            # would mislead.
            "" if variant is result.capped else f"{variant.bytes_per_entity:,.0f}",
            held(variant.peak_held),
            held(variant.end_held),
            f"{variant.seconds:,.0f}",
        )
    console.print(table)
    state = result.state
    evicted = options.cards - state.end_held["cards"]
    status = "[green]met[/]" if result.budget_met else "[bold red]NOT met[/]"
    console.print(
        f"budget, feature state at its peak: {options.budget_bytes / 1e6:,.0f} MB for "
        f"{options.cards:,} cards ({options.budget_bytes / options.cards:,.0f} bytes a card); "
        f"measured {state.growth_bytes / 1e6:,.0f} MB: {status}",
        highlight=False,
    )
    load = "" if result.load_average is None else f" (load average {result.load_average:.2f})"
    console.print(
        f"{evicted:,} cards evicted as idle by the end. Peak and end: resident memory of a fresh "
        "process over its resident memory before streaming (allocator overhead included; freed "
        f"memory is kept by the allocator for reuse, so the end stays near the peak){load}."
    )
