"""One run cut out of a longer one: the windows of one piece of work that ran in turns with
other work (interleaved benchmark trials), put back to back as a run of its own.

The cut run's clock runs only while its pieces ran: each piece keeps its duration, energy
per domain and units and follows the previous one without a pause, so the run's duration,
energy and power are those of its own work and nothing of what ran between its pieces.
Samples and gaps inside the pieces come along on that clock (a sample's cumulative energy
counted from the cut run's start, as in any run); started_at and ended_at are the wall-clock
times of the first piece's start and the last piece's end. Windows inside the pieces are
not carried. Pure data: no meter, no ledger.
"""

from __future__ import annotations

import bisect
import math
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from joulemeter.meter.energy import totals
from joulemeter.meter.run import Gap, Run, Sample, Window


def cut_run(
    span: Run,
    pieces: Sequence[Window],
    *,
    names: Sequence[str],
    name: str,
    tags: Sequence[str] = (),
    metadata: Mapping[str, Any] | None = None,
    outer: str | None = None,
) -> Run:
    """A new run (fresh id) made of `pieces`, closed windows of `span` in time order that do
    not overlap, named `names` in it; `outer` names a window holding them all (None: none)."""
    if len(names) != len(pieces) or not pieces:
        raise ValueError(f"need one name per piece and at least one piece; got {len(names)} and {len(pieces)}")
    ends = [p.end_s for p in pieces]
    if any(end is None for end in ends):
        raise ValueError("every piece must be a closed window (its end_s set)")
    if any(later.start_s < end for later, end in zip(pieces[1:], ends)):
        raise ValueError("pieces must be in time order and must not overlap")

    windows: list[Window] = []
    offsets: list[float] = []  # cut time = span time + offset, piece by piece
    clock = 0.0
    for piece, new_name in zip(pieces, names):
        duration_s = piece.end_s - piece.start_s  # type: ignore[operator]
        offsets.append(clock - piece.start_s)
        path = f"{outer}/{new_name}" if outer else new_name
        windows.append(
            Window(new_name, path, clock, clock + duration_s, dict(piece.energy_j), dict(piece.units), piece.note)
        )
        clock += duration_s
    energy_j = _sums(p.energy_j for p in pieces)
    units = _sums(p.units for p in pieces)
    if outer:
        windows.insert(0, Window(outer, outer, 0.0, clock, dict(energy_j), dict(units)))
    samples = _samples_within(span, pieces, offsets)
    peak: dict[str, float] = {}
    for s in samples:
        if s.power_w is not None:
            peak[s.domain] = max(peak.get(s.domain, -math.inf), s.power_w)
    idle = {d: e.idle_power_w for d, e in span.energy.items() if e.idle_power_w is not None}
    return Run(
        id=uuid.uuid4().hex,
        name=name,
        project=span.project,
        tags=list(tags),
        status=span.status,
        started_at=_later(span.started_at, pieces[0].start_s),
        ended_at=_later(span.started_at, ends[-1]),  # type: ignore[arg-type]
        duration_s=clock,
        interval_s=span.interval_s,
        host=dict(span.host),
        domains=list(span.domains),
        energy=totals(span.domains, energy_j, peak, clock, idle),
        windows=windows,
        units=units,
        samples=samples,
        gaps=_gaps_within(span, pieces, offsets),
        metadata=dict(metadata or {}),
        error=span.error,
        location=span.location,
    )


def _sums(parts: Any) -> dict[str, float]:
    """Key-wise sums of several {name: amount} mappings."""
    out: dict[str, float] = {}
    for part in parts:
        for key, value in part.items():
            out[key] = out.get(key, 0.0) + value
    return out


def _later(iso: str, seconds: float) -> str:
    """An ISO 8601 timestamp `seconds` after `iso` (unchanged where `iso` is empty)."""
    if not iso:
        return iso
    return (datetime.fromisoformat(iso) + timedelta(seconds=seconds)).isoformat(timespec="milliseconds")


def _samples_within(span: Run, pieces: Sequence[Window], offsets: Sequence[float]) -> list[Sample]:
    """The span's samples taken within each piece (after its start, up to its end), on the
    cut's clock; each domain's cumulative energy restarts at 0 and grows, inside a piece,
    as the span's did since the piece began, never past the piece's own energy."""
    traces: dict[str, tuple[list[float], list[float]]] = {}
    for s in span.samples:
        if s.energy_j is not None:
            times, energies = traces.setdefault(s.domain, ([0.0], [0.0]))  # 0 J at the run's start
            times.append(s.t_s)
            energies.append(s.energy_j)
    before: dict[str, float] = {}  # cut energy at the piece's start, per domain
    out: list[Sample] = []
    for piece, offset in zip(pieces, offsets):
        at_start = {d: _cumulative_at(trace, piece.start_s) for d, trace in traces.items()}
        for s in span.samples:
            if not piece.start_s < s.t_s <= piece.end_s:  # type: ignore[operator]
                continue
            energy = None
            if s.energy_j is not None:
                grown = min(max(s.energy_j - at_start[s.domain], 0.0), piece.energy_j.get(s.domain, 0.0))
                energy = before.get(s.domain, 0.0) + grown
            out.append(Sample(s.t_s + offset, s.domain, s.power_w, energy))
        for domain, joules in piece.energy_j.items():
            before[domain] = before.get(domain, 0.0) + joules
    return out


def _cumulative_at(trace: tuple[list[float], list[float]], t_s: float) -> float:
    """A domain's cumulative energy at `t_s`, linear between its readings, flat past the last."""
    times, energies = trace
    i = bisect.bisect_right(times, t_s)
    if i >= len(times):
        return energies[-1]
    t0, t1, e0, e1 = times[i - 1], times[i], energies[i - 1], energies[i]
    return e0 if t1 <= t0 else e0 + (e1 - e0) * (t_s - t0) / (t1 - t0)


def _gaps_within(span: Run, pieces: Sequence[Window], offsets: Sequence[float]) -> list[Gap]:
    """The span's gaps clipped to each piece, on the cut's clock; a gap that never ended
    stays open only in the last piece."""
    out = []
    last = len(pieces) - 1
    for k, (piece, offset) in enumerate(zip(pieces, offsets)):
        end_s: float = piece.end_s  # type: ignore[assignment]
        for gap in span.gaps:
            gap_end = math.inf if gap.end_s is None else gap.end_s
            if gap.start_s >= end_s or gap_end <= piece.start_s:
                continue
            open_here = gap.end_s is None and k == last
            clipped_end = None if open_here else min(gap_end, end_s) + offset
            out.append(Gap(gap.domain, max(gap.start_s, piece.start_s) + offset, clipped_end, gap.reason))
    return out
