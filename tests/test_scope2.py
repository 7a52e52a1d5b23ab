"""Scope 2 both ways: location-based from the grid, market-based by the GHG Protocol's
hierarchy (certificates, supplier, residual mix, grid), each with its range, never summed."""

from __future__ import annotations

import dataclasses

import pytest

from joulemeter.meter.errors import FactorError
from joulemeter.meter.run import DomainEnergy, Location, Provenance
from joulemeter.meter.units import J_PER_KWH
from joulemeter.reports.accounting import footprint, scope2, uncertainty_bands
from joulemeter.reports.factors import resolve_factors
from joulemeter.reports.scope2 import Certificate, MarketInstruments, allocate_certificates
from tests.test_ledger import make_run

GRID = resolve_factors(intensity_g_per_kwh=400.0)


def _kwh_run(kwh: float, provenance: Provenance = Provenance.COUNTER):
    joules = kwh * J_PER_KWH
    return dataclasses.replace(make_run(), energy={"gpu:0": DomainEnergy("gpu:0", joules, provenance, None, None)})


def test_without_instruments_market_based_falls_back_to_the_grid_and_says_so():
    result = scope2(_kwh_run(2.0), GRID)
    assert result.location_kg == pytest.approx(0.8) and result.market_kg == pytest.approx(0.8)
    assert "grid average" in result.market_basis and "last resort" in result.market_basis


def test_certificates_cover_their_kwh_and_the_supplier_factor_the_rest():
    market = MarketInstruments(supplier_factor_g_per_kwh=100.0, supplier="tariff X",
                               certificates=(Certificate("GO 2026", 0.0015, 0.0),))
    result = scope2(_kwh_run(2.0), GRID, market)
    assert result.market_kg == pytest.approx((1.5 * 0 + 0.5 * 100) / 1000)
    assert result.location_kg == pytest.approx(0.8)  # unchanged by any contract
    assert "certificates (GO 2026)" in result.market_basis and "tariff X" in result.market_basis


def test_the_residual_mix_stands_in_where_there_is_no_supplier_factor():
    result = scope2(_kwh_run(1.0), GRID, MarketInstruments(residual_mix_g_per_kwh=550.0, residual_mix_source="AIB 2025"))
    assert result.market_kg == pytest.approx(0.55) and "AIB 2025" in result.market_basis


def test_an_estimated_run_carries_its_band_into_both_figures():
    result = scope2(_kwh_run(1.0, Provenance.ESTIMATED), GRID, MarketInstruments(supplier_factor_g_per_kwh=100.0))
    low, high, _ = uncertainty_bands()["estimated"]
    assert result.location_kg_range == pytest.approx((0.4 * low, 0.4 * high))
    assert result.market_kg_range == pytest.approx((0.1 * low, 0.1 * high))


def test_certificates_shared_by_runs_are_allotted_in_proportion_and_never_beyond_use():
    market = MarketInstruments(certificates=(Certificate("RECs", 0.003),))
    assert allocate_certificates(market, {"a": 1.0, "b": 3.0}) == pytest.approx({"a": 0.75, "b": 2.25})
    assert allocate_certificates(market, {"a": 1.0}) == {"a": 1.0}


def test_a_runs_own_location_gives_the_location_based_figure():
    run = dataclasses.replace(_kwh_run(1.0), location=Location(country="FR", source="api"))
    assert scope2(run).location_intensity_g_per_kwh == resolve_factors("FR").intensity_g_per_kwh
    assert footprint(run).factors.region == "FRA"


@pytest.mark.parametrize("bad", [{"supplier_factor_g_per_kwh": -1.0}, {"residual_mix_g_per_kwh": float("nan")}])
def test_impossible_factors_are_refused(bad):
    with pytest.raises(FactorError, match="≥ 0"):
        MarketInstruments(**bad)


def test_market_instruments_read_from_a_config_table_and_refuse_unknown_keys():
    market = MarketInstruments.from_config({"supplier_factor_g_per_kwh": 80, "certificates": [{"mwh": 2}]})
    assert market.supplier_factor_g_per_kwh == 80.0 and market.certificate_kwh == 2000.0
    with pytest.raises(FactorError, match="unknown keys"):
        MarketInstruments.from_config({"suplier": 1})
    with pytest.raises(FactorError, match="each certificate needs mwh"):
        MarketInstruments.from_config({"certificates": [{"name": "GO"}]})


def test_a_comparison_per_unit_gives_the_market_based_figure_per_unit_too():
    from joulemeter.reports.compare import compare, market_per_unit_column

    runs = [dataclasses.replace(_kwh_run(kwh), id=f"run-{kwh}", units={"inferences": 4000.0}) for kwh in (2.0, 1.0)]
    result = compare(runs, per="1000", factors=GRID, market=MarketInstruments(supplier_factor_g_per_kwh=100.0))
    column = market_per_unit_column(result.per_column)
    for kwh, row in zip((2.0, 1.0), result.frame.to_dict("records")):
        # 100 g/kWh of the supplier over the run's kWh, shared by its 4,000 inferences, per 1,000
        assert row[column] == pytest.approx(kwh * 100 / 1000 / 4000 * 1000)
        assert row[column] < row["kg_co2e_per_1000"]  # the grid's 400 g/kWh location-based
