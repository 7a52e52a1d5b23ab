"""`joulemeter runs` at 80 columns cuts names in the middle: runs named alike ("digits-mlp/…",
as `joulemeter demo` makes) keep the end that tells them apart (issue 12 walkthrough)."""

from __future__ import annotations

import os

from joulemeter.meter.store import open_ledger
from tests.test_cli_runs_table import cli
from tests.test_ledger import make_run

NAMES = ["digits-mlp/full", "digits-mlp/pruned (making)", "digits-mlp-learning-rate-sweep/full",
         "digits-mlp-learning-rate-sweep/int8", "a-sweep-over-learning-rates-and-batch-sizes-for-digits-mlp/int8"]


def test_runs_at_80_columns_keep_the_end_of_names_that_share_a_start(tmp_path):
    ledger = tmp_path / "ledger.sqlite"
    with open_ledger(ledger) as book:
        book.save_runs([make_run(name=name, started_at=f"2026-03-0{i + 1}T12:00:00+00:00")
                        for i, name in enumerate(NAMES)])
    listing = cli("runs", env=os.environ | {"COLUMNS": "80", "JOULEMETER_LEDGER": str(ledger)})
    assert listing.returncode == 0, listing.stderr
    header, *rows = listing.stdout.rstrip("\n").splitlines()[1:]
    assert max(len(row) for row in rows) <= 80, listing.stdout
    cell = slice(header.index("name"), header.index("status"))
    shown = [row[cell].strip() for row in reversed(rows)]  # oldest first
    assert len(set(shown)) == len(NAMES), shown  # each tells its run apart
    for name, cell in zip(NAMES, shown):
        start, cut, end = cell.partition("…")
        assert name.startswith(start) and name.endswith(end) and (end or not cut), (name, cell)
    assert shown[0] == "digits-mlp/full" and "…" in shown[-1] and shown[-1].endswith("/int8")
