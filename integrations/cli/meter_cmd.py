"""`joulemeter devices | run | runs | show | export`: measuring and reading the ledger."""

from __future__ import annotations

import io
import math
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.markup import escape

from joulemeter.integrations.cli._common import (
    JsonOption,
    LedgerOption,
    echo_document,
    error_message,
    fail,
    handle_errors,
    print_json,
    stderr,
    stdout,
)
from joulemeter.integrations.cli.selection import (
    NameOption,
    ProjectOption,
    RunFilters,
    SinceOption,
    StatusOption,
    TagOption,
    UntilOption,
    chosen_runs,
)
from joulemeter.meter.errors import JoulemeterError
from joulemeter.meter.formats import EXPORT, format_names, output_format
from joulemeter.reports.render import formatting as fmt

if TYPE_CHECKING:
    from joulemeter.meter import Domain, EnergyMeter, Run
    from joulemeter.meter.store.salvage import Readable

#: `runs` shows names and projects cut to these widths, ending in "…" (`show` has them whole)
_NAME_COLUMN_CHARS = 40
_PROJECT_COLUMN_CHARS = 20


def register(app: typer.Typer) -> None:
    app.command("devices")(devices)
    app.command(
        "run",
        options_metavar="[OPTIONS] -- CMD [ARGS]...",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )(run)
    app.command("runs")(runs)
    app.command("show")(show)
    app.command("export")(export)


@handle_errors
def devices(json_output: bool = JsonOption) -> None:
    """Every power source: whether it reads here, how (counter/sampled/estimated), and if not, why."""
    from joulemeter.meter.sources import discover, statuses

    found = statuses()
    chosen = discover()
    if json_output:
        print_json(
            {
                "sources": [
                    {
                        "source": s.source,
                        "available": s.available,
                        "domains": [d.to_dict() for d in s.domains],
                        "reason": s.reason,
                        "fix": s.fix,
                    }
                    for s in found
                ],
                "metered_domains": [d.to_dict() for d in chosen.domains],
                "fallbacks": chosen.fallbacks,
            }
        )
        for source in chosen.sources:
            source.close()
        return
    from rich.table import Table

    from rich.padding import Padding

    # what reads, as a table; what does not, as a list, whose reasons and fixes need the width
    table = Table(title="Power sources that read here", title_justify="left")
    for column in ("source", "domain", "measured", "method"):
        table.add_column(column, overflow="fold", no_wrap=column == "measured")
    for s in found:
        for d in s.domains:
            note = f" [yellow]({escape(d.note)})[/]" if d.note else ""
            table.add_row(escape(s.source), escape(f"{d.name}: {d.device}"), d.provenance.value, escape(d.method) + note)
    if table.rows:
        stdout.print(table)
    unavailable = [s for s in found if not s.available]
    if unavailable:
        stdout.print("[bold]Power sources that do not read here[/]")
    for s in unavailable:  # wrapped lines keep their indent
        stdout.print(Padding(f"[red]{escape(s.source)}[/]: {escape(s.reason or '')}", (0, 0, 0, 2)))
        if s.fix:
            stdout.print(Padding(f"[dim]fix: {escape(s.fix)}[/]", (0, 0, 0, 4)))
    stdout.print("The meter will read: " + ", ".join(f"{d.name} ({d.provenance.value})" for d in chosen.domains),
                 markup=False)
    for note in chosen.fallbacks:
        stdout.print(f"[yellow]fallback:[/] {escape(note)}")
    for source in chosen.sources:
        source.close()


@handle_errors
def run(
    ctx: typer.Context,
    name: Optional[str] = typer.Option(None, "--name", "-n", metavar="NAME", help="Run name (default: the command)."),
    project: str = typer.Option("default", "--project", metavar="PROJECT", help="Project the run belongs to."),
    tag: list[str] = typer.Option([], "--tag", "-t", metavar="TAG", help="Tag the run (repeatable)."),
    interval: Optional[float] = typer.Option(None, "--interval", min=0.001, metavar="SECONDS", help="Timeline interval in seconds, fixed (default: 1 s while power moves, stretching to 30 s while it holds steady; 0.1 s, fixed, where power is sampled)."),
    max_interval: Optional[float] = typer.Option(None, "--max-interval", min=0.001, metavar="SECONDS", help="Longest interval the adaptive timeline stretches to while power holds steady (default: 30 s; below 1 s, the timeline is fixed at it)."),
    no_timeline: bool = typer.Option(False, "--no-timeline", help="Read energy counters only at start, stop and every 30 s (a heartbeat), as Zeus reads them at the edges: next to no CPU, no power timeline or live view; every device needs an energy counter."),
    devices: Optional[list[str]] = typer.Option(None, "--device", "-d", metavar="KIND|DOMAIN", help="Meter only these kinds or domains (gpu, gpu:0, cpu, ram)."),
    idle_baseline: float = typer.Option(0.0, "--idle-baseline", min=0.0, metavar="SECONDS", help="Seconds of idle power to measure first."),
    process_only: bool = typer.Option(False, "--process-only", help="Estimate CPU/RAM of the command's process tree, not the machine."),
    prometheus_port: Optional[int] = typer.Option(None, "--prometheus-port", metavar="PORT", help="Serve live power and energy for Prometheus on this port (127.0.0.1)."),
    ledger: Optional[str] = LedgerOption,
    json_output: bool = typer.Option(False, "--json", help="The run as JSON on stdout (SI units, provenance); the command's own stdout goes to stderr."),
) -> None:
    """Meter a command: `joulemeter run [OPTIONS] -- CMD ARGS…`. Exits with the command's exit code."""
    from joulemeter.meter import EnergyMeter
    from joulemeter.meter.command import redacted, run_command

    argv = list(ctx.args)
    if not argv:
        raise fail("no command given: joulemeter run -- python train.py")
    _check_runnable(argv[0])  # before metering, so a typo leaves no failed run behind
    for flag, seconds in (("--interval", interval), ("--max-interval", max_interval)):
        if seconds is not None and not math.isfinite(seconds):
            raise fail(f"{flag} must be a finite number of seconds, got {seconds:g}")
    if no_timeline and (interval is not None or max_interval is not None):
        raise fail("--interval and --max-interval set the timeline: give them or --no-timeline, not both")
    if interval is not None and max_interval is not None and max_interval < interval:
        raise fail(f"--max-interval ({max_interval:g} s) must be at least --interval ({interval:g} s)")
    shown = fmt.shorten(" ".join(redacted([Path(argv[0]).name, *argv[1:]])), 80)
    meter = EnergyMeter(
        name or shown,
        project=project,
        tags=tag,
        devices=devices,
        interval_s=interval,
        max_interval_s=max_interval,
        timeline=not no_timeline,
        idle_baseline_s=idle_baseline,
        ledger=ledger,
        pid=os.getpid() if process_only else None,  # our children are the command's tree
    )
    exporter = _start_exporter(meter, prometheus_port)
    live = _LiveView(meter) if sys.stderr.isatty() and not json_output and not no_timeline else None
    try:
        # with --json, stdout carries only the JSON: the command's output goes to stderr
        result = run_command(argv, meter, on_tick=live.update if live else None,
                             stdout=sys.stderr.fileno() if json_output else None)
    except JoulemeterError as exc:
        if not _never_started(meter):
            raise
        raise fail(f"{error_message(exc).rstrip('.')}; `{shown}` was not run") from None
    except FileNotFoundError as exc:
        raise fail(f"command not found: {exc.filename or argv[0]}", 127) from None
    except PermissionError:
        raise fail(f"permission denied: {argv[0]}", 126) from None
    finally:
        if live:
            live.close()
        if exporter is not None:
            exporter.stop()
    if json_output:
        print_json(result.run.to_dict(samples=False) | {"exit_code": result.returncode})
    else:
        _print_run_summary(result.run, console=stderr)
    raise typer.Exit(result.returncode)


def _never_started(meter: EnergyMeter) -> bool:
    """Whether the meter failed before the command began (a refused ledger, a bad config):
    it holds no run, or one it never stopped, as it stops every run whose command it started."""
    from joulemeter.meter.errors import MeterStateError

    try:
        return meter.run.ended_at is None
    except MeterStateError:
        return True


def _check_runnable(command: str) -> None:
    """Exit as a shell would for a command that cannot run: 127 not found, 126 not executable."""
    if shutil.which(command) is not None:
        return
    path = Path(command)
    if os.sep in command and path.exists():
        why = "is a directory" if path.is_dir() else "permission denied (not executable)"
        raise fail(f"{command}: {why}", 126)
    raise fail(f"command not found: {command}", 127)


@handle_errors
def runs(
    project: Optional[str] = ProjectOption,
    tag: Optional[str] = TagOption,
    name: Optional[str] = NameOption,
    status: Optional[str] = StatusOption,
    since: Optional[str] = SinceOption,
    until: Optional[str] = UntilOption,
    limit: int = typer.Option(20, "--limit", min=1, help="Show at most this many runs."),
    superseded: bool = typer.Option(False, "--superseded", help="Also list the parts of distributed jobs that a crash left beside their merged run (counted once, in that run)."),
    ledger: Optional[str] = LedgerOption,
    json_output: bool = JsonOption,
) -> None:
    """List runs in the ledger, newest first."""
    from joulemeter.meter.errors import LedgerCorruptError
    from joulemeter.meter.store import open_ledger
    from joulemeter.meter.store.salvage import readable_runs

    filters = RunFilters(project, tag, name, status, since, until)
    readable = None
    with open_ledger(ledger, for_reading=True) as book:
        try:
            found = book.list_runs(**filters.as_kwargs(), limit=limit, superseded=superseded)
            total = (book.count_runs(**filters.as_kwargs(), superseded=superseded)
                     if len(found) == limit else len(found))
        except LedgerCorruptError:
            if book.damage is None:
                raise
            readable = readable_runs(book, **filters.as_kwargs(), superseded=superseded)
            found, total = readable.runs[:limit], len(readable.runs)
        location = book.location
    if json_output:
        print_json([r.to_dict(samples=False) for r in found])
    elif not found:
        stderr.print(f"no runs {'match these filters ' if filters.given() else ''}"
                     f"{'can be read ' if readable else ''}in {location}"
                     + ("" if readable else ": meter one with `joulemeter run -- CMD` or `joulemeter demo`"),
                     highlight=False, markup=False, soft_wrap=True)
    else:
        shown = f"showing {len(found)} of {total} runs (--limit)" if total > len(found) else f"{total} run(s)"
        stdout.print(runs_table(found, f"{shown}, newest first"))
    if readable is not None:
        stderr.print(_damage_note(readable, location), highlight=False, markup=False, soft_wrap=True)


def _damage_note(readable: Readable, location: str) -> str:
    """What a damaged ledger's listing could not read, and how to recover what it could."""
    said = [f"{location} has damaged pages: the runs that can be read are listed"]
    unreadable = readable.unreadable_runs
    if unreadable is None:
        said.append("its runs table cannot be read at all")
    elif unreadable:
        said.append(f"{unreadable} run(s) could not be read")
    if readable.partial:
        lost = sorted({table for tables in readable.partial.values() for table in tables})
        said.append(f"{len(readable.partial)} run(s) were read without their {', '.join(lost)} "
                    "(`joulemeter show ID` says which)")
    return "; ".join(said) + (f". `joulemeter salvage {location} NEW.sqlite` copies what can be read into a "
                              "new ledger; then put NEW.sqlite in its place")


def runs_table(found: list[Run], title: str) -> object:
    """Runs as a rich table of one line each in the terminal's width: long names cut with "…" in
    the middle (`show` has them whole), the project only where the runs are of more than one."""
    from rich.table import Table

    from joulemeter.meter.store.salvage import LOST_KEY

    columns = ["id", "name", "project", "status", "started UTC", "duration", "energy", "measured"]
    if len({r.project for r in found}) == 1:
        columns.remove("project")
    rows = [
        {
            "id": r.id[:8],
            "name": fmt.shorten_middle(r.name, _NAME_COLUMN_CHARS),
            "project": fmt.shorten(r.project, _PROJECT_COLUMN_CHARS),
            "status": r.status.value,
            "started UTC": r.started_at[5:16].replace("T", " "),
            "duration": fmt.duration(r.duration_s),
            "energy": fmt.energy(None if "energy" in r.metadata.get(LOST_KEY, ()) else r.total_energy_j),
            "measured": r.provenance.value if r.provenance else "—",
        }
        for r in found
    ]
    table = Table(title=title, box=None, padding=(0, 1, 0, 0),
                  header_style="bold underline", title_justify="left")
    natural = {c: max(len(c), *(len(row[c]) for row in rows)) for c in columns}
    # every column but the name and project keeps its whole width; those two share the rest
    room = stdout.width - sum(w + 1 for c, w in natural.items() if c not in ("name", "project")) - 2
    if "project" in natural:
        natural["project"] = max(min(natural["project"], room // 3), 7)
        room -= natural["project"] + 1
    natural["name"] = max(min(natural["name"], room), 8)
    for row in rows:  # cut in the middle: runs named alike differ at the end ("digits…/int8")
        row["name"] = fmt.shorten_middle(row["name"], natural["name"])
    for column in columns:
        table.add_column(column, no_wrap=True, overflow="ellipsis", width=natural[column])
    for row in rows:
        table.add_row(*(_status_markup(row[c]) if c == "status" else escape(row[c]) for c in columns))
    return table


@handle_errors
def show(
    run_ref: str = typer.Argument(..., metavar="RUN", help="Run id, id prefix, unique name, or `last`."),
    ledger: Optional[str] = LedgerOption,
    json_output: bool = JsonOption,
) -> None:
    """One run in detail: energy per domain and how it was measured, windows, gaps."""
    from joulemeter.meter.store import open_ledger
    from joulemeter.meter.store.salvage import read_what_can_be_read

    with open_ledger(ledger, for_reading=True) as book:
        # with samples (the peak of total power needs them), unless they are in damaged pages
        found = read_what_can_be_read(book, run_ref) if book.damage else book.get_run(run_ref)
    if found is None:
        raise fail(f"run {run_ref!r} is in damaged pages of {book.location} and cannot be read; "
                   f"`joulemeter salvage {book.location} NEW.sqlite` copies the runs that can be")
    if json_output:
        print_json(found.to_dict(samples=False))
        return
    _print_run_summary(found, console=stdout, detail=True)


@handle_errors
def export(
    run_refs: list[str] = typer.Argument(None, metavar="RUN", help="Run ids, id prefixes, unique names, or `last`; or choose runs with the filters."),
    fmt: str = typer.Option("json", "--format", "-f", help=", ".join(format_names(EXPORT)) + "."),
    table: str = typer.Option("samples", "--table", help="For csv/parquet: samples, windows or domains."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="File to write (default: stdout for json/csv)."),
    project: Optional[str] = ProjectOption,
    tag: Optional[str] = TagOption,
    name: Optional[str] = NameOption,
    status: Optional[str] = StatusOption,
    since: Optional[str] = SinceOption,
    until: Optional[str] = UntilOption,
    ledger: Optional[str] = LedgerOption,
) -> None:
    """Export runs: full JSON, a CSV/Parquet table, or CodeCarbon's emissions.csv format."""
    from joulemeter.meter.export import TABLES, export_runs
    from joulemeter.meter.store import open_ledger

    spec = output_format(fmt, EXPORT)
    if table not in TABLES:
        raise fail(f"unknown table {table!r}: choose one of {', '.join(TABLES)}")
    if spec.binary and output is None:
        raise fail(f"{fmt} is binary: give an output file with -o")
    with open_ledger(ledger, for_reading=True) as book:
        found = chosen_runs(book, run_refs or [], RunFilters(project, tag, name, status, since, until),
                            what="runs to export")
    if output is None:
        text = io.StringIO()
        export_runs(found, fmt, text, table=table)
        echo_document(text.getvalue())
        return
    export_runs(found, fmt, output, table=table)
    stderr.print(f"wrote {len(found)} run(s) to {output}", markup=False)


# -- rendering helpers ----------------------------------------------------------------
def _status_markup(status: str) -> str:
    colour = {"completed": "green", "running": "cyan", "interrupted": "yellow", "failed": "red"}
    return f"[{colour.get(status, 'white')}]{status}[/]"


_MISSED = "not caught"


def _peak(peak_w: float | None, avg_w: float | None) -> str:
    """The peak power of the timeline's ticks, unless they missed it: below the average, the
    ticks of a short run did not see its busiest moment, so no peak is claimed."""
    if peak_w is not None and avg_w is not None and peak_w < avg_w * (1 - 1e-9):
        return _MISSED
    return fmt.power(peak_w)


def _print_run_summary(r: Run, *, console, detail: bool = False) -> None:
    from rich.table import Table

    console.print(
        f"[bold]{escape(r.name)}[/]  run [bold]{r.id}[/]  {_status_markup(r.status.value)}"
        + (f"  [red]{escape(r.error)}[/]" if r.error else "")
    )
    console.print(
        f"duration {fmt.duration(r.duration_s)} · energy {fmt.energy_with_kwh(r.total_energy_j)} "
        f"({r.provenance.value if r.provenance else '—'}) · avg {fmt.power(r.avg_power_w)} · "
        f"peak {_peak(r.peak_power_w, r.avg_power_w)}"
    )
    if r.attributable_energy_j is not None:
        console.print(
            f"idle baseline {fmt.energy_with_kwh(r.idle_energy_j)} · attributable {fmt.energy_with_kwh(r.attributable_energy_j)}"
        )
    # figures in one table that fits 80 columns; how each domain was measured listed below it
    domains = Table(title="Energy by domain", title_justify="left")
    for column in ("domain", "device", "energy", "avg power", "peak power", "measured"):
        domains.add_column(column, overflow="fold", no_wrap=column != "device")
    methods = {d.name: d for d in r.domains}
    for name, e in r.energy.items():
        d = methods.get(name)
        domains.add_row(
            escape(name),
            escape(d.device) if d else "",
            fmt.energy(e.energy_j),
            fmt.power(e.avg_power_w),
            _peak(e.peak_power_w, e.avg_power_w),
            e.provenance.value,
        )
    console.print(domains)
    for name in r.energy:
        if (d := methods.get(name)) is not None:
            console.print(f"  {escape(name)}: {escape(d.method + (f' ({d.note})' if d.note else ''))}", highlight=False)
    if any(_peak(e.peak_power_w, e.avg_power_w) == _MISSED for e in [*r.energy.values()]) or \
            _peak(r.peak_power_w, r.avg_power_w) == _MISSED:
        console.print(f"[dim]peak {_MISSED}: the run was too short for its timeline's ticks to catch it "
                      "(the energy is from counters at its edges)[/]")
    if r.units:
        console.print(
            "units: "
            + ", ".join(f"{n:,g} {u} ({fmt.energy_with_kwh(r.energy_per_unit_j(u))} each)" for u, n in r.units.items()),
            markup=False,
        )
    if detail and r.windows:
        windows = Table(title="Windows")
        for column in ("window", "start", "duration", "energy", "units", "note"):
            windows.add_column(column, overflow="fold")
        for w in r.windows:
            windows.add_row(
                escape(w.path),
                f"{w.start_s:.2f} s",
                fmt.duration(w.duration_s),
                fmt.energy_with_kwh(w.total_energy_j),
                escape(", ".join(f"{n:,g} {u}" for u, n in w.units.items())),
                escape(w.note or ""),
            )
        console.print(windows)
    for g in r.gaps:
        end = "end of run" if g.end_s is None else f"{g.end_s:.2f} s"
        console.print(f"[yellow]gap[/] {escape(g.domain)}: {g.start_s:.2f} s → {end}: {escape(g.reason)}")
    shown_methods = [d for name in r.energy if (d := methods.get(name)) is not None]
    for reason, names in _fallback_reasons(r.metadata.get("fallbacks") or [], shown_methods).items():
        console.print(f"[yellow]fallback{f' ({escape(names)})' if names else ''}:[/] {escape(reason)}")
    if detail and r.metadata:
        shown = {k: v for k, v in r.metadata.items() if k != "fallbacks"}
        if shown:
            console.print("metadata: " + "; ".join(f"{fmt.metadata_label(k)} {fmt.metadata_value(k, v)}"
                                                   for k, v in shown.items()),
                          highlight=False, markup=False)
    console.print(f"run id: [bold]{r.id}[/]")


def _fallback_reasons(notes: list[object], shown: list[Domain]) -> dict[str, str]:
    """Each fallback's reason once, with the domains it led to: a note ending "…; CPU <method>"
    loses the method the summary already lists for that domain."""
    reasons: dict[str, dict[str, None]] = {}
    for note in map(str, notes):
        reason, names = note, {}
        for d in shown:
            if note.endswith(" " + d.method) and "; " in note[: -len(d.method)]:
                reason = note[: -len(d.method) - 1].rsplit("; ", 1)[0]
                names[d.name] = None
        reasons.setdefault(reason, {}).update(names)
    return {reason: ", ".join(names) for reason, names in reasons.items()}


class _LiveView:
    """Elapsed time, power and energy on the terminal's bottom row while the command runs;
    the command's own output scrolls above it, every line kept (status_line)."""

    def __init__(self, meter: EnergyMeter) -> None:
        from joulemeter.integrations.cli.status_line import StatusLine

        self.line = StatusLine(sys.stderr.fileno())

    def update(self, meter: EnergyMeter) -> None:
        energy = meter.energy_so_far_j()
        power = meter.power_now_w()
        known = [p for p in power.values() if p is not None]
        total_w = sum(known) if known else None
        parts = ", ".join(f"{name} {fmt.power(power.get(name))}" for name in energy)
        self.line.show(f"joulemeter · {fmt.duration(meter.elapsed_s())} · {fmt.power(total_w)} · "
                       f"{fmt.energy_with_kwh(sum(energy.values()))} ({parts})")

    def close(self) -> None:
        self.line.close()


def _start_exporter(meter: EnergyMeter, port: int | None):
    if port is None:
        return None
    from joulemeter.integrations.prometheus import PrometheusExporter

    exporter = PrometheusExporter(meter, port)
    exporter.start()
    return exporter
