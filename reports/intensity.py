"""Grid intensity at the time of a run: a series of spans (usually hours), from a CSV the user
gives (format in docs/intensity.md) or a provider (reports.intensity_providers), applied to
the run's energy as it was drawn.

A series is one zone and one signal: "average" (the mix of all plants, for inventories and
location-based Scope 2) or "marginal" (the plant that answers a change in demand, for
deciding when to run). The two are never mixed: a file that holds both is read one signal
at a time.
"""

from __future__ import annotations

import bisect
import csv
import dataclasses
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Literal

from joulemeter.meter.errors import FactorError
from joulemeter.meter.run import Run
from joulemeter.meter.tables import Citation
from joulemeter.reports.factors import Factors

Signal = Literal["average", "marginal"]
SIGNALS: tuple[Signal, ...] = ("average", "marginal")
CSV_COLUMNS = ("start", "end", "intensity_g_per_kwh", "zone", "signal", "method")
_HOUR = timedelta(hours=1)


class IntensityError(FactorError):
    """An intensity series that cannot be read or does not cover the run (says file, line, column)."""


@dataclass(frozen=True)
class Span:
    """Intensity over [start, end) in UTC."""

    start: datetime
    end: datetime
    intensity_g_per_kwh: float


@dataclass(frozen=True)
class IntensitySeries:
    """Spans of one zone and signal, sorted and not overlapping, and where they come from."""

    zone: str
    signal: Signal
    spans: tuple[Span, ...]
    source: str  # a file path or a URL without its key
    provider: str = "csv"
    method: str | None = None  # e.g. "lifecycle", "direct", as the source states

    def __post_init__(self) -> None:
        for before, after in zip(self.spans, self.spans[1:]):
            if after.start < before.end:
                raise IntensityError(
                    f"{self.source}: spans of {self.zone} ({self.signal}) overlap at {after.start.isoformat()}"
                )

    def covering(self, start: datetime, end: datetime) -> list[Span]:
        """The spans that meet [start, end); IntensityError naming the first gap if any part is uncovered."""
        starts = [s.start for s in self.spans]
        i = max(bisect.bisect_right(starts, start) - 1, 0)
        found, reached = [], start
        for span in self.spans[i:]:
            if span.start >= end:
                break
            if span.end <= reached:
                continue
            if span.start > reached:
                break
            found.append(span)
            reached = span.end
        if reached < end:
            covered = (f"{self.spans[0].start.isoformat()} to {self.spans[-1].end.isoformat()}"
                       if self.spans else "nothing")
            raise IntensityError(
                f"{self.source} ({self.zone}, {self.signal}) has no intensity from {reached.isoformat()}; "
                f"the run spans {start.isoformat()} to {end.isoformat()} and the series covers {covered}"
            )
        return found


@dataclass(frozen=True)
class TimedIntensity:
    """A run's intensity weighted by when its energy was drawn, and how it was weighted."""

    intensity_g_per_kwh: float
    low_g_per_kwh: float  # the lowest and highest span the run met
    high_g_per_kwh: float
    weighting: str  # "energy-weighted from N samples" or "time-weighted (no samples)"
    series: IntensitySeries

    def factors(self, base: Factors) -> Factors:
        """`base` with this intensity, its signal, method and source in place of the yearly one."""
        citation = Citation(
            f"{self.series.provider} {self.series.signal} intensity for {self.series.zone}, "
            f"{self.weighting}: {self.series.source}", None,
        )
        return dataclasses.replace(base, intensity_g_per_kwh=self.intensity_g_per_kwh,
                                   intensity_citation=citation, intensity_is_default=False,
                                   intensity_method=self.series.method, intensity_signal=self.series.signal)


def run_intensity(run: Run, series: IntensitySeries) -> TimedIntensity:
    """The series' intensity over `run`, each span weighted by the energy drawn in it (from the
    run's samples), or by time where the run has no samples (listings load none)."""
    start = parse_time(run.started_at, "the run's started_at")
    if run.duration_s is None:
        raise IntensityError(f"run {run.id[:8]} has no duration yet: an hourly intensity needs its end")
    end = start + timedelta(seconds=max(run.duration_s, 0.0))
    spans = series.covering(start, end if end > start else start + timedelta(microseconds=1))
    weights = _energy_by_span(run, start, spans)
    if weights is not None and sum(weights) > 0:
        weighting = f"energy-weighted over {len(spans)} spans from the run's samples"
    else:
        weights = [_overlap_s(span, start, end) for span in spans]
        weighting = f"time-weighted over {len(spans)} spans (no samples loaded)"
        if sum(weights) <= 0:
            weights = [1.0] * len(spans)
    total = sum(weights)
    value = sum(w * s.intensity_g_per_kwh for w, s in zip(weights, spans)) / total
    met = [s.intensity_g_per_kwh for s in spans]
    return TimedIntensity(value, min(met), max(met), weighting, series)


def _energy_by_span(run: Run, start: datetime, spans: Sequence[Span]) -> list[float] | None:
    """Joules drawn in each span: each domain's energy steps between samples, split by time."""
    if not run.samples:
        return None
    edges = [(s.start - start).total_seconds() for s in spans] + [(spans[-1].end - start).total_seconds()]
    out = [0.0] * len(spans)
    last: dict[str, tuple[float, float]] = {}
    for sample in run.samples:
        if sample.energy_j is None:
            continue
        previous = last.get(sample.domain)
        last[sample.domain] = (sample.t_s, sample.energy_j)
        if previous is None:
            continue
        t0, e0 = previous
        joules, seconds = sample.energy_j - e0, sample.t_s - t0
        if joules <= 0:
            continue
        if seconds <= 0:
            out[_span_index(edges, sample.t_s)] += joules
            continue
        for i in range(len(spans)):
            overlap = min(edges[i + 1], sample.t_s) - max(edges[i], t0)
            if overlap > 0:
                out[i] += joules * overlap / seconds
    return out


def _span_index(edges: Sequence[float], t_s: float) -> int:
    return min(max(bisect.bisect_right(edges, t_s) - 1, 0), len(edges) - 2)


def _overlap_s(span: Span, start: datetime, end: datetime) -> float:
    return max((min(span.end, end) - max(span.start, start)).total_seconds(), 0.0)


# -- the CSV format -------------------------------------------------------------------
def read_intensity_csv(
    path: str | Path, *, zone: str | None = None, signal: Signal = "average"
) -> IntensitySeries:
    """The series of `zone` and `signal` in a CSV of the format in docs/intensity.md.

    A file without a zone column is one zone; with one, `zone` picks it (required when the
    file holds several). Errors name the file, line and column.
    """
    path = Path(path)
    if signal not in SIGNALS:
        raise IntensityError(f"signal {signal!r}: use 'average' or 'marginal'")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise IntensityError(f"cannot read the intensity file {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise IntensityError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    rows = _csv_rows(path, text)
    zones = sorted({r["zone"] for _, r in rows if r.get("zone")})
    if zone is None and len(zones) > 1:
        raise IntensityError(f"{path} holds several zones ({', '.join(zones)}): say which one")
    chosen = zone if zone is not None else (zones[0] if zones else path.stem)
    spans: list[tuple[int, Span]] = []
    methods: set[str] = set()
    for line, row in rows:
        if (row.get("zone") or chosen) != chosen or (row.get("signal") or "average") != signal:
            continue
        spans.append((line, _span(path, line, row)))
        if row.get("method"):
            methods.add(row["method"])
    spans = _with_ends(path, spans)
    if not spans:
        raise IntensityError(f"{path} has no {signal} intensity for zone {chosen!r}")
    if len(methods) > 1:
        raise IntensityError(f"{path}: zone {chosen} mixes methods {sorted(methods)}; give one series per method")
    ordered = sorted(spans, key=lambda s: s.start)
    return IntensitySeries(chosen, signal, tuple(ordered), str(path), "csv", methods.pop() if methods else None)


def _csv_rows(path: Path, text: str) -> list[tuple[int, dict[str, str]]]:
    """(line, cells) of the data rows; lines starting with # are comments."""
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise IntensityError(f"{path} is empty: the first line names the columns ({', '.join(CSV_COLUMNS)})")
    numbers = [n for n, _ in lines]
    reader = csv.reader(io.StringIO("\n".join(line for _, line in lines)))
    header = [h.strip() for h in next(reader)]
    unknown = [h for h in header if h not in CSV_COLUMNS]
    if unknown:
        raise IntensityError(f"{path}, line {numbers[0]}: unknown column {unknown[0]!r}; columns are {', '.join(CSV_COLUMNS)}")
    for needed in ("start", "intensity_g_per_kwh"):
        if needed not in header:
            raise IntensityError(f"{path}, line {numbers[0]}: the column {needed!r} is missing")
    out = []
    for index, cells in enumerate(reader, 1):
        line = numbers[index]
        if len(cells) != len(header):
            raise IntensityError(f"{path}, line {line}: {len(cells)} cells where the header names {len(header)}")
        row = {h: c.strip() for h, c in zip(header, cells)}
        if row.get("signal") and row["signal"] not in SIGNALS:
            raise IntensityError(f"{path}, line {line}, column 'signal': {row['signal']!r} is not average or marginal")
        out.append((line, row))
    return out


def _span(path: Path, line: int, row: dict[str, str]) -> Span:
    where = f"{path}, line {line}"
    start = parse_time(row["start"], f"{where}, column 'start'")
    end = parse_time(row["end"], f"{where}, column 'end'") if row.get("end") else start  # filled in later
    try:
        value = float(row["intensity_g_per_kwh"])
    except ValueError:
        raise IntensityError(f"{where}, column 'intensity_g_per_kwh': {row['intensity_g_per_kwh']!r} is not a number") from None
    if not (math.isfinite(value) and value >= 0):
        raise IntensityError(f"{where}, column 'intensity_g_per_kwh': {value} must be a finite number ≥ 0")
    if row.get("end") and end <= start:
        raise IntensityError(f"{where}, column 'end': {row['end']} is not after the start {row['start']}")
    return Span(start, end, value)


def _with_ends(path: Path, spans: list[tuple[int, Span]]) -> list[Span]:
    """Rows without an end last until the next row's start, the last one an hour."""
    ordered = sorted(spans, key=lambda pair: pair[1].start)
    out = []
    for i, (line, span) in enumerate(ordered):
        if span.end > span.start:
            out.append(span)
            continue
        nxt = ordered[i + 1][1].start if i + 1 < len(ordered) else span.start + _HOUR
        if nxt == span.start:
            raise IntensityError(f"{path}, line {line}, column 'start': {span.start.isoformat()} appears twice")
        out.append(dataclasses.replace(span, end=min(nxt, span.start + _HOUR)))
    return out


def parse_time(text: str, what: str) -> datetime:
    """An ISO 8601 time with its offset (Z or ±hh:mm) as an aware UTC datetime."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise IntensityError(f"{what}: {text!r} is not an ISO 8601 time (e.g. 2026-03-01T12:00:00Z)") from None
    if value.tzinfo is None:
        raise IntensityError(f"{what}: {text!r} has no time zone; add Z for UTC or an offset such as +01:00")
    return value.astimezone(timezone.utc)


def series_from_rows(rows: Iterable[dict], source: str) -> IntensitySeries:
    """A series from the ledger's cached rows (grid_intensity table) of one provider, zone, signal."""
    rows = list(rows)
    if not rows:
        raise IntensityError(f"no cached intensity for {source}")
    first = rows[0]
    spans = tuple(Span(parse_time(r["start"], "cached start"), parse_time(r["end"], "cached end"),
                       float(r["intensity_g_per_kwh"])) for r in rows)
    return IntensitySeries(first["zone"], first["signal"], spans, first["source"], first["provider"], first.get("method"))
