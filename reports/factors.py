"""Conversion factors for a region: grid carbon intensity, PUE and electricity price, each cited.

Grid intensity comes from the data CodeCarbon ships, read through its public getters
(countries: Our World in Data / Ember, lifecycle; US states: EPA eGRID, combustion;
Canadian provinces: CodeCarbon's own method, the combustion emissions of the fossil share of
the generation mix; Chinese provinces: MEE/NBS; Nordic bidding zones: ENTSO-E). Each
Factors says which method its intensity follows. PUE presets, prices, equivalences and cloud
regions live in `reports/data/*.csv`, each row with its source and year.

A run's own location (meter.place) picks its factors (`factors_for_run`); a country given
by the caller overrides it and the Factors say so (`location_basis`).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import logging
import unicodedata
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from joulemeter.meter.errors import FactorError, UnknownRegionError
from joulemeter.meter.run import Location, Run
from joulemeter.meter.tables import Citation, load_table, read_rows
from joulemeter.meter.units import G_PER_KG, G_PER_POUND, KWH_PER_MWH

logger = logging.getLogger("joulemeter.reports")

WORLD = "WORLD"
EU = "EU"
DEFAULT_HOUSEHOLD_COUNTRY = "US"  # see _household_country: the reference most ML-energy papers use
R = TypeVar("R")

#: How each grid's intensity was computed, as Factors.intensity_method says it
LIFECYCLE = "lifecycle (generation and upstream, Ember / IPCC AR5 factors)"
COMBUSTION = "combustion at the power plant (direct emissions only)"


@dataclass(frozen=True)
class Factors:
    """Everything that turns device joules into facility kWh, kg CO2e and money for one place."""

    region: str  # resolved code, e.g. "USA", "US-CA", "FRA", "WORLD"
    region_name: str
    intensity_g_per_kwh: float
    intensity_citation: Citation
    intensity_is_default: bool  # nothing was known: the world average was used
    pue: float
    pue_citation: Citation | None  # None for a user value or 1.0 "measured at the device"
    price_per_kwh: float | None
    currency: str | None
    price_citation: Citation | None
    household_country: str  # which country's household/per-person equivalences to prefer
    pue_basis: str = "as given"  # where the PUE came from, in words, when it has no citation
    intensity_method: str | None = None  # LIFECYCLE, COMBUSTION, or None where unknown (given)
    intensity_signal: Literal["average", "marginal"] = "average"  # a grid average, or the marginal plant
    location_basis: str | None = None  # where the region came from, e.g. "the run's location (api)"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, citations as dicts (None where there is none)."""
        return dataclasses.asdict(self)


# -- data files ----------------------------------------------------------------
def data_table(name: str, record: type[R]) -> tuple[R, ...]:
    """`reports/data/<name>` as one `record` per row, each row checked (read once)."""
    return load_table("joulemeter.reports", name, record)


def read_table(name: str) -> tuple[dict[str, str], ...]:
    """Rows of `reports/data/<name>` as dicts of strings, for checks of the file itself (cached)."""
    return read_rows("joulemeter.reports", name)


@dataclass(frozen=True)
class PuePreset:
    """A row of pue.csv: a named PUE, what it stands for, and its source (None for a definition)."""

    preset: str
    pue: float
    description: str
    citation: Citation | None


@dataclass(frozen=True)
class Price:
    """A row of prices.csv: the electricity price of a country (alpha-3), "EU" or "WORLD"."""

    region: str
    price_per_kwh: float
    currency: str
    citation: Citation


@dataclass(frozen=True)
class EuMember:
    """A row of eu_members.csv: a member state by ISO alpha-3 code."""

    alpha3: str
    name: str
    citation: Citation


@dataclass(frozen=True)
class RegionAlias:
    """A row of region_aliases.csv: a name people use ("UK") for a region code ("GBR")."""

    alias: str
    code: str


@dataclass(frozen=True)
class EquivalenceFactor:
    """A row of equivalences.csv: facility kWh (basis "energy") or kg CO2e ("co2") per `factor_unit`.

    `country` (alpha-2, "EU" or "WORLD") says whose household or person it describes;
    None for a comparison that holds anywhere. `rank` orders the equally readable ones.
    """

    key: str
    basis: Literal["energy", "co2"]
    country: str | None
    rank: int
    style: Literal["times", "count", "duration"]
    phrase: str
    factor: float
    factor_unit: str
    citation: Citation


# -- grid intensity ------------------------------------------------------------
@dataclass(frozen=True)
class _Region:
    code: str
    name: str
    country: str  # ISO alpha-3 of the country the region lies in
    intensity_g_per_kwh: float
    citation: Citation
    aliases: tuple[str, ...]
    method: str | None = None


def normalise_name(text: str) -> str:
    """Case-, accent- and separator-insensitive form used to match region names and codes."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return " ".join(text.casefold().replace("_", "-").split())


@functools.cache
def codecarbon_data() -> Any:
    """CodeCarbon's bundled data (grid intensities, generation mixes), loaded once."""
    from codecarbon.input import DataSource  # heavy: imported only when factors are needed

    return DataSource()


@functools.cache
def _world_average() -> tuple[float, Citation]:
    per_source = codecarbon_data().get_carbon_intensity_per_source_data()
    citation = Citation(
        "IEA Global Energy & CO2 Status Report 2019, world average (via CodeCarbon)",
        2019,
        per_source.get("world_average_source"),
    )
    return float(per_source["world_average"]), citation


def _country_regions() -> list[_Region]:
    import pycountry  # a dependency of codecarbon

    out = []
    for alpha3, row in codecarbon_data().get_global_energy_mix_data().items():
        country = pycountry.countries.get(alpha_3=alpha3)
        names = {row["country_name"]}
        if country is not None:
            names |= {country.alpha_2, country.name}
            names |= {getattr(country, a) for a in ("official_name", "common_name") if hasattr(country, a)}
        citation = Citation(
            "Our World in Data / Ember, carbon intensity of electricity generation "
            "(via CodeCarbon global_energy_mix.json)",
            int(row["year"]),
            "https://ourworldindata.org/grapher/carbon-intensity-electricity",
        )
        out.append(
            _Region(alpha3, row["country_name"], alpha3, float(row["carbon_intensity"]), citation,
                    tuple(sorted(names)), LIFECYCLE)
        )
    return out


def _us_state_regions() -> list[_Region]:
    data = codecarbon_data().get_country_emissions_data("usa")
    source = data["_source"]
    citation = Citation(f"{source['name']} (via CodeCarbon)", int(source["year"]), source.get("url"))
    out = []
    for key, row in data.items():
        if key.startswith("_") or key == "usa":  # metadata; national figure comes from OWID
            continue
        g_per_kwh = row["emissions"] * G_PER_POUND / KWH_PER_MWH  # lbs/MWh -> g/kWh
        code = f"US-{row['regionCode']}"
        out.append(_Region(code, f"{key.title()}, United States", "USA", g_per_kwh, citation, (key,), COMBUSTION))
    return out


def _canada_province_regions() -> list[_Region]:
    """Provinces as CodeCarbon itself computes them (its Emissions.get_private_infra_emissions
    for 1 kWh): the coal, petroleum and natural-gas shares of the 2023 generation mix times
    their combustion factors; other sources count as zero. The same method as the US
    states (eGRID), and CodeCarbon's figure for a user in the province."""
    import pycountry
    from codecarbon.core.emissions import Emissions
    from codecarbon.core.units import Energy
    from codecarbon.external.geography import GeoMetadata

    emissions = Emissions(codecarbon_data())
    one_kwh = Energy.from_energy(kWh=1)
    codes = {normalise_name(s.name): s.code for s in pycountry.subdivisions.get(country_code="CA")}
    citation = Citation(
        "CodeCarbon's Canadian method: canada_energy_mix.json generation shares (2023) × combustion "
        "factors of coal, petroleum and natural gas (responsibleproblemsolving/energy-usage)",
        2023,
        "https://github.com/responsibleproblemsolving/energy-usage#conversion-to-co2",
    )
    out = []
    for name in codecarbon_data().get_country_energy_mix_data("can"):
        code = codes.get(normalise_name(name))
        if code is None:
            logger.debug("skipping Canadian province %s: no ISO 3166-2 code", name)
            continue
        geo = GeoMetadata(country_iso_code="CAN", region=name)
        g_per_kwh = emissions.get_private_infra_emissions(one_kwh, geo) * G_PER_KG  # kg for 1 kWh
        out.append(_Region(code, f"{name.title()}, Canada", "CAN", g_per_kwh, citation, (name,), COMBUSTION))
    return out


def _china_province_regions() -> list[_Region]:
    data = codecarbon_data().get_china_provincial_emissions_data()
    meta = data["metadata"]
    citation = Citation(f"{meta['source']} (via CodeCarbon)", int(meta["year"]), meta.get("source_url"))
    return [
        _Region(code, f"{row['description']}, China", "CHN", float(row["emission_factor"]), citation,
                tuple(row.get("names", ())))
        for code, row in data["data"].items()
    ]


def _nordic_zone_regions() -> list[_Region]:
    """Swedish and Norwegian bidding zones as "SE-SE1", "NO-NO4" (also "SE1"); Finland is a country."""
    data = codecarbon_data().get_nordic_country_energy_mix_data()
    source = data["metadata"]["source"]
    out = []
    for zone, row in data["data"].items():
        if len(zone) != 3:  # "FI" is the whole country, already covered by the country data
            continue
        country = {"SE": "SWE", "NO": "NOR"}[zone[:2]]
        citation = Citation(f"{source} (via CodeCarbon)", int(row["year"]))
        out.append(
            _Region(f"{zone[:2]}-{zone}", row["description"], country, float(row["emission_factor"]),
                    citation, (zone,))
        )
    return out


@functools.cache
def _regions() -> dict[str, _Region]:
    regions: dict[str, _Region] = {}
    for build in (_country_regions, _us_state_regions, _canada_province_regions,
                  _china_province_regions, _nordic_zone_regions):
        for region in build():
            regions[region.code] = region
    return regions


@functools.cache
def _alias_index() -> dict[str, str]:
    """Normalised alias -> region code. Countries win over sub-national names ("Georgia")."""
    index: dict[str, str] = {}
    regions = _regions()
    for alias in data_table("region_aliases.csv", RegionAlias):
        index[normalise_name(alias.alias)] = alias.code
    for region in sorted(regions.values(), key=lambda r: len(r.code) != 3):  # countries first
        for alias in (region.code, region.name, *region.aliases):
            index.setdefault(normalise_name(alias), region.code)
    return index


def _find_region(country: str) -> _Region:
    index = _alias_index()
    code = index.get(normalise_name(country))
    if code is None:
        close = difflib.get_close_matches(normalise_name(country), list(index), n=4, cutoff=0.75)
        names = []
        for alias in close:
            region = _regions()[index[alias]]
            label = f"{region.code} ({region.name})"
            if label not in names:
                names.append(label)
        raise UnknownRegionError(country, names)
    return _regions()[code]


def region_in_country(name: str, country: str) -> str | None:
    """The code of a sub-national region named `name` (or coded so) inside `country` (ISO
    alpha-3): "georgia" in USA is US-GA, though "Georgia" alone is the country."""
    key = normalise_name(name)
    for region in _regions().values():
        if region.country == country.upper() and region.code != region.country and key in {
            normalise_name(a) for a in (region.code, region.name, *region.aliases)
        }:
            return region.code
    return None


def known_regions() -> list[tuple[str, str]]:
    """(code, name) of every region with a known grid intensity, sorted by code."""
    return sorted((r.code, r.name) for r in _regions().values())


# -- PUE and price ---------------------------------------------------------------
def pue_presets() -> dict[str, tuple[float, Citation | None, str]]:
    """Preset name -> (PUE, citation, description), from pue.csv."""
    return {p.preset: (p.pue, p.citation, p.description) for p in data_table("pue.csv", PuePreset)}


def _resolve_pue(pue: float | str | None) -> tuple[float, Citation | None, str]:
    """(PUE, its citation, where it came from in words)."""
    presets = pue_presets()
    given = pue is not None
    if pue is None:
        pue = "device"
    if isinstance(pue, str):
        key = pue.strip().lower()
        if key in presets:
            value, citation, description = presets[key]
            basis = f"preset {key!r}: {description}" if given else f"no PUE given: {description}"
            return value, citation, basis
        try:
            pue = float(key)
        except ValueError:
            raise FactorError(
                f"unknown PUE {pue!r}: give a number ≥ 1.0 or one of {', '.join(presets)}"
            ) from None
    if not pue >= 1.0:
        raise FactorError(f"PUE {pue} is below 1.0, which no facility can have: give a value ≥ 1.0")
    return float(pue), None, "as given"


@functools.cache
def _eu_members() -> frozenset[str]:
    return frozenset(member.alpha3 for member in data_table("eu_members.csv", EuMember))


def _price_for(country: str) -> tuple[float, str, Citation | None]:
    """Price row for the country (alpha-3), else the EU average for members, else the world."""
    prices = {price.region: price for price in data_table("prices.csv", Price)}
    for key in (country, EU if country in _eu_members() else None, WORLD):
        if key in prices:
            price = prices[key]
            return price.price_per_kwh, price.currency, price.citation
    raise FactorError("prices.csv has no WORLD row: reinstall joulemeter")


def _household_country(country: str | None) -> str:
    """Which country's household/per-person figures to prefer (alpha-2, "EU" or "WORLD").

    With no country given, US figures are used: the reference that most published
    ML-energy comparisons use (Strubell et al. 2019, Patterson et al. 2021).
    """
    if country is None:
        return DEFAULT_HOUSEHOLD_COUNTRY
    if country == WORLD:
        return WORLD
    import pycountry

    available = {e.country for e in data_table("equivalences.csv", EquivalenceFactor) if e.country}
    alpha2 = pycountry.countries.get(alpha_3=country).alpha_2
    if alpha2 in available:
        return alpha2
    if country in _eu_members() and EU in available:
        return EU
    return WORLD


@functools.cache
def _warn_world_default(intensity: float, citation: Citation) -> None:
    """Say once per process that the world average stands in for an unknown grid."""
    logger.warning(
        "no country given: using the world-average grid intensity %.0f g CO2e/kWh (%s); "
        "pass a country for a real figure", intensity, citation,
    )


# -- the one entry point ------------------------------------------------------------
def resolve_factors(
    country: str | None = None,
    *,
    intensity_g_per_kwh: float | None = None,
    pue: float | str | None = None,
    price_per_kwh: float | None = None,
    currency: str | None = None,
    warn_if_default: bool = True,
) -> Factors:
    """Factors for a country or region (ISO alpha-2/alpha-3, English name, "US-CA", "quebec").

    Explicit values override the looked-up ones. "WORLD" asks for the world average on
    purpose; with no country and no intensity it is used as a stand-in, and
    `intensity_is_default` says so (and a warning is logged once, unless `warn_if_default`
    is False: a caller that applies them only to runs with no recorded place says so itself).
    """
    if intensity_g_per_kwh is not None and not intensity_g_per_kwh >= 0:
        raise FactorError(f"grid intensity {intensity_g_per_kwh} g/kWh is negative: give a value ≥ 0")
    if price_per_kwh is not None and not price_per_kwh >= 0:
        raise FactorError(f"price {price_per_kwh} per kWh is negative: give a value ≥ 0")
    if currency is not None and price_per_kwh is None:
        raise FactorError("a currency was given without a price: give the price per kWh too")
    pue_value, pue_citation, pue_basis = _resolve_pue(pue)

    asked_for_world = country is not None and normalise_name(country) == WORLD.lower()
    method: str | None = None
    if country is not None and not asked_for_world:
        region = _find_region(country)
        code, name, country_code = region.code, region.name, region.country
        intensity, citation, is_default = region.intensity_g_per_kwh, region.citation, False
        method = region.method
    else:
        code, name, country_code = WORLD, "World", WORLD
        intensity, citation = _world_average()
        is_default = intensity_g_per_kwh is None and not asked_for_world
        if is_default and warn_if_default:
            _warn_world_default(intensity, citation)
    if intensity_g_per_kwh is not None:
        intensity, citation, method = float(intensity_g_per_kwh), Citation("user-supplied", None), None

    if price_per_kwh is not None:
        price, price_currency, price_citation = float(price_per_kwh), currency, None
    else:
        price, price_currency, price_citation = _price_for(country_code)
    return Factors(
        region=code,
        region_name=name,
        intensity_g_per_kwh=intensity,
        intensity_citation=citation,
        intensity_is_default=is_default,
        pue=pue_value,
        pue_citation=pue_citation,
        pue_basis=pue_basis,
        price_per_kwh=price,
        currency=price_currency,
        price_citation=price_citation,
        household_country=_household_country(None if country is None else country_code),
        intensity_method=method,
    )


# -- a run's own place ----------------------------------------------------------------
@dataclass(frozen=True)
class CloudRegion:
    """A row of cloud_regions.csv: a provider's region and the grid (region code) it draws from."""

    provider: str
    region: str
    grid: str
    location: str
    citation: Citation


@functools.cache
def _cloud_regions() -> dict[tuple[str, str], tuple[str, Citation]]:
    """(provider, region) -> (grid code, citation): AWS and Azure from cloud_regions.csv, Google
    Cloud from CodeCarbon's cloud/impact.csv (country, and US state or province where given)."""
    import csv
    import importlib.resources

    out = {(r.provider, r.region): (r.grid, r.citation) for r in data_table("cloud_regions.csv", CloudRegion)}
    impact = importlib.resources.files("codecarbon").joinpath("data", "cloud", "impact.csv")
    citation = Citation("CodeCarbon data/cloud/impact.csv (Google Cloud region locations)", 2025,
                        "https://cloud.google.com/sustainability/region-carbon#data")
    for row in csv.DictReader(impact.read_text(encoding="utf-8-sig").splitlines()):
        if row["provider"] != "gcp":
            continue
        state = normalise_name(row.get("state") or "")
        grid = _alias_index().get(state) if state else None
        if grid is None or _regions()[grid].country != row["countryIsoCode"]:
            grid = row["countryIsoCode"]
        out[("gcp", row["region"])] = (grid, citation)
    return out


def cloud_grid(provider: str, region: str) -> tuple[str, Citation] | None:
    """The grid (region code) a cloud region draws from, with where that is said; None if unknown."""
    return _cloud_regions().get((provider.lower(), region.strip().lower()))


def location_grid(location: Location | None) -> tuple[str | None, str]:
    """(the grid to look up, where it came from in words) for a run's location; (None, why) if none."""
    if location is None:
        return None, "no location recorded for the run"
    source = location.source or "unknown source"
    if location.grid:
        return location.grid, f"the run's location ({source})"
    if location.cloud_provider and location.cloud_region:
        found = cloud_grid(location.cloud_provider, location.cloud_region)
        where = f"{location.cloud_provider} {location.cloud_region}"
        if found is not None:
            return found[0], f"the run's cloud region {where} ({source}; {found[1]})"
        return None, f"the run's cloud region {where} is not in cloud_regions.csv"
    return None, "no location recorded for the run"


def factors_for_run(
    run: Run,
    country: str | None = None,
    *,
    intensity_g_per_kwh: float | None = None,
    pue: float | str | None = None,
    price_per_kwh: float | None = None,
    currency: str | None = None,
) -> Factors:
    """Factors for where `run` ran: its Location; where it recorded none, where this report is
    made (JOULEMETER_COUNTRY, joulemeter.toml, cloud variables; said), else the world average,
    said. A recorded place with no known grid takes the world average with a warning, so that
    a typo at metering time does not cost the run its report.

    A `country` given here overrides the run's location, and `location_basis` says so.
    """
    from joulemeter.meter.place import resolve_location

    grid, basis = location_grid(run.location)
    if country is not None:
        recorded = f"; the run's own location is {grid}" if grid and normalise_name(grid) != normalise_name(country) else ""
        basis = f"given ({country}), overriding the run's location{recorded}" if grid else f"given ({country})"
        grid = country
    elif grid is None:
        place = resolve_location()
        here, _ = location_grid(place)
        if here is not None and place is not None:
            basis = f"{basis}; assumed where this report is made: {here} ({place.source})"
            grid = here
        else:
            basis = f"{basis}: world average"
    options = dict(intensity_g_per_kwh=intensity_g_per_kwh, pue=pue, price_per_kwh=price_per_kwh, currency=currency)
    try:
        factors = resolve_factors(grid, **options)
    except UnknownRegionError as exc:
        if country is not None:
            raise
        logger.warning("run %s: %s; its report uses the world average", run.id[:8], exc)
        basis = f"{basis}, {grid}, which has no known grid: world average"
        factors = resolve_factors(WORLD, **options)
    return dataclasses.replace(factors, location_basis=basis)
