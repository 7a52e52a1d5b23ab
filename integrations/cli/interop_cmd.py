"""`joulemeter import codecarbon FILE`: bring other tools' records into the ledger."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from joulemeter.integrations.cli._common import (
    JsonOption,
    LedgerOption,
    handle_errors,
    print_json,
    stdout,
)
from joulemeter.reports.render import formatting as fmt

import_app = typer.Typer(
    name="import",
    help="Import runs recorded by other tools into the ledger.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(import_app, name="import")


@import_app.command("codecarbon")
@handle_errors
def import_codecarbon(
    path: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True, help="CodeCarbon's emissions.csv."),
    ledger: Optional[str] = LedgerOption,
    json_output: bool = JsonOption,
) -> None:
    """Import every row of a CodeCarbon emissions.csv as a run; nothing is imported if a row is malformed."""
    from joulemeter.integrations.codecarbon import import_codecarbon_csv
    from joulemeter.meter.store import open_ledger

    with open_ledger(ledger) as book:
        result = import_codecarbon_csv(path, book)
    runs = result.imported
    if json_output:
        print_json([r.to_dict(samples=False) for r in runs])
        return
    for r in runs:
        stdout.print(
            f"{r.id}  {r.project}  {r.started_at[:19].replace('T', ' ')}  "
            f"{fmt.duration(r.duration_s)}  {fmt.energy_with_kwh(r.total_energy_j)}",
            highlight=False, markup=False,
        )
    skipped = len(result.already_in_ledger)
    stdout.print(f"imported {len(runs)} run(s) from {path}"
                 + (f"; {skipped} already in the ledger from an earlier import" if skipped else ""),
                 highlight=False, markup=False)
