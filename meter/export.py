"""Writing runs out: complete JSON, one table (samples, windows, domains) as CSV or
Parquet, or any other export format of the registry in joulemeter.meter.formats."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING, Any

from joulemeter.meter.formats import EXPORT, output_format
from joulemeter.meter.run import Run

if TYPE_CHECKING:
    import pandas

TABLES = ("samples", "windows", "domains")

#: A cell a spreadsheet would read as a formula begins with one of these (OWASP, "CSV Injection").
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

Destination = str | os.PathLike[str] | IO[str]


def export_runs(runs: Sequence[Run], fmt: str, dest: Destination, *, table: str = "samples") -> None:
    """Write `runs` to `dest` (a path or a text stream; a binary format needs a path) in
    `fmt` ("json", "csv", "parquet", "codecarbon"); `table` applies to csv and parquet."""
    spec = output_format(fmt, EXPORT)
    options = {"table": table} if spec.tabular else {}
    spec.writer(EXPORT)(runs, dest, **options)


def write_json(runs: Sequence[Run], dest: Destination) -> None:
    """Every run in full, samples included, as one JSON list."""
    write_text(dest, json.dumps([r.to_dict() for r in runs], indent=2, default=str) + "\n")


def write_csv(runs: Sequence[Run], dest: Destination, *, table: str = "samples") -> None:
    """One table of every run as CSV."""
    write_text(dest, csv_text(runs_frame(runs, table)))


def spreadsheet_safe(value: Any) -> Any:
    """`value`, with a text cell that a spreadsheet would run as a formula quoted by a leading '."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def csv_text(frame: pandas.DataFrame) -> str:
    """`frame` as CSV, every text cell and header made spreadsheet_safe; numbers as they are."""
    from pandas.api.types import is_numeric_dtype

    safe = frame.rename(columns=spreadsheet_safe)
    for column in safe.columns:
        if not is_numeric_dtype(safe[column]):  # text, or numbers mixed with text
            safe[column] = safe[column].map(spreadsheet_safe)
    return safe.to_csv(index=False)


def write_parquet(runs: Sequence[Run], dest: Destination, *, table: str = "samples") -> None:
    """One table of every run as Parquet, to a file path."""
    if not isinstance(dest, (str, os.PathLike)):
        raise ValueError("Parquet is binary: give a file path, not a text stream")
    runs_frame(runs, table).to_parquet(dest, index=False)


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


def write_text(dest: Destination, text: str) -> None:
    """Write `text` to a path (UTF-8) or to an open text stream."""
    if isinstance(dest, (str, os.PathLike)):
        with open(dest, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        dest.write(text)
