"""`inventory`: a period and scope of a real ledger added up, checked against accounting's own per-run figures."""

from __future__ import annotations

import csv
import io
import json

import pytest

from joulemeter.meter.errors import JoulemeterError
from joulemeter.meter.meter import EnergyMeter
from joulemeter.meter.run import Domain, DomainEnergy, Location, Provenance, Run, Status
from joulemeter.meter.store import open_ledger
from joulemeter.reports.accounting import footprint, scope2
from joulemeter.reports.embodied import Assumptions, embodied
from joulemeter.reports.factors import factors_for_run, resolve_factors
from joulemeter.reports.inventory import NOT_RECORDED_USER, inventory
from joulemeter.reports.render.inventory import render_inventory
from joulemeter.reports.scope2 import Certificate, MarketInstruments, allocate_certificates
from joulemeter.reports.water import resolve_water
from tests.doubles import LinearCounterSource
from tests.test_ledger_migration import _v1_ledger

A100 = "NVIDIA A100-SXM4-80GB"
UNCOVERED = "NVIDIA L4"  # in the hardware table, no embodied footprint cited for it
FACTORS = resolve_factors("US", pue=1.2, price_per_kwh=0.2, currency="USD")


def make_run(i: int, *, started: str, project: str = "llm", tags=(), device: str = A100, gpus: int = 2,
             gpu_j: float = 3.6e6, cpu_j: float = 1e6, host=None, name=None, gpu_provenance=Provenance.COUNTER) -> Run:
    domains = [Domain(f"gpu:{k}", "gpu", device, gpu_provenance, "NVML") for k in range(gpus)]
    domains.append(Domain("cpu:0", "cpu", "Intel Xeon", Provenance.ESTIMATED, "TDP × utilisation"))
    energy = {d.name: DomainEnergy(d.name, gpu_j, gpu_provenance, 300.0, 400.0) for d in domains[:-1]}
    energy["cpu:0"] = DomainEnergy("cpu:0", cpu_j, Provenance.ESTIMATED, 50.0, None)
    return Run(id=f"{i:032x}", name=name or f"run-{i}", project=project, tags=list(tags), status=Status.COMPLETED,
               started_at=started, duration_s=1800.0 * (i + 1), host=host if host is not None else {"hostname": "node-a"},
               domains=domains, energy=energy)


RUNS = [
    make_run(0, started="2025-01-10T08:00:00+00:00", tags=["prod"]),
    make_run(1, started="2025-01-31T23:59:59+00:00", project="vision", device=UNCOVERED, host={"hostname": "node-b", "user": "ada"}),
    make_run(2, started="2025-02-01T00:00:00+00:00", tags=["prod"], gpu_j=9e6, gpu_provenance=Provenance.SAMPLED),
    make_run(3, started="2025-03-15T12:00:00+00:00", project="vision", gpus=0, host={"hostname": "node-b", "user": "ada"}),
]


@pytest.fixture
def ledger(ledger_location):
    with open_ledger(ledger_location) as book:
        book.save_runs(RUNS)
    with open_ledger(ledger_location, for_reading=True) as book:
        yield book


def _sum_footprints(runs):
    fps = [footprint(run, FACTORS) for run in runs]
    return sum(fp.energy_kwh for fp in fps), sum(fp.kg_co2e for fp in fps), fps


def test_totals_equal_accounting_footprints_of_the_same_runs(ledger):
    inv = inventory(ledger, factors=FACTORS)
    kwh, kg, fps = _sum_footprints(RUNS)
    assert inv.totals.runs == len(RUNS)
    assert inv.totals.device_energy_j.value == pytest.approx(sum(r.total_energy_j for r in RUNS))
    assert inv.totals.facility_energy_kwh.value == pytest.approx(kwh)
    assert inv.totals.location_kg_co2e.value == pytest.approx(kg)
    assert inv.totals.cost.value == pytest.approx(kwh * 0.2)
    low = sum((fp.energy_kwh_range or (fp.energy_kwh,) * 2)[0] for fp in fps)
    high = sum((fp.energy_kwh_range or (fp.energy_kwh,) * 2)[1] for fp in fps)
    assert (inv.totals.facility_energy_kwh.low, inv.totals.facility_energy_kwh.high) == pytest.approx((low, high))


def test_embodied_total_equals_embodied_of_each_run_and_uncovered_hardware_is_a_named_gap(ledger):
    inv = inventory(ledger, factors=FACTORS)
    assert inv.totals.embodied_kg_co2e.value == pytest.approx(sum(embodied(r).kg_co2e for r in RUNS))
    assert inv.totals.embodied_gaps_device_hours == {UNCOVERED: pytest.approx(2 * 1.0)}  # 2 GPUs × 3,600 s
    assert any(UNCOVERED in note for note in inv.notes)


def test_a_given_service_life_changes_embodied_and_is_listed_in_the_methodology(ledger):
    base = inventory(ledger, factors=FACTORS)
    given = inventory(ledger, factors=FACTORS, assumptions=Assumptions(life_years=3.0))
    assert given.totals.embodied_kg_co2e.value == pytest.approx(base.totals.embodied_kg_co2e.value * 6 / 3)
    assert any("service life 3 years" in m.text for m in given.methodology)


def test_until_a_date_includes_that_whole_day_and_since_starts_at_midnight(ledger):
    january = inventory(ledger, since="2025-01-01", until="2025-01-31", factors=FACTORS)
    assert january.totals.runs == 2  # 23:59:59 on the 31st is in, 1 February 00:00 is out
    february_on = inventory(ledger, since="2025-02-01", factors=FACTORS)
    assert february_on.totals.runs == 2


def test_project_and_tag_narrow_the_scope(ledger):
    assert inventory(ledger, project="vision", factors=FACTORS).totals.runs == 2
    assert inventory(ledger, tag="prod", factors=FACTORS).totals.runs == 2
    assert inventory(ledger, project="vision", tag="prod", factors=FACTORS).totals.runs == 0


@pytest.mark.parametrize("group_by,keys", [
    ("month", {"2025-01", "2025-02", "2025-03"}),
    ("project", {"llm", "vision"}),
    ("hardware", {"2× A100-SXM", "2× L4", "no GPU"}),
    ("host", {"node-a", "node-b"}),
    ("user", {"ada", NOT_RECORDED_USER}),
])
def test_groups_partition_the_runs(ledger, group_by, keys):
    inv = inventory(ledger, group_by=group_by, factors=FACTORS)
    assert set(inv.groups) == keys
    assert sum(g.runs for g in inv.groups.values()) == inv.totals.runs
    assert sum(g.device_energy_j.value for g in inv.groups.values()) == pytest.approx(inv.totals.device_energy_j.value)


def test_measured_share_counts_counter_and_sampled_but_not_estimated(ledger):
    inv = inventory(ledger, factors=FACTORS)
    estimated = 4 * 1e6  # every run's CPU domain
    total = sum(r.total_energy_j for r in RUNS)
    assert inv.totals.measured_share == pytest.approx((total - estimated) / total)


def test_largest_runs_are_by_facility_energy_and_limited(ledger):
    inv = inventory(ledger, factors=FACTORS, largest=2)
    assert len(inv.largest) == 2
    assert inv.largest[0].name == "run-2"  # 2 × 9 MJ; the others draw 2 × 3.6 MJ or less
    assert inv.largest[0].facility_energy_kwh >= inv.largest[1].facility_energy_kwh
    assert inv.largest[0].provenance == "estimated"  # the weakest of its domains, as its total can claim


def test_water_needs_a_wue_for_on_site_and_uses_the_country_for_off_site(ledger):
    none = inventory(ledger, factors=FACTORS)
    assert none.totals.onsite_water_l.value is None
    assert none.totals.offsite_water_l.value == pytest.approx(none.totals.facility_energy_kwh.value * 3.14)
    given = inventory(ledger, factors=FACTORS, wue=0.5)
    device_kwh = given.totals.device_energy_j.value / 3.6e6
    assert given.totals.onsite_water_l.value == pytest.approx(device_kwh * 0.5)


def test_without_instruments_market_based_is_the_grid_average_and_says_it_is_the_last_resort(ledger):
    inv = inventory(ledger, factors=FACTORS)
    assert inv.totals.market_kg_co2e.value == pytest.approx(inv.totals.location_kg_co2e.value)
    assert any(note.startswith("market-based") and "last resort" in note for note in inv.notes)
    assert not any("not computed" in note or "do not record where" in note for note in inv.notes)


# -- runs that recorded where they ran ----------------------------------------------------------
def metered(country: str, power_w: float) -> Run:
    """A short run metered in `country` by a counter drawing `power_w`."""
    with EnergyMeter(f"in-{country}", country=country, store=False, interval_s=0.01,
                     sources=[LinearCounterSource(power_w)]) as meter:
        pass
    return meter.run


@pytest.fixture
def two_countries(ledger_location):
    runs = [metered("FR", 2e6), metered("DE", 1e6)]
    with open_ledger(ledger_location) as book:
        book.save_runs(runs)
    with open_ledger(ledger_location, for_reading=True) as book:
        yield book, runs


def _own_grid(run, market=None, certificate_kwh=None):
    """Scope 2 of `run` at its own grid, with the report's PUE: what the inventory should show for it."""
    return scope2(run, factors_for_run(run, pue=FACTORS.pue), market, certificate_kwh=certificate_kwh)


def test_each_run_takes_the_intensity_of_the_grid_it_ran_on(two_countries):
    ledger, runs = two_countries
    inv = inventory(ledger, factors=FACTORS)
    by_id = {line.id: line for line in inv.largest}
    for run in runs:
        assert by_id[run.id].grid == factors_for_run(run).region
        assert by_id[run.id].location_kg_co2e == pytest.approx(_own_grid(run).location_kg)
    assert inv.totals.location_kg_co2e.value == pytest.approx(sum(_own_grid(r).location_kg for r in runs))
    assert {by_id[r.id].grid for r in runs} == {"FRA", "DEU"}
    assert inv.notes[0].startswith("2 of 2 runs recorded where they ran")
    cited = [m for m in inv.methodology if m.label == "Grid intensity (location-based)"]
    assert {m.citation for m in cited} == {factors_for_run(r).intensity_citation for r in runs}


def test_a_given_country_overrides_every_runs_location_and_says_so(two_countries):
    ledger, runs = two_countries
    inv = inventory(ledger, factors=FACTORS, override_location=True)
    given = sum(footprint(r, FACTORS).kg_co2e for r in runs)
    assert inv.totals.location_kg_co2e.value == pytest.approx(given)
    assert given != pytest.approx(sum(_own_grid(r).location_kg for r in runs))
    assert {line.grid for line in inv.largest} == {FACTORS.region}
    assert any("overriding the recorded location of 2 of 2 runs" in note for note in inv.notes)


def test_market_based_at_a_supplier_factor_stands_beside_location_based_and_is_not_added(two_countries):
    ledger, runs = two_countries
    market = MarketInstruments(supplier_factor_g_per_kwh=resolve_factors("DE").intensity_g_per_kwh / 2,
                               supplier="test contract")
    plain = inventory(ledger, factors=FACTORS)
    inv = inventory(ledger, factors=FACTORS, market=market)
    expected = sum(_own_grid(r, market).market_kg for r in runs)
    assert inv.totals.market_kg_co2e.value == pytest.approx(expected)
    assert inv.totals.market_kg_co2e.value != pytest.approx(inv.totals.location_kg_co2e.value)
    assert inv.totals.location_kg_co2e.value == pytest.approx(plain.totals.location_kg_co2e.value)
    assert any("supplier's factor" in note and "test contract" in note for note in inv.notes)


def test_certificates_are_allotted_to_runs_in_proportion_to_their_facility_energy(two_countries):
    ledger, runs = two_countries
    kwh = {r.id: _own_grid(r).facility_kwh for r in runs}
    market = MarketInstruments(supplier_factor_g_per_kwh=100.0,
                               certificates=(Certificate("wind GOs", sum(kwh.values()) / 2 / 1000),))
    allotted = allocate_certificates(market, kwh)
    inv = inventory(ledger, factors=FACTORS, market=market)
    by_id = {line.id: line for line in inv.largest}
    for run in runs:
        assert by_id[run.id].market_kg_co2e == pytest.approx(_own_grid(run, market, allotted[run.id]).market_kg)
    assert any("covered by certificates (wind GOs)" in m.text for m in inv.methodology)


def test_off_site_water_uses_each_runs_country_and_names_the_runs_without_a_factor(ledger_location):
    runs = [metered("US", 2e6), metered("FR", 1e6)]  # the US's cited factor; France's from its mix
    with open_ledger(ledger_location) as book:
        book.save_runs(runs)
    with open_ledger(ledger_location, for_reading=True) as book:
        inv = inventory(book, factors=FACTORS)
        world = inventory(book, factors=resolve_factors(pue=1.2), override_location=True)
    expected = sum(_own_grid(r).facility_kwh * resolve_water(factors_for_run(r, pue=FACTORS.pue)).ewif_l_per_kwh
                   for r in runs)
    assert inv.totals.offsite_water_l.value == pytest.approx(expected)
    assert not any("off-site water of their" in note for note in inv.notes)
    assert world.totals.offsite_water_l.value is None  # the world average has no generation mix
    assert any("off-site water of their 2 runs " in note for note in world.notes)


def test_a_location_with_no_known_grid_takes_the_report_factors_and_is_named(ledger_location):
    run = make_run(5, started="2025-06-01T00:00:00+00:00")
    run.location = Location(country="Atlantis", source="api")
    with open_ledger(ledger_location) as book:
        book.save_runs([run])
    with open_ledger(ledger_location, for_reading=True) as book:
        inv = inventory(book, factors=FACTORS)
    assert inv.totals.location_kg_co2e.value == pytest.approx(footprint(run, FACTORS).kg_co2e)
    assert any("Atlantis" in note and "report's factors" in note for note in inv.notes)


def test_a_version_1_ledger_read_as_it_is_has_no_locations(ledger_location):
    _v1_ledger(ledger_location)
    with open_ledger(ledger_location, for_reading=True) as book:
        assert book.schema_version == 1
        run = book.get_run("v1-run")
        inv = inventory(book, factors=FACTORS)
    assert inv.totals.runs == 1
    assert inv.totals.location_kg_co2e.value == pytest.approx(footprint(run, FACTORS).kg_co2e)
    assert inv.notes[0].startswith("0 of 1 runs recorded where they ran")


def test_methodology_cites_every_factor_used(ledger):
    inv = inventory(ledger, factors=FACTORS, wue="aws-2021")
    cited = {m.label for m in inv.methodology if m.citation is not None}
    assert {"Grid intensity (location-based)", "Embodied: A100-SXM", "On-site water (WUE)",
            "Off-site water (electricity)", "Uncertainty band: sampled", "Uncertainty band: estimated"} <= cited


@pytest.mark.parametrize("kwargs,match", [({"group_by": "team"}, "group by"), ({"since": "last tuesday"}, "ISO 8601"),
                                          ({"largest": -1}, "largest")])
def test_bad_arguments_say_what_to_give(ledger, kwargs, match):
    with pytest.raises(JoulemeterError, match=match):
        inventory(ledger, factors=FACTORS, **kwargs)


def test_an_empty_period_is_an_inventory_of_nothing_said_so(ledger):
    inv = inventory(ledger, since="2030-01-01", factors=FACTORS)
    assert inv.totals.runs == 0 and inv.groups == {} and inv.largest == []
    assert "no run in this period and scope" in inv.notes
    for fmt in ("html", "md", "latex", "json", "csv"):
        assert render_inventory(inv, fmt)


def test_every_format_renders_and_the_data_formats_parse(ledger):
    inv = inventory(ledger, factors=FACTORS, group_by="project", wue="industry")
    data = json.loads(render_inventory(inv, "json"))
    assert data["schema"] == "joulemeter-inventory/1"
    assert data["totals"]["facility_energy_kwh"]["value"] == pytest.approx(inv.totals.facility_energy_kwh.value)
    rows = list(csv.DictReader(io.StringIO(render_inventory(inv, "csv"))))
    assert [r["group"] for r in rows] == ["llm", "vision", "total"]
    assert float(rows[-1]["location_kg_co2e"]) == pytest.approx(inv.totals.location_kg_co2e.value)
    md = render_inventory(inv, "md")
    assert "## Methodology and sources" in md and "range" in md
    assert "\\begin{tabular}" in render_inventory(inv, "latex")
    assert "Content-Security-Policy" in render_inventory(inv, "html")


def test_hostile_names_are_escaped_in_every_document_format(ledger_location):
    hostile = make_run(9, started="2025-05-01T00:00:00+00:00", name="<script>x</script> | 100% & _", project="p|q")
    with open_ledger(ledger_location) as book:
        book.save_runs([hostile])
    with open_ledger(ledger_location, for_reading=True) as book:
        inv = inventory(book, factors=FACTORS, group_by="project")
    assert "<script>" not in render_inventory(inv, "html")
    assert "p|q" not in render_inventory(inv, "md")
    assert "100% &" not in render_inventory(inv, "latex")


def test_an_unknown_format_is_refused(ledger):
    from joulemeter.meter.errors import UnknownFormatError

    with pytest.raises(UnknownFormatError):
        render_inventory(inventory(ledger, factors=FACTORS), "parquet")
