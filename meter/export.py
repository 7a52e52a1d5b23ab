"""Writing runs out: complete JSON, one table (samples, windows, domains) as CSV or
Parquet, or any other export format of the registry in joulemeter.meter.formats."""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from joulemeter.meter.errors import ReportError
from joulemeter.meter.formats import EXPORT, output_format
from joulemeter.meter.run import Run

if TYPE_CHECKING:
    import pandas

TABLES = ("samples", "windows", "domains")

#: A cell a spreadsheet would read as a formula begins with one of these (OWASP, "CSV Injection").
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

#: Characters JSON may carry raw inside a string but a terminal would obey: DEL, the C1
#: controls (ECMA-48) and the bidirectional controls (Unicode UAX #9); C0 json escapes itself.
_JSON_RAW_CONTROLS = re.compile("[\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")

Destination = str | os.PathLike[str] | IO[str]


def export_runs(runs: Sequence[Run], fmt: str, dest: Destination, *, table: str = "samples") -> None:
    """Write `runs` to `dest` (a path or a text stream; a binary format needs a path) in
    `fmt` ("json", "csv", "parquet", "codecarbon"); `table` applies to csv and parquet."""
    spec = output_format(fmt, EXPORT)
    options = {"table": table} if spec.tabular else {}
    spec.writer(EXPORT)(runs, dest, **options)


def write_json(runs: Sequence[Run], dest: Destination) -> None:
    """Every run in full, samples included, as one JSON list."""
    write_text(dest, json_text([r.to_dict() for r in runs]) + "\n")


def json_text(data: Any, *, indent: int | None = 2, ensure_ascii: bool = True) -> str:
    """`data` as valid JSON: NaN and infinities (JSON has none) become null, objects JSON lacks
    their str(), and every control character an escape, so the text is safe in a terminal too."""
    text = json.dumps(_finite(data), indent=indent, ensure_ascii=ensure_ascii, allow_nan=False, default=str)
    return _JSON_RAW_CONTROLS.sub(lambda m: f"\\u{ord(m[0]):04x}", text)


def _finite(value: Any) -> Any:
    """`value` with every non-finite float in it (an unknown in user metadata) replaced by None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


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
    frame = runs_frame(runs, table)
    with replacing(dest) as temporary:
        frame.to_parquet(temporary, index=False)


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
    """Write `text` to a path (UTF-8, whole or not at all: see `replacing`) or to an open text stream."""
    if isinstance(dest, (str, os.PathLike)):
        with replacing(dest) as temporary:
            temporary.write_text(text, encoding="utf-8")
    else:
        dest.write(text)


@contextlib.contextmanager
def replacing(dest: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary file beside `dest` to write; renamed onto `dest` (os.replace) when the block
    ends, removed if it fails, so `dest` is never left half-written. A failure to write raises
    ReportError naming the path and why (a folder, a missing folder, a full disk, no permission).
    A device or pipe (/dev/stdout) is written in place: it cannot be renamed onto."""
    path = Path(dest)
    temporary: Path | None = None
    try:
        if path.is_dir():
            raise IsADirectoryError(errno.EISDIR, "it is a folder")
        if path.exists() and not path.is_file():
            yield path
            return
        candidate = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.joulemeter-tmp")
        # created with the mode a plain open() gives (0666 less the umask), as the file was before
        os.close(os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        temporary = candidate
        yield temporary
        with contextlib.suppress(FileNotFoundError):  # a file replaced keeps its permissions
            os.chmod(temporary, path.stat().st_mode & 0o7777)
        os.replace(temporary, path)
        temporary = None
    except OSError as exc:
        raise _write_error(path, exc) from None
    finally:
        if temporary is not None:
            temporary.unlink(missing_ok=True)


def _write_error(path: Path, exc: OSError) -> ReportError:
    why = exc.strerror or str(exc)
    if exc.errno == errno.ENOENT:
        why = f"there is no folder {path.parent}" if not path.parent.is_dir() else (
            f"no new file can be made in {path.parent}"
        )
    return ReportError(
        f"cannot write {path}: {why}; nothing was written there. Choose another output file.",
        parameter="output",
    )
