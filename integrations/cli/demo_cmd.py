"""`joulemeter demo`: train a model, compress it four ways, meter everything, write a report."""

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

DEVICES = ("auto", "cpu", "cuda")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


@handle_errors
def demo(
    quick: bool = typer.Option(
        False, "--quick", help="Fewer epochs and shorter inference trials (well under a minute)."
    ),
    output: Path = typer.Option(
        Path("joulemeter-demo.html"), "--output", "-o", help="Where to write the HTML report."
    ),
    country: Optional[str] = CountryOption,
    queries_per_day: float = typer.Option(
        1_000_000, "--queries-per-day", min=0, help="Inferences a day for the lifetime projection."
    ),
    days: float = typer.Option(
        365, "--days", min=0, help="Days of serving for the lifetime projection."
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
    distilled variants, each metered in production and inference, compared in an HTML report."""
    from joulemeter.integrations.compression import resolve_device
    from joulemeter.integrations.demo import DemoOptions, run_demo

    if device not in DEVICES:
        raise fail(f"unknown device {device!r}: choose one of {', '.join(DEVICES)}")
    try:
        resolve_device(device)
    except ValueError as exc:
        raise fail(str(exc)) from None
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


class _ProgressBars:
    """Rich progress bars on stderr, one per stage, updated by run_demo's callback."""

    def __enter__(self) -> Callable[[str, int, int], None]:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        from joulemeter.integrations.demo import demo_stages

        self.descriptions = dict(demo_stages())
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
    from joulemeter.reports.render.wording import ratio_words

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
    for column in ("variant", "acc.", "J/1k inf.", "vs full", "size", "p50", "made with"):
        justify = "left" if column == "variant" else "right"
        table.add_column(column, justify=justify, no_wrap=column != "vs full")
    for v in summary.variants:
        meta = v.inference.metadata
        per_1000 = None if v.energy_per_inference_j is None else v.energy_per_inference_j * 1000
        table.add_row(
            v.variant,
            f"{v.accuracy:.1%}" if isinstance(v.accuracy, (int, float)) else fmt.DASH,
            fmt.energy(per_1000),
            "baseline" if v.variant == summary.baseline else ratio_words(v.ratio),
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
    stdout.print(
        f"report written to [bold]{escape(str(result.report_path))}[/] in {fmt.duration(result.duration_s)}",
        highlight=False,
    )
