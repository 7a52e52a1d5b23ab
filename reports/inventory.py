"""A sustainability inventory over the ledger: a period and scope, totals with ranges, groups,
the largest runs, the measured share, and the methodology with every factor's source.

    with open_ledger(for_reading=True) as ledger:
        inv = inventory(ledger, since="2025-01-01", until="2025-12-31", group_by="project")

The ledger is read with SQL aggregates (per run: its row, its energy per provenance, its GPU
models), never as whole runs, so a year of 100,000 runs takes seconds. Totals add each run's
figure; a range adds the runs' low and high ends, the widest envelope (the errors of runs
measured the same way are not independent, so nothing cancels). Every figure except device
energy is an estimate: facility energy and CO2e from cited factors, embodied CO2e from cited
footprints (joulemeter.reports.embodied), water from cited WUE and water intensity
(joulemeter.reports.water).

Each run's CO2e and off-site water use the grid of where it ran (its recorded Location), the
report's factors where it recorded none, or the report's for every run when they override the
locations. Scope 2 is both ways (joulemeter.reports.scope2): location-based, and market-based
from the user's instruments, shown side by side and never added.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import heapq
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from joulemeter.meter.errors import FactorError, ReportError, UnknownRegionError
from joulemeter.meter.merge import superseded_part
from joulemeter.meter.run import Location, Provenance
from joulemeter.meter.store import schema
from joulemeter.meter.store.period import check_period, period_bound
from joulemeter.meter.tables import Citation
from joulemeter.meter.units import G_PER_KG, J_PER_KWH, S_PER_HOUR
from joulemeter.reports.accounting import provenance_band, uncertainty_bands
from joulemeter.reports.embodied import Assumptions, Rate, footprints, hardware_for_device, rate
from joulemeter.reports.factors import Factors, location_grid, resolve_factors
from joulemeter.reports.scope2 import GUIDANCE, MarketInstruments, Scope2, allocate_certificates, scope2_of
from joulemeter.reports.water import WUE_DEFINITION, WaterFactors, resolve_water, water

if TYPE_CHECKING:
    from joulemeter.meter.store import Ledger

GROUP_BYS = ("month", "project", "hardware", "host", "user")
MEASURED = (Provenance.COUNTER, Provenance.SAMPLED, Provenance.REPLAYED)
UNKNOWN = "unknown"
NOT_RECORDED_USER = "not recorded"
LARGEST_RUNS = 10
_REPORT_GRID = "the report's factors"  # the key of the grid of runs that take the report's factors


@dataclass
class Amount:
    """A total with its range; `value` None where no run had the factor for it (a gap)."""

    value: float | None = None
    low: float | None = None
    high: float | None = None

    def add(self, value: float | None, bounds: tuple[float, float] | None = None) -> None:
        if value is None:
            return
        low, high = bounds or (value, value)
        self.value = (self.value or 0.0) + value
        self.low = (self.low or 0.0) + low
        self.high = (self.high or 0.0) + high

    def merge(self, other: Amount) -> None:
        if other.value is not None:
            self.add(other.value, (other.low or 0.0, other.high or 0.0))

    def to_dict(self) -> dict[str, float | None]:
        return {"value": self.value, "low": self.low, "high": self.high}


@dataclass
class Totals:
    """Everything an inventory adds up over a set of runs."""

    runs: int = 0
    device_hours: float = 0.0  # GPU device-hours
    device_energy_j: Amount = field(default_factory=Amount)
    facility_energy_kwh: Amount = field(default_factory=Amount)
    location_kg_co2e: Amount = field(default_factory=Amount)
    market_kg_co2e: Amount = field(default_factory=Amount)
    embodied_kg_co2e: Amount = field(default_factory=Amount)
    onsite_water_l: Amount = field(default_factory=Amount)
    offsite_water_l: Amount = field(default_factory=Amount)
    cost: Amount = field(default_factory=Amount)
    energy_by_provenance_j: dict[str, float] = field(default_factory=dict)
    embodied_gaps_device_hours: dict[str, float] = field(default_factory=dict)  # device -> hours

    @property
    def measured_share(self) -> float | None:
        """Share of device energy measured (counter, sampled or replayed), None with no energy."""
        total = sum(self.energy_by_provenance_j.values())
        if not total:
            return None
        return sum(self.energy_by_provenance_j.get(p.value, 0.0) for p in MEASURED) / total

    def merge(self, other: Totals) -> None:
        self.runs += other.runs
        self.device_hours += other.device_hours
        for name in _AMOUNTS:
            getattr(self, name).merge(getattr(other, name))
        for key, joules in other.energy_by_provenance_j.items():
            self.energy_by_provenance_j[key] = self.energy_by_provenance_j.get(key, 0.0) + joules
        for key, hours in other.embodied_gaps_device_hours.items():
            self.embodied_gaps_device_hours[key] = self.embodied_gaps_device_hours.get(key, 0.0) + hours

    def to_dict(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "gpu_device_hours": self.device_hours,
            **{name: getattr(self, name).to_dict() for name in _AMOUNTS},
            "energy_by_provenance_j": self.energy_by_provenance_j,
            "measured_share": self.measured_share,
            "embodied_gaps_device_hours": self.embodied_gaps_device_hours,
        }


_AMOUNTS = ("device_energy_j", "facility_energy_kwh", "location_kg_co2e", "market_kg_co2e",
            "embodied_kg_co2e", "onsite_water_l", "offsite_water_l", "cost")


@dataclass(frozen=True)
class RunLine:
    """One run as the inventory's list of largest runs shows it."""

    id: str
    name: str
    project: str
    started_at: str
    host: str
    hardware: str
    duration_s: float | None
    provenance: str
    grid: str  # region code of the grid intensity used, e.g. "FRA", "WORLD"
    device_energy_j: float
    facility_energy_kwh: float
    location_kg_co2e: float
    market_kg_co2e: float
    embodied_kg_co2e: float | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Method:
    """A line of the methodology: a factor or assumption, its value, and where it comes from."""

    label: str
    text: str
    citation: Citation | None = None  # None: a definition, a user's value, or a gap said in `text`

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "text": self.text,
                "citation": None if self.citation is None else self.citation.to_dict()}


@dataclass
class Inventory:
    """A period and scope of the ledger, added up."""

    title: str
    generated_at: str
    scope: dict[str, str | None]  # since, until, project, tag, ledger
    group_by: str
    totals: Totals
    groups: dict[str, Totals]  # group key -> totals, in key order
    largest: list[RunLine]
    methodology: list[Method]
    notes: list[str]
    currency: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "generated_at": self.generated_at,
            "scope": self.scope,
            "group_by": self.group_by,
            "currency": self.currency,
            "totals": self.totals.to_dict(),
            "groups": [{"key": key, **totals.to_dict()} for key, totals in self.groups.items()],
            "largest_runs": [line.to_dict() for line in self.largest],
            "methodology": [m.to_dict() for m in self.methodology],
            "notes": self.notes,
        }


# -- the entry point --------------------------------------------------------------------
def inventory(
    ledger: Ledger,
    *,
    since: str | datetime.date | None = None,
    until: str | datetime.date | None = None,
    project: str | None = None,
    tag: str | None = None,
    group_by: str = "month",
    factors: Factors | None = None,
    override_location: bool = False,
    market: MarketInstruments | None = None,
    assumptions: Assumptions | None = None,
    wue: float | str | None = None,
    largest: int = LARGEST_RUNS,
    title: str | None = None,
) -> Inventory:
    """Totals, groups and the `largest` runs of the ledger's runs that started in [since, until)
    (a date alone for `until` means through that day), of `project` and with `tag`.

    `factors` give every run's PUE and price, and the grid of runs that recorded no location
    (default: the world average, labelled); with `override_location` their grid for every run.
    `market`: the instruments of market-based Scope 2 (none: each grid's average, labelled).
    """
    if group_by not in GROUP_BYS:
        raise ReportError(f"cannot group by {group_by!r}: use one of {', '.join(GROUP_BYS)}", parameter="group_by")
    if largest < 0:
        raise ReportError(f"largest = {largest}: give how many runs to list, 0 or more", parameter="largest")
    factors = factors or resolve_factors()
    if factors.intensity_signal != "average":
        raise FactorError(f"an inventory's location-based CO2e needs an average grid intensity, and "
                          f"{factors.intensity_citation} is {factors.intensity_signal}")
    since_iso, until_iso = period_bound(since, end=False), period_bound(until, end=True)
    check_period(since_iso, until_iso)
    with_location = ledger.schema_version >= 2
    rows, energy, gpus, superseded = ledger.read(
        lambda conn: _read(conn, since_iso, until_iso, project, tag, with_location=with_location)
    )
    accounting = _Accounting(factors, assumptions or Assumptions(), wue, market or MarketInstruments(),
                             override_location=override_location)
    placed = [(row, accounting.place(row, energy.get(row.id, {}))) for row in rows]
    accounting.allot_certificates()
    totals = Totals()
    groups: dict[str, Totals] = {}
    key_of = _GROUP_KEYS[group_by]
    candidates: list[tuple[float, str, _RunFigures]] = []
    for row, grid in placed:
        run_gpus = gpus.get(row.id, {})
        hardware = _hardware_label(tuple(run_gpus.items()))
        key = key_of(row, hardware)
        group = groups.get(key)
        if group is None:
            group = groups[key] = Totals()
        candidates.append(accounting.add(group, row, grid, energy.get(row.id, {}), run_gpus, hardware))
    for group in groups.values():
        totals.merge(group)
    top = heapq.nlargest(largest, candidates, key=lambda c: (c[0], c[1]))
    by_id = {row.id: row for row in rows} if top else {}
    return Inventory(
        title=title or _title(since_iso, until_iso, project, tag),
        generated_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        scope={"since": since_iso, "until": until_iso, "project": project, "tag": tag, "ledger": ledger.location},
        group_by=group_by,
        totals=totals,
        groups=dict(sorted(groups.items())),
        largest=[_run_line(by_id[run_id], figures) for _, run_id, figures in top],
        methodology=_methodology(accounting),
        notes=_notes(totals, group_by, accounting, superseded),
        currency=factors.currency,
    )


# -- reading the ledger ---------------------------------------------------------------------
def _read(
    conn: sa.Connection, since: str | None, until: str | None, project: str | None, tag: str | None,
    *, with_location: bool,
) -> tuple[list[sa.Row], dict[str, dict[str, float]], dict[str, dict[str, int]], int]:
    """Run rows, energy per run and provenance, GPU domains per run and device name, and how many
    parts of distributed jobs were left out (a crash left them beside their merged run, which
    counts their energy). A row's location is its JSON text (decoded once per distinct place);
    None in a ledger of schema 1 (`with_location` False), which has no location column."""
    runs = schema.runs
    where = []
    if since is not None:
        where.append(runs.c.started_at >= since)
    if until is not None:
        where.append(runs.c.started_at < until)
    if project is not None:
        where.append(runs.c.project == project)
    if tag is not None:
        where.append(runs.c.id.in_(sa.select(schema.tags.c.run_id).where(schema.tags.c.tag == tag)))
    superseded = conn.execute(
        sa.select(sa.func.count()).select_from(runs).where(*where, superseded_part(runs))
    ).scalar_one()
    where.append(~superseded_part(runs))
    chosen = sa.select(runs.c.id).where(*where)
    rows = conn.execute(
        sa.select(
            runs.c.id, runs.c.name, runs.c.project, runs.c.started_at, runs.c.duration_s,
            sa.func.coalesce(runs.c.host["hostname"].as_string(), runs.c.hostname).label("host"),
            runs.c.host["user"].as_string().label("user"),
            (sa.cast(runs.c.location, sa.Text) if with_location else sa.null()).label("location"),
        ).where(*where).order_by(runs.c.started_at, runs.c.id)
    ).all()
    e = schema.energy
    energy: dict[str, dict[str, float]] = {}
    for run_id, provenance, joules in conn.execute(
        sa.select(e.c.run_id, e.c.provenance, sa.func.sum(e.c.energy_j))
        .where(e.c.run_id.in_(chosen)).group_by(e.c.run_id, e.c.provenance)
    ).all():
        energy.setdefault(run_id, {})[provenance] = joules
    d = schema.domains
    gpus: dict[str, dict[str, int]] = {}
    for run_id, device, count in conn.execute(
        sa.select(d.c.run_id, d.c.device, sa.func.count())
        .where(d.c.run_id.in_(chosen), d.c.kind == "gpu").group_by(d.c.run_id, d.c.device)
    ).all():
        gpus.setdefault(run_id, {})[device] = count
    return rows, energy, gpus, int(superseded)


# -- one run's figures ----------------------------------------------------------------------
@dataclass(frozen=True)
class _RunFigures:
    """What the list of largest runs shows of one run."""

    device_energy_j: float
    facility_kwh: float
    location_kg: float
    market_kg: float
    embodied_kg: float | None
    provenance: str
    hardware: str
    grid: str


@dataclass
class _Grid:
    """A grid the runs drew from: its factors, where they came from in words, and its runs."""

    factors: Factors
    water: WaterFactors
    basis: str
    runs: int = 0
    device_energy_j: float = 0.0


class _Accounting:
    """Places each run on its grid, then adds its aggregates into a group's totals; remembers
    the grids and embodied rates it used."""

    def __init__(self, factors: Factors, assumptions: Assumptions, wue: float | str | None,
                 market: MarketInstruments, *, override_location: bool) -> None:
        self.factors = factors
        self.assumptions = assumptions
        self.wue = wue
        self.water = resolve_water(factors, wue)
        self.market = market
        self.override_location = override_location
        self.located = 0  # runs that recorded where they ran
        self.unplaced: dict[str, int] = {}  # why a recorded location gave no grid -> runs
        basis = ("given for every run, overriding recorded locations" if override_location
                 else "the report's factors, for runs with no location recorded")
        self.grids = {_REPORT_GRID: _Grid(factors, self.water, basis)}  # region code or _REPORT_GRID -> grid
        self.scope2: dict[str, Scope2] = {}  # the same keys -> Scope 2 of all the grid's runs
        self.rates_used: dict[str, Rate] = {}
        self._places: dict[str | None, tuple[str, bool, str | None]] = {}  # location JSON -> see _look_up
        self._rates: dict[str, Rate | None] = {}
        self._bands = {p.value: provenance_band(p) or (1.0, 1.0) for p in Provenance}
        self._ranks = {p.value: p.rank for p in Provenance}

    def place(self, row: sa.Row, energy: dict[str, float]) -> str:
        """The key of the grid the run of `row` takes (its location's, looked up once per place)."""
        found = self._places.get(row.location)
        if found is None:
            found = self._places[row.location] = self._look_up(row.location)
        key, located, why = found
        self.located += located
        if why is not None:
            self.unplaced[why] = self.unplaced.get(why, 0) + 1
        grid = self.grids[key]
        grid.runs += 1
        grid.device_energy_j += sum(energy.values())
        return key

    def _look_up(self, location_json: str | None) -> tuple[str, bool, str | None]:
        """(grid key, whether a location was recorded, why it gives no grid or None) of a run's location."""
        data = None if location_json is None else json.loads(location_json)
        if data is None:
            return _REPORT_GRID, False, None
        if self.override_location:
            return _REPORT_GRID, True, None
        code, why = location_grid(Location.from_dict(data))
        if code is None:
            return _REPORT_GRID, True, why
        try:
            found = resolve_factors(code)
        except UnknownRegionError:
            return _REPORT_GRID, True, f"{code!r} is not a grid with a known intensity"
        if found.region not in self.grids:
            on_grid = _on_grid(self.factors, found)
            self.grids[found.region] = _Grid(on_grid, resolve_water(on_grid, self.wue), "the runs' recorded location")
        return found.region, True, None

    def allot_certificates(self) -> None:
        """Each grid's Scope 2 over all its runs, certificates allotted in proportion to facility
        kWh: grid by grid is the same share as run by run, so a grid's runs share its intensities."""
        kwh = {key: grid.device_energy_j * self.factors.pue / J_PER_KWH for key, grid in self.grids.items()}
        allotted = allocate_certificates(self.market, kwh)
        for key, grid in self.grids.items():
            f = grid.factors
            basis = f"{f.intensity_g_per_kwh:.4g} g CO2e/kWh, {f.region_name} ({f.intensity_citation})"
            self.scope2[key] = scope2_of(kwh[key], None, f.intensity_g_per_kwh, basis, self.market, allotted[key])

    def used(self) -> dict[str, _Grid]:
        """The grids that runs took, by key, the report's first; the report's alone when no run took any."""
        return {key: grid for key, grid in self.grids.items() if grid.runs} or {_REPORT_GRID: self.grids[_REPORT_GRID]}

    def add(
        self, t: Totals, row: sa.Row, grid_key: str, energy: dict[str, float], gpus: dict[str, int], hardware: str
    ) -> tuple[float, str, _RunFigures]:
        """Add the run of `row`, on the grid of `grid_key`, to `t`; (its facility kWh, its id, its figures) for ranking."""
        t.runs += 1
        joules = low = high = 0.0
        by_provenance = t.energy_by_provenance_j
        for provenance, j in energy.items():
            band = self._bands.get(provenance, (1.0, 1.0))
            joules += j
            low += j * band[0]
            high += j * band[1]
            by_provenance[provenance] = by_provenance.get(provenance, 0.0) + j
        t.device_energy_j.add(joules, (low, high))
        pue = self.factors.pue
        kwh, kwh_range = joules * pue / J_PER_KWH, (low * pue / J_PER_KWH, high * pue / J_PER_KWH)
        t.facility_energy_kwh.add(kwh, kwh_range)
        location, market = run_co2e(kwh, kwh_range, self.scope2[grid_key])
        t.location_kg_co2e.add(*location)
        t.market_kg_co2e.add(*market)
        if self.factors.price_per_kwh is not None:
            price = self.factors.price_per_kwh
            t.cost.add(kwh * price, (kwh_range[0] * price, kwh_range[1] * price))
        embodied_kg = self._embodied(t, row.duration_s, gpus)
        grid = self.grids[grid_key]
        self._water(t, joules, (low, high), grid.water)
        provenance = max(energy, key=lambda p: self._ranks.get(p, -1)) if energy else UNKNOWN
        return kwh, row.id, _RunFigures(joules, kwh, location[0], market[0], embodied_kg, provenance, hardware,
                                        grid.factors.region)

    def _embodied(self, t: Totals, duration_s: float | None, gpus: dict[str, int]) -> float | None:
        """Add the run's GPU-hours and embodied CO2e to `t`; the run's kg, None if nothing covered it."""
        hours = (duration_s or 0.0) / S_PER_HOUR
        kg = None
        for device, count in gpus.items():
            device_h = count * hours
            t.device_hours += device_h
            found = self._rate(device)
            if found is None:
                t.embodied_gaps_device_hours[device] = t.embodied_gaps_device_hours.get(device, 0.0) + device_h
                continue
            self.rates_used[found.hardware] = found
            run_kg = device_h * found.kg_per_device_hour
            kg = (kg or 0.0) + run_kg
            t.embodied_kg_co2e.add(run_kg, (device_h * found.range_kg_per_device_hour[0],
                                            device_h * found.range_kg_per_device_hour[1]))
        return kg

    def _rate(self, device: str) -> Rate | None:
        if device not in self._rates:
            hardware = hardware_for_device(device)
            self._rates[device] = None if hardware is None else rate(hardware, self.assumptions)
        return self._rates[device]

    def _water(self, t: Totals, joules: float, bounds: tuple[float, float], grid_water: WaterFactors) -> None:
        """On-site water at the report's WUE, off-site at the water intensity of the run's grid
        (its range widened by that intensity's own, where it was estimated from the mix)."""
        litres = water(joules, bounds, self.factors.pue, grid_water)
        if litres.onsite_l is not None:
            t.onsite_water_l.add(litres.onsite_l, litres.onsite_l_range)
        if litres.offsite_l is not None:
            t.offsite_water_l.add(litres.offsite_l, litres.offsite_l_range)


def _on_grid(base: Factors, grid: Factors) -> Factors:
    """`base` with the grid intensity of `grid`: one PUE, price and currency for the whole inventory."""
    return dataclasses.replace(
        base, region=grid.region, region_name=grid.region_name, intensity_g_per_kwh=grid.intensity_g_per_kwh,
        intensity_citation=grid.intensity_citation, intensity_is_default=False,
        intensity_method=grid.intensity_method, household_country=grid.household_country,
        location_basis="the run's recorded location",
    )


def run_co2e(
    facility_kwh: float, kwh_range: tuple[float, float], grid: Scope2
) -> tuple[tuple[float, tuple[float, float]], tuple[float, tuple[float, float]]]:
    """(location-based, market-based) kg CO2e, each with its range, of one run's facility energy at
    the intensities of its grid's Scope 2 (`grid`: all that grid's runs). Shown side by side, never added."""
    location = grid.location_intensity_g_per_kwh / G_PER_KG
    market = grid.market_intensity_g_per_kwh / G_PER_KG
    return ((facility_kwh * location, (kwh_range[0] * location, kwh_range[1] * location)),
            (facility_kwh * market, (kwh_range[0] * market, kwh_range[1] * market)))


@functools.lru_cache(maxsize=1024)
def _hardware_label(gpus: tuple[tuple[str, int], ...]) -> str:
    """'8× H100-SXM', '2× A10 + 1× T4', or 'no GPU' for a run that measured none."""
    if not gpus:
        return "no GPU"
    named: dict[str, int] = {}
    for device, count in gpus:
        name = hardware_for_device(device) or device
        named[name] = named.get(name, 0) + count
    return " + ".join(f"{count}× {name}" for name, count in sorted(named.items()))


#: group-by -> the key of a run, from its row and its hardware label
_GROUP_KEYS: dict[str, Callable[[sa.Row, str], str]] = {
    "month": lambda row, _: (row.started_at or "")[:7] or UNKNOWN,
    "project": lambda row, _: row.project,
    "hardware": lambda _, hardware: hardware,
    "host": lambda row, _: row.host or UNKNOWN,
    "user": lambda row, _: row.user or NOT_RECORDED_USER,
}


def _run_line(row: sa.Row, figures: _RunFigures) -> RunLine:
    return RunLine(
        id=row.id, name=row.name, project=row.project, started_at=row.started_at, host=row.host or UNKNOWN,
        hardware=figures.hardware, duration_s=row.duration_s, provenance=figures.provenance, grid=figures.grid,
        device_energy_j=figures.device_energy_j, facility_energy_kwh=figures.facility_kwh,
        location_kg_co2e=figures.location_kg, market_kg_co2e=figures.market_kg, embodied_kg_co2e=figures.embodied_kg,
    )


# -- words ---------------------------------------------------------------------------------
def _title(since: str | None, until: str | None, project: str | None, tag: str | None) -> str:
    scope = [f"project {project}"] if project else []
    if tag:
        scope.append(f"tag {tag}")
    period = f"{(since or 'the first run')[:10]} to {_until_day(until)}" if since or until else "all runs"
    return "Sustainability inventory: " + ", ".join([period, *scope])


def _until_day(until: str | None) -> str:
    """The last day an exclusive end bound includes ('2026-01-01T00:00…' -> '2025-12-31')."""
    if until is None:
        return "the last run"
    end = datetime.datetime.fromisoformat(until)
    if end.time() == datetime.time(0):
        end -= datetime.timedelta(days=1)
    return end.date().isoformat()


def _notes(totals: Totals, group_by: str, acc: _Accounting, superseded: int = 0) -> list[str]:
    notes = [_location_note(totals.runs, acc)]
    if superseded:
        notes.append(f"{superseded:,} part(s) of distributed jobs left beside their merged run by a crash are "
                     "not counted: their energy is in that run")
    notes += [f"{_runs(runs)} recorded a location that gives no grid ({why}): the report's factors are used"
              for why, runs in sorted(acc.unplaced.items())]
    notes.append("market-based CO2e (GHG Protocol Scope 2), beside location-based and never added to it: "
                 + "; ".join(f"{g.factors.region_name}: {acc.scope2[key].market_basis}"
                             for key, g in acc.used().items()))
    if totals.runs == 0:
        notes.append("no run in this period and scope")
    if totals.embodied_gaps_device_hours:
        gaps = ", ".join(f"{device} ({hours:,.1f} device-h)"
                         for device, hours in sorted(totals.embodied_gaps_device_hours.items()))
        notes.append(f"no manufacturing footprint for {gaps}: their embodied CO2e is not counted")
    if acc.water.wue_l_per_kwh is None:
        notes.append("no WUE given: on-site water is not estimated")
    dry = [g for g in acc.used().values() if g.water.ewif_l_per_kwh is None]
    if dry:
        notes.append(f"no water intensity of electricity for {', '.join(g.factors.region_name for g in dry)}: "
                     f"off-site water of their {_runs(sum(g.runs for g in dry))} is not estimated")
    if group_by == "user":
        notes.append(f"runs store no user unless their host record has one: those are grouped as {NOT_RECORDED_USER!r}")
    return notes


def _runs(n: int) -> str:
    return f"{n:,} run" if n == 1 else f"{n:,} runs"


def _location_note(runs: int, acc: _Accounting) -> str:
    """How many runs recorded where they ran, and which grid their CO2e used."""
    report = acc.factors
    given = f"{report.region_name}, {report.intensity_g_per_kwh:.4g} g CO2e/kWh"
    if acc.override_location:
        return (f"the factors given ({given}) apply to every run, overriding the recorded location "
                f"of {acc.located:,} of {runs:,} runs")
    placed = [g for key, g in acc.grids.items() if key != _REPORT_GRID and g.runs]
    note = f"{acc.located:,} of {runs:,} runs recorded where they ran"
    if placed:
        note += f": their CO2e and off-site water use that grid ({'; '.join(g.factors.region_name for g in placed)})"
    rest = acc.grids[_REPORT_GRID].runs
    if rest:
        default = ", the world average: no country given" if report.intensity_is_default else ""
        note += f"; the report's factors for the other {_runs(rest)} ({given}{default})"
    return note


def _methodology(acc: _Accounting) -> list[Method]:
    """Every factor and assumption behind the inventory, each with its source."""
    factors, water = acc.factors, acc.water
    lines = [
        Method("Device energy", "measured by counters or sampled power, or estimated, per run and "
               "domain (provenance shares below); ranges from the uncertainty band of each provenance"),
    ]
    for provenance, (low, high, citation) in uncertainty_bands().items():
        lines.append(Method(f"Uncertainty band: {provenance}", f"× {low:g} to × {high:g}", citation))
    pue_source = factors.pue_citation
    lines.append(Method("PUE", f"{factors.pue:g} ({factors.pue_basis}), for every run; "
                        "facility energy = device energy × PUE", pue_source))
    for key, grid in acc.used().items():
        lines += _grid_methods(grid, acc.scope2[key])
    if factors.price_per_kwh is not None:
        lines.append(Method("Electricity price", f"{factors.price_per_kwh:g} {factors.currency or ''}/kWh".rstrip()
                            + ", for every run", factors.price_citation))
    lines += _embodied_methods(acc.assumptions, acc.rates_used)
    wue_text = (f"{water.wue_l_per_kwh:g} L/kWh of device energy ({water.wue_basis}); {WUE_DEFINITION}"
                if water.wue_l_per_kwh is not None else water.wue_basis)
    lines.append(Method("On-site water (WUE)", wue_text, water.wue_citation))
    for grid in acc.used().values():
        grid_water = grid.water
        ewif_text = (f"{grid_water.ewif_l_per_kwh:.3g} L per kWh generated ({grid_water.ewif_region}: "
                     f"{grid_water.ewif_basis}) × facility energy"
                     if grid_water.ewif_l_per_kwh is not None else f"no factor for {grid.factors.region_name}: not estimated")
        lines.append(Method("Off-site water (electricity)", ewif_text, grid_water.ewif_citation))
    lines.append(Method("Water method", "on-site = WUE × device kWh; off-site = water intensity × facility kWh "
                        "(Li, Yang, Islam & Ren 2023, §3); estimates, ranges from the energy's band, widened by the "
                        "water intensity's own range where it was estimated from a generation mix",
                        Citation("Li, Yang, Islam & Ren, Making AI Less 'Thirsty'", 2023, "https://arxiv.org/abs/2304.03271")))
    lines.append(Method("Totals and ranges", "each total adds its runs; a range adds their low and high ends "
                        "(the widest envelope: errors of runs measured alike do not cancel)"))
    return lines


def _grid_methods(grid: _Grid, scope2: Scope2) -> list[Method]:
    """The location- and market-based lines of one grid the runs took."""
    f = grid.factors
    intensity = f"{f.intensity_g_per_kwh:.1f} g CO2e/kWh, {f.region_name}, yearly average; {_runs(grid.runs)} ({grid.basis})"
    if f.intensity_is_default:
        intensity += "; world average: no country given"
    return [Method("Grid intensity (location-based)", intensity, f.intensity_citation),
            Method("Market-based CO2e", f"{f.region_name}: {scope2.market_basis}", GUIDANCE)]


def _embodied_methods(assumptions: Assumptions, rates: dict[str, Rate]) -> list[Method]:
    lines = [Method("Embodied CO2e", "manufacturing footprint amortised per GPU-hour over service life × "
                    "utilization (BLOOM's method); GPU-hours = GPU domains × run duration; range from the "
                    "service life to the shorter one")]
    if assumptions.life_years is not None or assumptions.utilization is not None:
        given = [f"service life {assumptions.life_years:g} years" if assumptions.life_years else None,
                 f"utilization {assumptions.utilization:g}" if assumptions.utilization else None]
        lines.append(Method("Embodied assumptions (given)", ", ".join(g for g in given if g)))
    for hardware, found in sorted(rates.items()):
        citation = found.citations[0] if found.citations else None
        lines.append(Method(f"Embodied: {hardware}",
                            f"{found.kg_per_device_hour * G_PER_KG:.3g} g CO2e per device-hour = {found.method}",
                            citation))
    covered = sorted({row.hardware for row in footprints()})
    lines.append(Method("Embodied coverage", "footprints known for " + ", ".join(covered) +
                        "; NVIDIA's PCF summaries for HGX H100 and B200 were not found in a readable "
                        "source, so other hardware is a labelled gap"))
    return lines


def scope_text(inv: Inventory) -> Iterable[str]:
    """The period and filters of an inventory in words, one item each."""
    scope = inv.scope
    yield f"period: {(scope['since'] or 'first run')[:10]} to {_until_day(scope['until'])}"
    if scope["project"]:
        yield f"project: {scope['project']}"
    if scope["tag"]:
        yield f"tag: {scope['tag']}"
    yield f"grouped by {inv.group_by}"
