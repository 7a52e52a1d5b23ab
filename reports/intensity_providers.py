"""Hourly grid intensity from providers, fetched only when asked, cached in the ledger.

Nothing here touches the network unless `allow_network=True` (the CLI's explicit
`--intensity-provider` flag); a series already in the ledger's grid_intensity table is read
from there, so a report made later, offline, gives the same figures. Keys are sent as each
API asks and never stored (the cached `source` is the URL without its key).

    electricitymaps  Electricity Maps API v3, /v3/carbon-intensity/past-range, header auth-token;
                     average, lifecycle unless the response says otherwise (emissionFactorType)
    watttime         WattTime API v3, /login (basic auth) then /v3/historical signal_type=co2_moer;
                     marginal, lbs CO2/MWh converted to g/kWh; key "username:password"
    carbonintensity  NESO Carbon Intensity API (Great Britain), /intensity/{from}/{to}, "actual"
                     figures only; average; needs no key
    eia              EIA API v2, electricity/rto/fuel-type-data (EIA-930 hourly net generation by
                     fuel, UTC hours; 5,000 rows a request, paged by offset); average, computed as generation × combustion factor of coal,
                     natural gas and oil (CodeCarbon's carbon_intensity_per_source.json) ÷ the
                     generation of the fuels named; "OTH" and unknown fuels are left out
"""

from __future__ import annotations

import base64
import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from joulemeter.meter.units import G_PER_POUND, KWH_PER_MWH
from joulemeter.reports.intensity import IntensityError, IntensitySeries, Signal, Span, parse_time, series_from_rows

if TYPE_CHECKING:
    from joulemeter.meter.store.ledger import Ledger

log = logging.getLogger("joulemeter.reports")

_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Provider:
    """One intensity API: its signal, default address, the variable its key is read from."""

    name: str
    signal: Signal
    base_url: str
    key_env: str | None  # None: no key needed
    chunk: timedelta  # the longest range one request may ask for
    fetch: Callable[[Provider, str, datetime, datetime, str | None, str], tuple[list[Span], str | None, str]]


def fetch_intensity(
    provider: str,
    zone: str,
    start: datetime,
    end: datetime,
    *,
    api_key: str | None = None,
    ledger: Ledger | None = None,
    allow_network: bool = False,
    base_url: str | None = None,
) -> IntensitySeries:
    """The provider's series for `zone` over [start, end): from the ledger's cache when it covers
    the span, else fetched (only with `allow_network`) and cached in the ledger."""
    spec = provider_named(provider)
    zone = zone.strip()
    if ledger is not None:
        cached = ledger.cached_intensity(spec.name, zone, spec.signal, _iso(start), _iso(end))
        if cached:
            series = series_from_rows(cached, f"{spec.name} {zone}")
            try:
                series.covering(start, end)
                log.info("intensity for %s from %s read from the ledger's cache", zone, spec.name)
                return series
            except IntensityError:
                pass  # partly cached: fetch the whole span
    if not allow_network:
        raise IntensityError(
            f"no cached {spec.name} intensity for {zone} from {_iso(start)} to {_iso(end)}, and fetching "
            "was not asked for: allow the network for this provider (it needs its API key)"
        )
    if spec.key_env is not None and not api_key:
        raise IntensityError(f"{spec.name} needs an API key (${spec.key_env})", parameter="api_key")
    base = (base_url or spec.base_url).rstrip("/")
    spans: list[Span] = []
    method: str | None = None
    source = ""
    t = _hour_floor(start)
    while t < end:
        upto = min(t + spec.chunk, end)
        got, method, source = spec.fetch(spec, zone, t, upto, api_key, base)
        spans.extend(got)
        t = upto
    unique = sorted({s.start: s for s in spans}.values(), key=lambda s: s.start)
    series = IntensitySeries(zone, spec.signal, tuple(unique), source, spec.name, method)
    series.covering(start, end)
    if ledger is not None and not ledger.read_only:
        ledger.save_intensity(_rows(series))
    return series


def default_zone(provider: str, grid: str) -> str | None:
    """The provider's zone for a run's grid (a country or region as runs record it) where it
    follows from it: Electricity Maps names a country's zone by its ISO alpha-2 code ("DE"),
    the Carbon Intensity API covers Great Britain ("GB"); None where it does not (a
    sub-national grid, a balancing authority of WattTime or EIA): then the zone must be given."""
    import pycountry  # a dependency of codecarbon

    from joulemeter.reports.factors import resolve_factors

    code = resolve_factors(grid, warn_if_default=False).region
    country = pycountry.countries.get(alpha_3=code) if len(code) == 3 else None
    if country is None:
        return None
    if provider == "electricitymaps":
        return country.alpha_2
    if provider == "carbonintensity" and country.alpha_2 == "GB":
        return "GB"
    return None


def provider_named(name: str) -> Provider:
    key = name.strip().lower().replace("-", "").replace("_", "")
    if key not in PROVIDERS:
        raise IntensityError(f"unknown intensity provider {name!r}; known: {', '.join(PROVIDERS)}")
    return PROVIDERS[key]


def _rows(series: IntensitySeries) -> list[dict[str, Any]]:
    fetched = _iso(datetime.now(timezone.utc))
    return [{"provider": series.provider, "zone": series.zone, "signal": series.signal, "start": _iso(s.start),
             "end": _iso(s.end), "intensity_g_per_kwh": s.intensity_g_per_kwh, "method": series.method,
             "source": series.source, "fetched_at": fetched} for s in series.spans]


def _iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).isoformat(timespec="seconds")


def _hour_floor(t: datetime) -> datetime:
    return t.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)


def _get(url: str, headers: Mapping[str, str], shown: str) -> Any:
    """GET `url` as JSON; errors name `shown` (the URL without its key), never the key."""
    request = urllib.request.Request(url, headers={"Accept": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT_S) as response:  # noqa: S310 (http(s) only)
            body = response.read()
    except urllib.error.HTTPError as exc:
        raise IntensityError(f"{shown} answered HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise IntensityError(f"cannot reach {shown}: {reason}") from None
    try:
        return json.loads(body)
    except ValueError:
        raise IntensityError(f"{shown} did not answer JSON") from None


def _stamp(t: datetime, fmt: str = "%Y-%m-%dT%H:%M:%SZ") -> str:
    return t.astimezone(timezone.utc).strftime(fmt)


def _data(payload: Any, path: tuple[str, ...], shown: str) -> list[dict[str, Any]]:
    value = payload
    for key in path:
        if not isinstance(value, dict) or key not in value:
            raise IntensityError(f"{shown} answered without {'.'.join(path)}")
        value = value[key]
    if not isinstance(value, list):
        raise IntensityError(f"{shown}: {'.'.join(path)} is not a list")
    return value


def _number(value: Any, shown: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise IntensityError(f"{shown} gave {value!r} where a number belongs") from None
    if not number >= 0:
        raise IntensityError(f"{shown} gave a negative or missing intensity {value!r}")
    return number


# -- Electricity Maps ------------------------------------------------------------------
def _electricitymaps(spec: Provider, zone: str, start: datetime, end: datetime, key: str | None,
                     base: str) -> tuple[list[Span], str | None, str]:
    query = urllib.parse.urlencode({"zone": zone, "start": _stamp(start), "end": _stamp(end)})
    url = f"{base}/v3/carbon-intensity/past-range?{query}"
    payload = _get(url, {"auth-token": key or ""}, url)
    spans, methods = [], set()
    for point in _data(payload, ("data",), url):
        at = parse_time(str(point.get("datetime")), f"{url}: datetime")
        spans.append(Span(at, at + timedelta(hours=1), _number(point.get("carbonIntensity"), url)))
        methods.add(str(point.get("emissionFactorType") or "lifecycle"))
    if len(methods) > 1:
        raise IntensityError(f"{url} mixes emission factor types {sorted(methods)}")
    return spans, methods.pop() if methods else "lifecycle", f"{base}/v3/carbon-intensity/past-range?zone={zone}"


# -- WattTime ----------------------------------------------------------------------------
def _watttime(spec: Provider, zone: str, start: datetime, end: datetime, key: str | None,
              base: str) -> tuple[list[Span], str | None, str]:
    user, _, password = (key or "").partition(":")
    if not password:
        raise IntensityError("a WattTime key is 'username:password'", parameter="api_key")
    login = f"{base}/login"
    basic = base64.b64encode(f"{user}:{password}".encode()).decode()
    token = _get(login, {"Authorization": f"Basic {basic}"}, login).get("token")
    if not token:
        raise IntensityError(f"{login} gave no token")
    query = urllib.parse.urlencode({"region": zone, "start": _stamp(start), "end": _stamp(end),
                                    "signal_type": "co2_moer"})
    url = f"{base}/v3/historical?{query}"
    payload = _get(url, {"Authorization": f"Bearer {token}"}, url)
    meta = payload.get("meta") or {}
    if meta.get("units") != "lbs_co2_per_mwh":
        raise IntensityError(f"{url} gave units {meta.get('units')!r}; joulemeter reads lbs_co2_per_mwh")
    period = timedelta(seconds=float(meta.get("data_point_period_seconds") or 300))
    spans = []
    for point in _data(payload, ("data",), url):
        at = parse_time(str(point.get("point_time")), f"{url}: point_time")
        g_per_kwh = _number(point.get("value"), url) * G_PER_POUND / KWH_PER_MWH  # lbs/MWh -> g/kWh
        spans.append(Span(at, at + period, g_per_kwh))
    return spans, "marginal operating emission rate, CO2 only (co2_moer)", f"{base}/v3/historical?region={zone}"


# -- NESO Carbon Intensity API (GB) -----------------------------------------------------
def _carbonintensity(spec: Provider, zone: str, start: datetime, end: datetime, key: str | None,
                     base: str) -> tuple[list[Span], str | None, str]:
    if zone.upper() not in ("GB", "GBR"):
        raise IntensityError(f"the Carbon Intensity API covers Great Britain (zone GB), not {zone!r}")
    url = f"{base}/intensity/{_stamp(start, '%Y-%m-%dT%H:%MZ')}/{_stamp(end, '%Y-%m-%dT%H:%MZ')}"
    spans = []
    for point in _data(_get(url, {}, url), ("data",), url):
        actual = (point.get("intensity") or {}).get("actual")
        if actual is None:
            continue  # no measured figure for this half hour; the coverage check names the gap
        spans.append(Span(parse_time(str(point.get("from")), f"{url}: from"),
                          parse_time(str(point.get("to")), f"{url}: to"), _number(actual, url)))
    return spans, None, f"{base}/intensity"


# -- EIA (EIA-930 hourly generation by fuel) --------------------------------------------
_EIA_FUELS = {"COL": "coal", "NG": "natural_gas", "OIL": "petroleum"}  # emitting fuels -> factor key
_EIA_CLEAN = {"NUC", "SUN", "WAT", "WND", "GEO", "BAT", "PS", "SNB"}  # no combustion


_EIA_PAGE_ROWS = 5000  # the most rows API v2 returns per request; "offset" pages through the rest


def _eia_rows(base: str, params: list[tuple[str, str]], key: str | None) -> list[dict[str, Any]]:
    """Every row of the query, page by page until the response's "total" is reached."""
    rows: list[dict[str, Any]] = []
    while True:
        page = [*params, ("offset", str(len(rows)))]
        shown = f"{base}/v2/electricity/rto/fuel-type-data/data/?{urllib.parse.urlencode(page)}"
        payload = _get(f"{shown}&{urllib.parse.urlencode({'api_key': key or ''})}", {}, shown)
        got = _data(payload, ("response", "data"), shown)
        rows += got
        total = _number((payload.get("response") or {}).get("total", len(rows)), shown)
        if len(rows) >= total:
            return rows
        if not got:
            raise IntensityError(f"{shown} gave {len(rows)} of the {total:.0f} rows it counts, then none")


def _eia(spec: Provider, zone: str, start: datetime, end: datetime, key: str | None,
         base: str) -> tuple[list[Span], str | None, str]:
    from codecarbon.input import DataSource

    factors = DataSource().get_carbon_intensity_per_source_data()
    params = [("frequency", "hourly"), ("data[0]", "value"), ("facets[respondent][]", zone),
              ("start", _stamp(start, "%Y-%m-%dT%H")), ("end", _stamp(end - timedelta(hours=1), "%Y-%m-%dT%H")),
              ("sort[0][column]", "period"), ("sort[0][direction]", "asc"), ("length", str(_EIA_PAGE_ROWS))]
    hours: dict[str, tuple[float, float]] = {}
    for row in _eia_rows(base, params, key):
        fuel, mwh = str(row.get("fueltype")), row.get("value")
        if mwh is None or (fuel not in _EIA_FUELS and fuel not in _EIA_CLEAN):
            continue
        mwh = float(mwh)
        if mwh <= 0:
            continue  # storage charging, or no output
        grams = mwh * factors[_EIA_FUELS[fuel]] if fuel in _EIA_FUELS else 0.0
        total_g, total_mwh = hours.get(str(row["period"]), (0.0, 0.0))
        hours[str(row["period"])] = (total_g + grams, total_mwh + mwh)
    spans = []
    for period, (grams, mwh) in sorted(hours.items()):
        at = parse_time(period + ":00Z", f"{base}/v2/electricity/rto/fuel-type-data: period")
        spans.append(Span(at, at + timedelta(hours=1), grams / mwh))
    source = f"{base}/v2/electricity/rto/fuel-type-data (respondent {zone})"
    return spans, "combustion: EIA-930 generation by fuel × CodeCarbon's coal, gas and oil factors", source


PROVIDERS: dict[str, Provider] = {
    "electricitymaps": Provider("electricitymaps", "average", "https://api.electricitymap.org",
                                "ELECTRICITYMAPS_API_KEY", timedelta(days=10), _electricitymaps),
    "watttime": Provider("watttime", "marginal", "https://api.watttime.org", "WATTTIME_API_KEY",
                         timedelta(days=30), _watttime),
    "carbonintensity": Provider("carbonintensity", "average", "https://api.carbonintensity.org.uk", None,
                                timedelta(days=14), _carbonintensity),
    "eia": Provider("eia", "average", "https://api.eia.gov", "EIA_API_KEY", timedelta(days=20), _eia),
}
