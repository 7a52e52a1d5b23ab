"""Cited data files: each CSV read once into frozen dataclasses, every row checked as it loads.

A record's fields name its columns and their types say how a cell is read: str, int,
float (finite), bool ("yes"/"no"), an Enum or Literal (one of its values),
tuple[str, ...] (";"-separated) and Citation (the columns source, year and url).
`X | None` lets a cell be empty; any other empty cell is an error. A bad file raises
FactorError naming the file, the line and the column.
"""

from __future__ import annotations

import csv
import dataclasses
import enum
import functools
import importlib.resources
import io
import math
import types
import typing
from dataclasses import dataclass
from typing import Any, TypeVar

from joulemeter.meter.errors import FactorError

R = TypeVar("R")


@dataclass(frozen=True)
class Citation:
    """Where a number comes from: the source in words, its year, and a link."""

    source: str
    year: int | None
    url: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def __str__(self) -> str:
        return f"{self.source} ({self.year})" if self.year else self.source


@dataclass(frozen=True)
class _Csv:
    where: str  # the file, as an error names it
    columns: tuple[str, ...]
    rows: tuple[tuple[int, dict[str, str]], ...]  # (line number, cells by column)


@functools.cache
def _read(package: str, name: str) -> _Csv:
    path = importlib.resources.files(package).joinpath("data", name)
    reader = csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"), newline=""))
    rows = tuple((reader.line_num, row) for row in reader)
    return _Csv(str(path), tuple(reader.fieldnames or ()), rows)


def read_rows(package: str, name: str) -> tuple[dict[str, str], ...]:
    """Rows of `<package>/data/<name>` as read: strings keyed by column (cached; do not mutate)."""
    return tuple(row for _, row in _read(package, name).rows)


def load_table(package: str, name: str, record: type[R]) -> tuple[R, ...]:
    """`<package>/data/<name>` as one `record` per row, in file order (read and checked once)."""
    return _load(package, name, record)


@functools.cache
def _load(package: str, name: str, record: type) -> tuple[Any, ...]:
    table = _read(package, name)
    hints = typing.get_type_hints(record)
    fields = [(f.name, hints[f.name]) for f in dataclasses.fields(record)]
    for field, kind in fields:
        for column in ("source", "year") if Citation in (kind, *typing.get_args(kind)) else (field,):
            if column not in table.columns:
                raise _error(table.where, 1, column, "the column is missing")
    records = []
    for line, row in table.rows:
        if None in row:
            raise _error(table.where, line, table.columns[-1], "the row has more cells than the header")
        records.append(record(**{field: _cell(table.where, line, row, field, kind) for field, kind in fields}))
    return tuple(records)


def _cell(where: str, line: int, row: dict[str, str], field: str, kind: Any) -> Any:
    """One field of one row: parsed by its type, None where optional and empty."""
    optional = isinstance(kind, types.UnionType) and type(None) in typing.get_args(kind)
    if optional:
        kind = next(k for k in typing.get_args(kind) if k is not type(None))
    if kind is Citation:
        source, year, url = ((row.get(c) or "").strip() for c in ("source", "year", "url"))
        if optional and not source and not year:
            return None
        for column, text in (("source", source), ("year", year)):
            if not text:
                raise _error(where, line, column, "is empty: every figure needs its source and year")
        if not year.isdigit():
            raise _error(where, line, "year", f"{year!r} is not a year")
        return Citation(source, int(year), url or None)
    text = (row[field] or "").strip()  # None: the row has fewer cells than the header
    if not text:
        if optional:
            return None
        if typing.get_origin(kind) is tuple:
            return ()
        raise _error(where, line, field, "is empty")
    try:
        return _parse(text, kind)
    except ValueError as exc:
        raise _error(where, line, field, f"{text!r} {exc}") from None


def _parse(text: str, kind: Any) -> Any:
    """A non-empty cell as `kind`; ValueError saying what is wrong with it."""
    if kind is str:
        return text
    if kind is bool:
        if text.lower() not in ("yes", "no"):
            raise ValueError("is neither yes nor no")
        return text.lower() == "yes"
    if kind is int:
        if not text.lstrip("-").isdigit():
            raise ValueError("is not a whole number")
        return int(text)
    if kind is float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError("is not a number") from None
        if not math.isfinite(value):
            raise ValueError("is not a finite number")
        return value
    if typing.get_origin(kind) is tuple:
        return tuple(part.strip() for part in text.split(";") if part.strip())
    if isinstance(kind, enum.EnumMeta):
        choices = [member.value for member in kind]
    elif typing.get_origin(kind) is typing.Literal:
        choices = list(typing.get_args(kind))
    else:
        raise TypeError(f"a data-table field cannot be of type {kind!r}")
    if text not in choices:
        raise ValueError(f"is not one of {', '.join(map(str, choices))}")
    return kind(text) if isinstance(kind, enum.EnumMeta) else text


def _error(where: str, line: int, column: str, problem: str) -> FactorError:
    return FactorError(
        f"{where}, line {line}, column {column!r}: {problem}. The data file is damaged: "
        "fix that row or reinstall joulemeter."
    )
