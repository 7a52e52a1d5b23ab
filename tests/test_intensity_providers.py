"""Intensity providers against a local fake server on 127.0.0.1 that answers as each API's
documentation shows: keys sent as the API asks and never cached, units converted, the
ledger's cache used offline, and no request at all unless the network is allowed."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from joulemeter.meter.store import open_ledger
from joulemeter.reports.intensity import IntensityError
from joulemeter.reports.intensity_providers import fetch_intensity

START = datetime(2026, 3, 1, 12, tzinfo=timezone.utc)
END = START + timedelta(hours=2)


class FakeApi:
    """Canned JSON by path; every request is kept (path, query, headers by lower-case name)."""

    def __init__(self) -> None:
        self.routes: dict[str, object] = {}  # (status, body), or a function of the query giving it
        self.requests: list[tuple[str, dict[str, list[str]], dict[str, str]]] = []

    def handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                url = urlparse(self.path)
                api.requests.append((url.path, parse_qs(url.query), {k.lower(): v for k, v in self.headers.items()}))
                route = api.routes.get(url.path, (404, {"error": "not found"}))
                status, body = route(parse_qs(url.query)) if callable(route) else route
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        return Handler


@pytest.fixture
def api() -> Iterator[tuple[FakeApi, str]]:
    fake = FakeApi()
    server = ThreadingHTTPServer(("127.0.0.1", 0), fake.handler())
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _em_points(values: list[float]) -> dict:
    """Electricity Maps v3 past-range: one point per hour, datetime in UTC with milliseconds."""
    return {"zone": "DE", "data": [
        {"zone": "DE", "carbonIntensity": v, "datetime": (START + timedelta(hours=i)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
         "updatedAt": "2026-03-02T00:00:00.000Z", "isEstimated": False, "emissionFactorType": "lifecycle"}
        for i, v in enumerate(values)]}


def test_electricity_maps_sends_its_token_and_the_series_is_cached_for_offline_use(api, tmp_path):
    fake, base = api
    fake.routes["/v3/carbon-intensity/past-range"] = (200, _em_points([250.0, 310.0]))
    with open_ledger(tmp_path / "l.sqlite") as ledger:
        series = fetch_intensity("electricitymaps", "DE", START, END, api_key="secret-key", ledger=ledger,
                                 allow_network=True, base_url=base)
        assert [s.intensity_g_per_kwh for s in series.spans] == [250.0, 310.0]
        assert (series.signal, series.method) == ("average", "lifecycle")
        path, query, headers = fake.requests[0]
        assert headers.get("auth-token") == "secret-key" and query["zone"] == ["DE"]
        assert query["start"] == ["2026-03-01T12:00:00Z"] and query["end"] == ["2026-03-01T14:00:00Z"]
        assert "secret-key" not in series.source
    with open_ledger(tmp_path / "l.sqlite", for_reading=True) as ledger:  # later, offline, no key
        again = fetch_intensity("electricitymaps", "DE", START, END, ledger=ledger, base_url=base)
    assert again.spans == series.spans and len(fake.requests) == 1


def test_nothing_is_fetched_unless_the_network_is_allowed(api, tmp_path):
    fake, base = api
    fake.routes["/v3/carbon-intensity/past-range"] = (200, _em_points([250.0, 310.0]))
    with pytest.raises(IntensityError, match="fetching was not asked for"):
        fetch_intensity("electricitymaps", "DE", START, END, api_key="k", base_url=base)
    assert fake.requests == []


def test_watttime_logs_in_then_converts_pounds_per_mwh_to_grams_per_kwh(api):
    fake, base = api
    fake.routes["/login"] = (200, {"token": "tok"})
    points = [{"point_time": (START + timedelta(minutes=5 * i)).isoformat(), "value": 1000.0} for i in range(24)]
    fake.routes["/v3/historical"] = (200, {"data": points, "meta": {
        "region": "CAISO_NORTH", "signal_type": "co2_moer", "units": "lbs_co2_per_mwh",
        "data_point_period_seconds": 300}})
    series = fetch_intensity("watttime", "CAISO_NORTH", START, END, api_key="ann:pw", allow_network=True,
                             base_url=base)
    assert series.signal == "marginal"
    assert series.spans[0].intensity_g_per_kwh == pytest.approx(1000.0 * 453.59237 / 1000)
    assert fake.requests[0][2]["authorization"] == "Basic " + base64.b64encode(b"ann:pw").decode()
    assert fake.requests[1][2]["authorization"] == "Bearer tok"
    assert fake.requests[1][1]["signal_type"] == ["co2_moer"]


def test_uk_half_hours_without_an_actual_figure_are_gaps_the_error_names(api):
    fake, base = api
    halves = [{"from": (START + timedelta(minutes=30 * i)).strftime("%Y-%m-%dT%H:%MZ"),
               "to": (START + timedelta(minutes=30 * (i + 1))).strftime("%Y-%m-%dT%H:%MZ"),
               "intensity": {"forecast": 200, "actual": None if i == 2 else 180 + i, "index": "moderate"}}
              for i in range(4)]
    fake.routes["/intensity/2026-03-01T12:00Z/2026-03-01T14:00Z"] = (200, {"data": halves})
    with pytest.raises(IntensityError, match=r"no intensity from 2026-03-01T13:00:00\+00:00"):
        fetch_intensity("carbonintensity", "GB", START, END, allow_network=True, base_url=base)


def test_eia_hourly_mix_becomes_intensity_and_its_key_stays_out_of_the_cache(api, tmp_path):
    fake, base = api
    rows = [{"period": f"2026-03-01T{h:02d}", "respondent": "CISO", "fueltype": fuel, "value": str(mwh),
             "value-units": "megawatthours"}
            for h in (12, 13) for fuel, mwh in (("NG", 300), ("COL", 100), ("SUN", 600), ("BAT", -50), ("OTH", 40))]
    fake.routes["/v2/electricity/rto/fuel-type-data/data/"] = (200, {"response": {"total": len(rows), "data": rows}})
    from codecarbon.input import DataSource

    per_source = DataSource().get_carbon_intensity_per_source_data()
    with open_ledger(tmp_path / "l.sqlite") as ledger:
        series = fetch_intensity("eia", "CISO", START, END, api_key="eia-key", ledger=ledger, allow_network=True,
                                 base_url=base)
        cached = ledger.cached_intensity("eia", "CISO", "average", "2026-03-01T12:00:00+00:00",
                                         "2026-03-01T14:00:00+00:00")
    expected = (300 * per_source["natural_gas"] + 100 * per_source["coal"]) / (300 + 100 + 600)
    assert [s.intensity_g_per_kwh for s in series.spans] == pytest.approx([expected, expected])
    assert fake.requests[0][1]["api_key"] == ["eia-key"]
    assert len(cached) == 2 and all("eia-key" not in row["source"] for row in cached)


def test_eia_rows_beyond_one_page_are_fetched_with_offsets(api):
    fake, base = api
    rows = [{"period": f"2026-03-01T{h:02d}", "respondent": "CISO", "fueltype": fuel, "value": str(mwh)}
            for h in (12, 13) for fuel, mwh in (("NG", 300), ("COL", 100), ("SUN", 600), ("WND", 0))]

    def page(query: dict[str, list[str]]) -> tuple[int, dict]:
        offset = int(query["offset"][0])
        return 200, {"response": {"total": str(len(rows)), "data": rows[offset:offset + 3]}}  # a 3-row cap

    fake.routes["/v2/electricity/rto/fuel-type-data/data/"] = page
    series = fetch_intensity("eia", "CISO", START, END, api_key="k", allow_network=True, base_url=base)
    assert [q["offset"] for _, q, _ in fake.requests] == [["0"], ["3"], ["6"]]
    assert len(series.spans) == 2 and series.spans[0].intensity_g_per_kwh == pytest.approx(
        series.spans[1].intensity_g_per_kwh)


def test_an_eia_answer_short_of_its_own_total_is_an_error(api):
    fake, base = api
    fake.routes["/v2/electricity/rto/fuel-type-data/data/"] = (200, {"response": {"total": "10", "data": []}})
    with pytest.raises(IntensityError, match="gave 0 of the 10 rows"):
        fetch_intensity("eia", "CISO", START, END, api_key="k", allow_network=True, base_url=base)


def test_a_refused_key_is_a_clear_error_that_does_not_show_the_key(api):
    fake, base = api
    fake.routes["/v3/carbon-intensity/past-range"] = (401, {"error": "bad token"})
    with pytest.raises(IntensityError, match="HTTP 401") as caught:
        fetch_intensity("electricitymaps", "DE", START, END, api_key="secret-key", allow_network=True, base_url=base)
    assert "secret-key" not in str(caught.value)


def test_a_provider_that_needs_a_key_says_so_before_any_request(api):
    fake, base = api
    with pytest.raises(IntensityError, match="ELECTRICITYMAPS_API_KEY"):
        fetch_intensity("electricitymaps", "DE", START, END, allow_network=True, base_url=base)
    assert fake.requests == []
