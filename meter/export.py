"""Writing runs out: complete JSON, or one table (samples, windows, domains) as CSV or Parquet."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import IO

from joulemeter.meter.run import Run

FORMATS = ("json", "csv", "parquet")
TABLES = ("samples", "windows", "domains")


def export_runs(
    runs: Sequence[Run], fmt: str, dest: str | os.PathLike[str] | IO[str], *, table: str = "samples"
) -> None:
    """Write `runs` to `dest` (a path or a text stream; Parquet needs a path)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "json":
        text = json.dumps([r.to_dict() for r in runs], indent=2, default=str)
        write_text(dest, text + "\n")
        return
    frame = runs_frame(runs, table)
    if fmt == "csv":
        write_text(dest, frame.to_csv(index=False))
    elif isinstance(dest, (str, os.PathLike)):
        frame.to_parquet(dest, index=False)
    else:
        raise ValueError("Parquet is binary: give an output file with -o")


def runs_frame(runs: Sequence[Run], table: str = "samples"):
    """One pandas DataFrame of `table` for several runs, with a leading run_id column."""
    import pandas

    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}; choose one of {', '.join(TABLES)}")
    frames = []
    for r in runs:
        if table == "samples":
            frame = r.samples_frame()
        elif table == "windows":
            frame = r.windows_frame()
        else:
            frame = pandas.DataFrame([e.to_dict() for e in r.energy.values()])
        frame.insert(0, "run_id", r.id)
        frames.append(frame)
    return pandas.concat(frames, ignore_index=True) if frames else pandas.DataFrame()


def write_text(dest: str | os.PathLike[str] | IO[str], text: str) -> None:
    """Write `text` to a path (UTF-8) or to an open text stream."""
    if isinstance(dest, (str, os.PathLike)):
        with open(dest, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        dest.write(text)
