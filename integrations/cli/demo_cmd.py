"""`joulemeter demo`: train a model, compress it four ways, meter everything, write a report;
or, with --experiment, "train large, then compress" on Transformers, or an LLM J/token sweep."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.markup import escape

from joulemeter.integrations.cli._common import (
    CountryOption,
    LedgerOption,
    fail,
    handle_errors,
    stderr,
    stdout,
)

if TYPE_CHECKING:
    from joulemeter.integrations.demo import DemoResult
    from joulemeter.integrations.experiment_llm import LLMDemoResult
    from joulemeter.integrations.experiment_tlc import TLCResult

DEVICES = ("auto", "cpu", "cuda")
#: each experiment and the report it writes when no --output is given
DEFAULT_REPORTS = {
    "compression": Path("joulemeter-demo.html"),
    "train-large-then-compress": Path("joulemeter-tlc.html"),
    "llm-sweep": Path("joulemeter-llm.html"),
}
EXPERIMENTS = tuple(DEFAULT_REPORTS)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


@handle_errors
def demo(
    quick: bool = typer.Option(
        False, "--quick", help="Fewer epochs and shorter inference trials (well under a minute)."
    ),
    experiment: str = typer.Option(
        "compression",
        "--experiment",
        help="compression (an MLP on digits, compressed four ways), train-large-then-compress "
        "(a small vs a larger Transformer on one training energy budget, the larger compressed) "
        "or llm-sweep (GPT-2 from its config: J per input/output token over batch sizes and lengths).",
    ),
    output: Optional[Path] = typer.Option(
        None, "--output", "-o",
        help="Where to write the HTML report (default: " + ", ".join(
            f"{path} for {name}" for name, path in DEFAULT_REPORTS.items()) + ").",
    ),
    country: Optional[str] = CountryOption,
    queries_per_day: float = typer.Option(
        1_000_000, "--queries-per-day", min=0, help="Inferences a day for the lifetime projection."
    ),
    days: float = typer.Option(
        365, "--days", min=0, help="Days of serving for the lifetime projection."
    ),
    budget_j: Optional[float] = typer.Option(
        None,
        "--budget-j",
        min=0,
        help="train-large-then-compress: training energy budget per model in joules (default: "
        "what the small model's training time measures).",
    ),
    ledger: Optional[str] = LedgerOption,
    device: str = typer.Option(
        "auto", "--device", help="auto (cuda when torch sees a GPU), cpu or cuda."
    ),
    threads: int = typer.Option(
        1,
        "--threads",
        min=1,
        help="torch CPU threads. 1 (the default) keeps trials of these small models steady; "
        "more threads wait on each other and on other work.",
    ),
) -> None:
    """Full vs compressed models on scikit-learn's digits: pruned, int8, half precision and
    distilled variants, each metered while it is made and while it serves inferences, compared
    in an HTML report. --experiment picks the Transformer experiments instead."""
    from joulemeter.integrations.compression import resolve_device
    from joulemeter.integrations.demo import DemoOptions, run_demo

    if device not in DEVICES:
        raise fail(f"unknown device {device!r}: choose one of {', '.join(DEVICES)}")
    if experiment not in EXPERIMENTS:
        raise fail(f"unknown experiment {experiment!r}: choose one of {', '.join(EXPERIMENTS)}")
    try:
        resolve_device(device)
    except ValueError as exc:
        raise fail(str(exc)) from None
    output = output or DEFAULT_REPORTS[experiment]
    if experiment == "train-large-then-compress":
        _train_large_then_compress(
            quick, output, country, queries_per_day * days, budget_j, ledger, device, threads
        )
        return
    if experiment == "llm-sweep":
        _llm_sweep(quick, output, ledger, device, threads)
        return
    options = DemoOptions(
        quick=quick,
        output=output,
        country=country,
        queries_per_day=queries_per_day,
        days=days,
        ledger=ledger,
        device=device,
        threads=threads,
    )
    with _ProgressBars() as on_progress:
        result = run_demo(options, on_progress=on_progress)
    _print_summary(result)


def _train_large_then_compress(
    quick: bool,
    output: Path,
    country: str | None,
    queries: float,
    budget_j: float | None,
    ledger: str | None,
    device: str,
    threads: int,
) -> None:
    from joulemeter.integrations.experiment_tlc import TLCOptions, run_tlc, tlc_stages

    options = TLCOptions(
        quick=quick, output=output, country=country,
        queries=queries, budget_j=budget_j, ledger=ledger, device=device, threads=threads,
    )
    with _ProgressBars(tlc_stages()) as on_progress:
        result = run_tlc(options, on_progress=on_progress)
    _print_tlc(result)


def _llm_sweep(quick: bool, output: Path, ledger: str | None, device: str, threads: int) -> None:
    from joulemeter.integrations.experiment_llm import LLMDemoOptions, run_llm_demo

    options = LLMDemoOptions(
        quick=quick, output=output, ledger=ledger, device=device,
        threads=threads,
    )
    stages = [("sweep", "meter generate at each sweep point"), ("report", "write the report")]
    with _ProgressBars(stages) as on_progress:
        result = run_llm_demo(options, on_progress=on_progress)
    _print_llm(result)


class _ProgressBars:
    """Rich progress bars on stderr, one per stage, updated by the run's callback."""

    def __init__(self, stages: list[tuple[str, str]] | None = None) -> None:
        self.stages = stages

    def __enter__(self) -> Callable[[str, int, int], None]:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        from joulemeter.integrations.demo import demo_stages

        self.descriptions = dict(self.stages if self.stages is not None else demo_stages())
        self.progress = Progress(
            TextColumn("{task.description:<48}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=stderr,
            disable=not stderr.is_terminal,
        )
        self.tasks: dict[str, int] = {}
        self.progress.start()
        return self.update

    def update(self, stage: str, done: int, total: int) -> None:
        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task(
                self.descriptions.get(stage, stage), total=total
            )
        self.progress.update(self.tasks[stage], completed=done, total=total)

    def __exit__(self, *exc_info: object) -> None:
        self.progress.stop()


def _print_summary(result: DemoResult) -> None:
    from rich import box
    from rich.table import Table

    from joulemeter.reports.render import formatting as fmt
    from joulemeter.reports.render.wording import verdict_words

    summary = result.summary
    provenances = sorted(
        {v.inference.provenance.value for v in summary.variants if v.inference.provenance}
    )
    table = Table(
        title=f"{summary.base_model} on {result.device}: energy {'/'.join(provenances)}",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for column in ("variant", "acc.", "J/1k inf.", "vs full (95 % CI)", "size", "p50", "made with"):
        justify = "left" if column == "variant" else "right"
        words = column.startswith("vs full")  # a verdict wraps, folding an interval too long for its column
        table.add_column(column, justify=justify, no_wrap=not words, overflow="fold" if words else "ellipsis")
    for v in summary.variants:
        meta = v.inference.metadata
        per_1000 = None if v.energy_per_inference_j is None else v.energy_per_inference_j * 1000
        table.add_row(
            v.variant,
            fmt.metadata_value("accuracy", v.accuracy),
            fmt.energy(per_1000),
            "baseline" if v.variant == summary.baseline else verdict_words(v.ratio, v.interval),
            fmt.size(meta.get("size_on_disk_bytes")),
            fmt.metadata_value("latency_p50_s", meta.get("latency_p50_s")),
            fmt.energy(v.production_energy_j),
        )
    stdout.print(table)
    for v in summary.variants:
        if v.variant != summary.baseline:
            stdout.print(f"{v.variant}: {summary.break_even_words(v)}", highlight=False, markup=False)
    if summary.estimated_domains:
        stdout.print(
            "[bold yellow]Estimates, not measurements:[/] "
            f"{', '.join(summary.estimated_domains)} energy is modelled from utilisation on this "
            "machine (see the report).",
            highlight=False,
        )
    for name, reason in summary.skipped.items():
        stdout.print(f"[dim]{escape(name)} skipped: {escape(reason)}[/]", highlight=False)
    _print_written(result.report_path, result.duration_s)


def _print_written(path: Path, duration_s: float) -> None:
    """Where the report went, and how long the whole demo took (measuring and writing)."""
    from joulemeter.reports.render import formatting as fmt

    stdout.print(f"report written to [bold]{escape(str(path))}[/]; the whole demo took {fmt.duration(duration_s)}",
                 highlight=False)


def _print_tlc(result: TLCResult) -> None:
    from rich import box
    from rich.table import Table

    from joulemeter.reports.render import formatting as fmt
    from joulemeter.reports.render.tlc import premise_words
    from joulemeter.reports.render.wording import verdict_words

    summary = result.summary
    table = Table(
        title=f"train large, then compress on {result.device}: budget {fmt.energy(summary.budget_j)} per model",
        title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
    )
    for column in ("model", "acc.", "J/1k queries", "vs small (95 % CI)", "lifecycle", "lifecycle vs small"):
        table.add_column(column, justify="left" if column == "model" else "right", overflow="fold")
    for m in summary.models:
        per_query = m.figures.energy_per_inference_j
        small = m.name == summary.baseline
        table.add_row(
            m.name,
            fmt.metadata_value("accuracy", None if m.accuracy is None else m.accuracy.value),
            fmt.energy(None if per_query is None else per_query * 1000),
            "baseline" if small else verdict_words(m.figures.ratio, m.figures.interval),
            fmt.energy(m.lifecycle_energy_j),
            "baseline" if small else verdict_words(None, summary.lifecycle_interval(m)),
        )
    stdout.print(table)
    stdout.print(premise_words(summary), highlight=False, markup=False)
    for name, reason in summary.compression.skipped.items():
        stdout.print(f"[dim]{escape(name)} skipped: {escape(reason)}[/]", highlight=False)
    _print_written(result.report_path, result.duration_s)


def _print_llm(result: LLMDemoResult) -> None:
    from rich import box
    from rich.table import Table

    from joulemeter.reports.llm import sweep_figures
    from joulemeter.reports.render import formatting as fmt
    from joulemeter.reports.render.llm import legend

    meta = result.run.metadata
    table = Table(
        title=f"{meta.get('model')} ({fmt.count(meta.get('parameters', 0))} parameters) on {result.device}",
        title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
    )
    for column in ("point", "J/input token", "J/output token", "TTFT", "output tokens/s"):
        table.add_column(column, justify="left" if column == "point" else "right")
    points = sweep_figures(result.run)
    for p in points:
        table.add_row(
            p.name, fmt.energy(p.per_input_token_j.value), fmt.energy(p.per_output_token_j.value),
            fmt.duration(p.ttft_s), fmt.number(p.output_tokens_per_s),
        )
    stdout.print(table)
    stdout.print(f"{legend(points)} TTFT = time to first token.", highlight=False, markup=False)
    _print_written(result.report_path, result.duration_s)
