"""The commands that work on data sets, with no service running: `simulate` and `evaluate`
(registered on the CLI in `service.cli`)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from models.durations import parse_duration
from models.feedback import FeedbackPolicy
from models.learners import DEFAULT_LEARNER, RECIPES
from models.period_metrics import EvaluationMetrics
from models.simulator import SimulationConfig
from models.simulator import simulate as run_simulation
from pipelines.offline.dataset_writer import write_dataset
from pipelines.offline.datasets import read_dataset
from pipelines.offline.evaluation import EvaluationOptions, EvaluationRun, write_scores
from pipelines.offline.evaluation import evaluate as run_evaluation
from pipelines.offline.report import write_report
from pipelines.retrain.job import RetrainOptions
from pipelines.retrain.loop import evaluate_with_retrain
from pipelines.retrain.loop_run import RetrainStep, Served
from service.cli_common import console, errors, progress_bar, user_errors, utc_day
from service.reporting import (
    print_evaluation,
    print_feedback_gain,
    print_parts,
)


def _params(text: str | None) -> dict[str, Any]:
    if text is None:
        return {}
    try:
        params = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"--params: not valid JSON ({error.msg})") from None
    if not isinstance(params, dict):
        raise ValueError('--params: expected a JSON object such as {"learning_rate": 0.05}')
    return params


def simulate(
    output: Annotated[
        Path, typer.Argument(help="File (.csv, .csv.gz, .parquet, .jsonl) or directory (.pkl)")
    ],
    customers: Annotated[int, typer.Option(help="Number of cards")] = 5000,
    terminals: Annotated[int, typer.Option(help="Number of terminals")] = 10000,
    days: Annotated[int, typer.Option(help="Days to simulate")] = 183,
    start_date: Annotated[str, typer.Option(help="First day, YYYY-MM-DD")] = "2018-04-01",
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same data")] = 0,
    layout: Annotated[
        str, typer.Option(help="handbook (public columns) or contract (our JSON, .jsonl only)")
    ] = "handbook",
    new_pattern_day: Annotated[
        int | None,
        typer.Option(help="Day from which a new fraud pattern (night card-testing) starts"),
    ] = None,
) -> None:
    """Generate a labelled transaction data set (the Fraud Detection Handbook's process)."""
    with user_errors():
        if layout not in ("handbook", "contract"):
            raise ValueError(f"--layout: expected handbook or contract, not {layout!r}")
        chosen: Literal["handbook", "contract"] = "handbook" if layout == "handbook" else "contract"
        config = SimulationConfig(
            customers=customers,
            terminals=terminals,
            days=days,
            start_date=date.fromisoformat(start_date),
            seed=seed,
            new_pattern_day=new_pattern_day,
        )
        with progress_bar("simulating days", days) as advance:
            frame = run_simulation(config, progress=advance)
        write_dataset(frame, output, layout=chosen)
    frauds = int(frame["TX_FRAUD"].sum())
    console.print(
        f"wrote {len(frame):,} transactions ({frauds:,} fraud, {frauds / len(frame):.2%}) "
        f"to {output}"
    )


def evaluate(
    data: Annotated[Path, typer.Option(help="Labelled data set (handbook columns or JSONL)")],
    label_delay: Annotated[str, typer.Option(help="Labels are revealed this late")] = "7d",
    model: Annotated[
        str, typer.Option(help=f"Online learner: {', '.join(RECIPES)}")
    ] = DEFAULT_LEARNER,
    params: Annotated[str | None, typer.Option(help="Learner parameters as JSON")] = None,
    test_start: Annotated[str | None, typer.Option(help="First test day, YYYY-MM-DD")] = None,
    test_end: Annotated[
        str | None, typer.Option(help="Last test day (inclusive), YYYY-MM-DD")
    ] = None,
    k: Annotated[int, typer.Option(help="Cards investigated per day (CP@k, alert budget)")] = 100,
    seed: Annotated[int, typer.Option(help="Seed of randomised learners")] = 0,
    scores_out: Annotated[
        Path | None, typer.Option(help="Write transaction_id,score as scored at arrival")
    ] = None,
    report: Annotated[
        Path | None, typer.Option(help="Directory for metrics.json and a PNG")
    ] = None,
    retrain_every: Annotated[
        str | None,
        typer.Option(help="Run the batch retrain job in the loop this often (event time), e.g. 7d"),
    ] = None,
    train_days: Annotated[int, typer.Option(help="Days of labels each retrain trains on")] = 28,
    test_days: Annotated[int, typer.Option(help="Days of each retrain's hold-out")] = 7,
    serve: Annotated[
        str | None,
        typer.Option(
            help="With --retrain-every: champion (promotion policy), batch (latest batch "
            "model) or blend (online and batch combined as the latest labels rank best); "
            "default: batch for --model batch, else champion"
        ),
    ] = None,
    feedback: Annotated[
        int,
        typer.Option(
            help="Investigators check this many of the day's riskiest cards and their verdicts "
            "are learned after --feedback-delay; the replay then runs without and with them "
            "(0: no investigators)",
            min=0,
        ),
    ] = 0,
    feedback_delay: Annotated[
        str, typer.Option(help="How long after the day ends the investigators' verdicts come")
    ] = "1d",
) -> None:
    """Replay a labelled data set with delayed labels and measure the online learner.

    With --retrain-every, the batch retrain job runs in the loop; --model batch then scores
    each transaction with the latest batch model, any other --model with the served champion
    (or, with --serve blend, a blend of the online learner and the latest batch model).
    """
    if retrain_every is not None and feedback:
        errors.print(
            "[bold red]error:[/] --feedback replays the online learner alone, "
            "not with --retrain-every",
            highlight=False,
        )
        raise typer.Exit(code=2)
    outputs = _Outputs(data, label_delay, scores_out, report)
    if retrain_every is not None:
        _evaluate_with_retrain(
            data,
            label_delay,
            model,
            params,
            test_start,
            test_end,
            k,
            seed,
            outputs,
            retrain_every,
            train_days,
            test_days,
            serve,
        )
        return
    with user_errors():
        options = _evaluation_options(model, params, label_delay, test_start, test_end, k, seed)
        checked = (
            FeedbackPolicy(feedback, int(parse_duration(feedback_delay).total_seconds()))
            if feedback
            else None
        )
        dataset = read_dataset(data)
        without = None
        if checked is not None:
            with progress_bar("replaying without feedback", len(dataset.transactions)) as advance:
                without = run_evaluation(dataset, options, progress=advance)
            options = replace(options, feedback=checked)
        with progress_bar("replaying transactions", len(dataset.transactions)) as advance:
            run = run_evaluation(dataset, options, progress=advance)
    print_evaluation(console, run, dataset)
    if without is not None:
        print_feedback_gain(console, without.metrics, run.metrics, feedback)
    outputs.write(run, f"fraudstream {model}", run.summary())


@dataclass(frozen=True)
class _Outputs:
    """Where `evaluate` writes the scores and the report it was asked for."""

    data: Path
    label_delay: str
    scores: Path | None
    report: Path | None

    def write(
        self,
        run: EvaluationRun,
        title: str,
        extra: Mapping[str, object],
        score_columns: Sequence[str] = ("score",),
    ) -> None:
        """Write each output asked for and say where; ``score_columns`` are the report's
        curves."""
        if self.scores is not None:
            write_scores(run, self.scores)
            console.print(f"scores written to {self.scores}")
        if self.report is not None:
            paths = write_report(
                run.metrics,
                run.scores,
                self.report,
                title=title,
                extra=extra,
                score_columns=score_columns,
                context=_context(self.data, self.label_delay, run.metrics),
            )
            console.print(f"report written to {paths.json} and {paths.png}")


def _evaluation_options(
    learner: str,
    params: str | None,
    label_delay: str,
    test_start: str | None,
    test_end: str | None,
    k: int,
    seed: int,
) -> EvaluationOptions:
    """The replay's options from the command line's flags (``--test-end`` is inclusive)."""
    end = utc_day(test_end, "--test-end")
    return EvaluationOptions(
        learner=learner,
        params=_params(params),
        label_delay=parse_duration(label_delay),
        test_start=utc_day(test_start, "--test-start"),
        test_end=None if end is None else end + timedelta(days=1),
        k=k,
        seed=seed,
    )


def _served(model: str, serve: str | None) -> Served:
    if serve is None:
        return "batch" if model == "batch" else "champion"
    if serve == "batch":
        return "batch"
    if serve == "champion":
        return "champion"
    if serve == "blend":
        return "blend"
    raise ValueError(f"--serve: expected champion, batch or blend, not {serve!r}")


def _context(data: Path, label_delay: str, metrics: EvaluationMetrics) -> str:
    """What a report's figure must say about how it was measured."""
    last_day = metrics.overall.end - timedelta(days=1)
    return (
        f"data {data.name}; labels {label_delay} late; test {metrics.overall.start:%Y-%m-%d} "
        f"to {last_day:%Y-%m-%d}; {metrics.k} cards a day investigated"
    )


def _evaluate_with_retrain(
    data: Path,
    label_delay: str,
    model: str,
    params: str | None,
    test_start: str | None,
    test_end: str | None,
    k: int,
    seed: int,
    outputs: _Outputs,
    retrain_every: str,
    train_days: int,
    test_days: int,
    serve: str | None,
) -> None:
    with user_errors():
        served = _served(model, serve)
        online = DEFAULT_LEARNER if model == "batch" else model
        options = _evaluation_options(online, params, label_delay, test_start, test_end, k, seed)
        retraining = RetrainOptions(
            train_days=train_days, delay=options.label_delay, test_days=test_days, seed=seed, k=k
        )
        dataset = read_dataset(data)

        def said(step: RetrainStep) -> None:
            errors.print(
                f"retrain at {step.at:%Y-%m-%d}: {step.decision} "
                + (
                    step.detail
                    if step.decision == "failed"
                    else f"(hold-out AP {step.candidate_ap:.3f} against the served "
                    f"scores' {step.champion_ap:.3f}, {step.training_rows:,} training rows)"
                ),
                highlight=False,
            )

        with progress_bar("replaying with retrains", len(dataset.transactions)) as advance:
            looped = evaluate_with_retrain(
                dataset,
                options,
                retraining,
                parse_duration(retrain_every),
                served,
                progress=advance,
                on_step=said,
            )
    title = {
        "batch": "batch (latest model)",
        "champion": f"served champion ({online} + batch)",
        "blend": f"blend of {online} and the latest batch model",
    }[served]
    run = EvaluationRun(
        options=replace(options, learner=title),
        metrics=looped.metrics,
        scores=looped.scores,
        seconds=looped.seconds,
    )
    print_evaluation(console, run, dataset)
    print_parts(console, looped, online)
    online_metrics = looped.online_metrics
    console.print(
        f"online learner ({online}) on the same weeks: mean weekly AP "
        f"{online_metrics.mean_weekly_average_precision:.3f}, CP@{k} "
        f"{online_metrics.mean_weekly_card_precision_at_k:.3f}"
    )
    outputs.write(run, f"fraudstream {title}", looped.summary(), ("score", "online_score"))
