"""What a running meter has flushed so far, for tests that kill it: its samples in the
ledger and in the run's journal (the spool file the next open of the ledger delivers)."""

from __future__ import annotations

import json

from joulemeter.meter.store.location import spool_dir


def journal_samples(run_id: str) -> set[tuple[float, str]]:
    """(t_s, domain) of each sample in the run's journal (one JSON record a line)."""
    try:
        lines = (spool_dir() / f"{run_id}.jsonl").read_text().splitlines()
    except FileNotFoundError:
        return set()
    return {(row[0], row[1]) for line in lines if (record := _record(line)).get("kind") == "samples"
            for row in record["rows"]}


def flushed_samples(ledger, run_id: str) -> set[tuple[float, str]]:
    """(t_s, domain) of each sample the run has flushed: to the ledger or to its journal."""
    stored = {(s.t_s, s.domain) for s in ledger.get_run(run_id).samples}
    return stored | journal_samples(run_id)


def _record(line: str) -> dict:
    try:
        return json.loads(line)
    except ValueError:  # the line being written
        return {}
