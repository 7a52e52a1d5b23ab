"""`joulemeter delete | rename | tag`: changing what the ledger holds, one named run at a time
or the runs a filter chooses, shown before anything changes and asked about where it matters."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from joulemeter.integrations.cli._common import LedgerOption, fail, handle_errors, stderr, stdout
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

if TYPE_CHECKING:
    from joulemeter.meter import Run

YesOption = typer.Option(False, "--yes", "-y", help="Do it without asking (needed where stdin is not a terminal).")
RunRefs = typer.Argument(None, metavar="RUN", help="Run ids, id prefixes, unique names, or `last`; or choose runs with the filters.")


def register(app: typer.Typer) -> None:
    app.command("delete")(delete)
    app.command("rename")(rename)
    app.command("tag")(tag)
    app.command("salvage")(salvage)


@handle_errors
def delete(
    run_refs: list[str] = RunRefs,
    project: Optional[str] = ProjectOption,
    tag_filter: Optional[str] = TagOption,
    name: Optional[str] = NameOption,
    status: Optional[str] = StatusOption,
    since: Optional[str] = SinceOption,
    until: Optional[str] = UntilOption,
    yes: bool = YesOption,
    ledger: Optional[str] = LedgerOption,
) -> None:
    """Delete runs with everything measured in them, after showing them and asking."""
    from joulemeter.meter.store import open_ledger

    filters = RunFilters(project, tag_filter, name, status, since, until)
    with open_ledger(ledger) as book:
        found = chosen_runs(book, run_refs or [], filters, samples=False, what="runs to delete")
        _confirm(found, f"Delete {_count(found)} from {book.location}? This cannot be undone", yes)
        deleted = book.delete_runs([r.id for r in found])
    stderr.print(f"deleted {_count(found) if deleted == len(found) else deleted}", highlight=False, markup=False)


@handle_errors
def rename(
    run_ref: str = typer.Argument(..., metavar="RUN", help="Run id, id prefix, unique name, or `last`."),
    new_name: str = typer.Argument(..., metavar="NAME", help="The run's new name."),
    ledger: Optional[str] = LedgerOption,
) -> None:
    """Give one run a new name (its id, and every other run, stay as they are)."""
    from joulemeter.meter.store import open_ledger

    with open_ledger(ledger) as book:
        found = book.get_run(run_ref, samples=False)
        book.rename_run(found.id, new_name)
    stderr.print(f"renamed {found.id[:8]}: {found.name!r} → {new_name!r} "
                 f"(undo: joulemeter rename {found.id[:8]} {_quoted(found.name)})",
                 highlight=False, markup=False, soft_wrap=True)


@handle_errors
def tag(
    run_refs: list[str] = RunRefs,
    add: list[str] = typer.Option([], "--add", "-a", help="A tag to add (repeat for several)."),
    remove: list[str] = typer.Option([], "--remove", "-r", help="A tag to remove (repeat for several)."),
    project: Optional[str] = ProjectOption,
    tag_filter: Optional[str] = TagOption,
    name: Optional[str] = NameOption,
    status: Optional[str] = StatusOption,
    since: Optional[str] = SinceOption,
    until: Optional[str] = UntilOption,
    yes: bool = YesOption,
    ledger: Optional[str] = LedgerOption,
) -> None:
    """Add or remove tags of runs; more than one run is shown and asked about first."""
    from joulemeter.meter.store import open_ledger

    if not add and not remove:
        raise fail("nothing to change: give --add TAG or --remove TAG")
    if both := set(add) & set(remove):
        raise fail(f"{sorted(both)[0]!r} is both added and removed: give it once")
    filters = RunFilters(project, tag_filter, name, status, since, until)
    with open_ledger(ledger) as book:
        found = chosen_runs(book, run_refs or [], filters, samples=False, what="runs to tag")
        if len(found) > 1:
            change = ", ".join([*(f"+{t}" for t in add), *(f"-{t}" for t in remove)])
            _confirm(found, f"Change the tags of {_count(found)} ({change})?", yes)
        for run in found:
            after = book.retag_run(run.id, add=add, remove=remove)
            stderr.print(f"{run.id[:8]} {run.name}: tags {_tag_list(run.tags)} → {_tag_list(after)}",
                         highlight=False, markup=False, soft_wrap=True)


@handle_errors
def salvage(
    damaged: Path = typer.Argument(..., metavar="DAMAGED", help="The damaged ledger file (only read)."),
    target: Path = typer.Argument(..., metavar="NEW", help="A new ledger file for every run that can be read."),
) -> None:
    """Copy every run that can still be read from a damaged ledger into a new one."""
    from joulemeter.meter.store.salvage import salvage as copy_readable
    from joulemeter.meter.store.salvage import words

    result = copy_readable(damaged, target)
    total = len(result.copied) + len(result.lost)
    say = functools.partial(stdout.print, highlight=False, markup=False, soft_wrap=True)
    say(f"copied {len(result.copied):,} of {total:,} runs into {target}")
    by_loss: dict[tuple[str, ...], list[str]] = {}
    for run_id, lost in result.partial.items():
        by_loss.setdefault(tuple(lost), []).append(run_id)
    for lost, run_ids in by_loss.items():
        say(f"{len(run_ids):,} of them without their {words(lost)} (in damaged pages): "
            + ", ".join(i[:8] for i in run_ids))
    if result.lost or result.unreadable:
        say("unreadable, not copied: " + ", ".join([*(i[:8] for i in result.lost), *result.unreadable]))
    say(f"check it with `joulemeter runs --ledger {target}`; then move {damaged} (with its -wal and -shm "
        f"files, if there) aside and put {target} in its place")


def _confirm(found: list[Run], question: str, yes: bool) -> None:
    """Show the runs about to change and ask; refuse without a terminal to ask on unless --yes."""
    from joulemeter.integrations.cli.meter_cmd import runs_table

    stdout.print(runs_table(found, f"{_count(found)}:"))
    if yes:
        return
    if not _can_ask():
        raise fail("stdin is not a terminal to ask on: pass --yes to go ahead; nothing was changed")
    if not typer.confirm(question, default=False):  # declining is no error, but nothing was done
        stderr.print("nothing was changed", highlight=False, markup=False)
        raise typer.Exit(1)


def _can_ask() -> bool:
    """Whether a question can be asked: stdin is a terminal (not a pipe, file or CI job)."""
    return sys.stdin.isatty()


def _count(found: list[Run]) -> str:
    return "1 run" if len(found) == 1 else f"{len(found):,} runs"


def _tag_list(tags: list[str]) -> str:
    return "[" + ", ".join(tags) + "]"


def _quoted(text: str) -> str:
    import shlex

    return shlex.quote(text)
