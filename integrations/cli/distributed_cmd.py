"""`joulemeter merge-parts`: turn the rank parts that distributed jobs left into one run per job."""

from __future__ import annotations

from typing import Optional

import typer

from joulemeter.integrations.cli._common import JsonOption, LedgerOption, handle_errors, print_json, stderr
from joulemeter.reports.render import formatting as fmt


def register(app: typer.Typer) -> None:
    app.command("merge-parts")(merge_parts)


@handle_errors
def merge_parts(ledger: Optional[str] = LedgerOption, json_output: bool = JsonOption) -> None:
    """Merge each finished distributed job's rank parts (a job killed before rank 0 merged them)
    into one run, CPU and memory once per node; parts of a job still running are left."""
    from joulemeter.meter.merge import settle_parts
    from joulemeter.meter.store import open_ledger

    with open_ledger(ledger) as book:  # opening marks parts whose process died interrupted
        settled = settle_parts(book)
        runs = [book.get_run(job.run_id, samples=False) for job in settled]
        location = book.location
    if json_output:
        print_json([
            {"run_id": job.run_id, "parts": list(job.part_ids), "merged_now": job.merged_now,
             "status": run.status.value, "total_energy_j": run.total_energy_j}
            for job, run in zip(settled, runs)
        ])
        return
    say = stderr.print
    if not settled:
        say(f"no finished parts to merge in {location}", highlight=False, markup=False, soft_wrap=True)
    for job, run in zip(settled, runs):
        what = "merged from" if job.merged_now else "was already merged; deleted its leftover"
        say(f"run {run.id[:8]} {run.name} ({run.status.value}, {fmt.energy(run.total_energy_j)}) {what} "
            f"{len(job.part_ids)} parts", highlight=False, markup=False, soft_wrap=True)
