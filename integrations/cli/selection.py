"""Choosing runs on the command line: by reference (id, id prefix, unique name, `last`) or by
filters (project, tag, name, status, and the period they started in), one way for every command."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Optional

import typer

from joulemeter.integrations.cli._common import fail

if TYPE_CHECKING:
    from joulemeter.meter import Run
    from joulemeter.meter.store import Ledger

ProjectOption = typer.Option(None, "--project", help="Only runs of this project.")
TagOption = typer.Option(None, "--tag", help="Only runs with this tag.")
NameOption = typer.Option(None, "--name", help="Only runs of this exact name.")
StatusOption = typer.Option(None, "--status", help="Only runs that are running, completed, interrupted or failed.")
SinceOption = typer.Option(
    None, "--since", metavar="DATE|TIME",
    help="Only runs that started then or later (ISO 8601, e.g. 2026-11-01 or 2026-11-01T09:00; UTC unless it gives an offset).",
)
UntilOption = typer.Option(
    None, "--until", metavar="DATE|TIME",
    help="Only runs that started before this time, or on or before this day (ISO 8601).",
)


@dataclass(frozen=True)
class RunFilters:
    """The filters a command was given; every one that is set must hold."""

    project: Optional[str] = None
    tag: Optional[str] = None
    name: Optional[str] = None
    status: Optional[str] = None
    since: Optional[str] = None
    until: Optional[str] = None

    def given(self) -> bool:
        """Whether any filter was given."""
        return any(v is not None for v in asdict(self).values())

    def as_kwargs(self) -> dict[str, Any]:
        """The filters as Ledger.list_runs / count_runs keyword arguments."""
        return asdict(self)


def chosen_runs(
    book: Ledger, refs: list[str], filters: RunFilters, *, samples: bool = True, what: str = "runs"
) -> list[Run]:
    """The runs named by `refs`, or else those the filters choose (newest first); `what` names
    the command's use of them in its errors ("runs to delete")."""
    if refs and filters.given():
        raise fail(f"name the {what} or filter them (--project, --tag, --since, …), not both")
    if refs:
        return [book.get_run(ref, samples=samples) for ref in refs]
    if not filters.given():
        raise fail(f"which {what}? Name them (id, id prefix, unique name or `last`) or choose them with "
                   "--project, --tag, --name, --status, --since or --until")
    found = book.list_runs(**filters.as_kwargs())
    if not found:
        raise fail(f"no runs in {book.location} match these filters")
    return [book.get_run(r.id) for r in found] if samples else found
