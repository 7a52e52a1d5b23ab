"""Estimates from the hardware table, and the catalogue of published runs."""

from __future__ import annotations

import pytest

from joulemeter.meter.errors import FactorError, UnknownHardwareError
from joulemeter.reports.accounting import footprint
from joulemeter.reports.estimates import estimate, find_hardware, published_run, published_runs
from joulemeter.reports.factors import read_table, resolve_factors


def _hw(name: str) -> dict[str, str]:
    return next(r for r in read_table("hardware.csv") if r["name"] == name)


def _eq(key: str) -> dict[str, str]:
    return next(r for r in read_table("equivalences.csv") if r["key"] == key)


def test_megatron_is_about_34_mwh_and_about_three_americans_yearly_electricity():
    # 512 V100 (SXM2, 300 W) for 9.2 days = 512 × 300 W × 220.8 h = 33.9 MWh at board power
    power_w = float(_hw("V100-SXM2")["power_w"])
    est = estimate("V100", count=512, hours=9.2 * 24)
    assert est.hardware == "V100-SXM2"
    assert est.energy_j == pytest.approx(512 * power_w * 220.8 * 3600)
    fp = footprint(est)
    assert fp.energy_kwh == pytest.approx(33_914.88)
    per_person = fp.equivalence("person_us")
    assert per_person.value == pytest.approx(33_914.88 / float(_eq("person_us")["factor"]))
    assert 2.5 < per_person.value < 3.5


def test_v100_alone_means_the_sxm2_board_and_pcie_is_its_own_row():
    assert find_hardware("V100").name == "V100-SXM2"
    assert find_hardware("v100 pcie").power_w == float(_hw("V100-PCIe")["power_w"])
    assert find_hardware("H100").power_w == float(_hw("H100-SXM")["power_w"])


def test_utilization_and_a_given_power_scale_the_estimate():
    est = estimate("A100", count=4, hours=10, utilization=0.5)
    assert est.energy_j == pytest.approx(float(_hw("A100-SXM")["power_w"]) * 4 * 10 * 3600 * 0.5)
    own = estimate(count=2, hours=1, power_w=123.0)
    assert (own.hardware, own.energy_j, own.power_citation) == ("custom", 123.0 * 2 * 3600, None)


def test_unknown_hardware_suggests_close_names():
    with pytest.raises(UnknownHardwareError) as info:
        estimate("H10", hours=1)
    assert "H100-SXM" in info.value.suggestions or "H100-PCIe" in info.value.suggestions


@pytest.mark.parametrize("kwargs", [
    {"hardware": "T4", "hours": -1},
    {"hardware": "T4", "hours": 1, "count": 0},
    {"hardware": "T4", "hours": 1, "utilization": 1.5},
    {"hours": 1},
])
def test_bad_estimate_input_is_refused(kwargs):
    with pytest.raises(FactorError):
        estimate(**kwargs)


def test_gpt3_published_footprint_reproduces_patterson_et_al():
    run = published_run("GPT-3")
    fp = footprint(run)
    assert fp.provenance == "published"
    assert fp.energy_kwh == pytest.approx(run.reported_energy_mwh * 1000)
    assert fp.kg_co2e / 1000 == pytest.approx(run.reported_co2e_t, rel=0.005)
    # the device-level energy is hours × chips × measured W, as Patterson et al. computed it
    assert run.energy_j == pytest.approx(run.device_hours * run.power_w * 3600, rel=0.01)


def test_bloom_reported_energy_is_gpu_hours_times_400_w_without_pue():
    run = published_run("bloom-176b")
    assert run.energy_includes_pue is False
    assert run.energy_j == pytest.approx(run.device_hours * 400 * 3600, rel=1e-4)
    assert footprint(run).kg_co2e / 1000 == pytest.approx(run.reported_co2e_t, rel=0.01)


def test_run_without_reported_energy_is_estimated_from_device_hours():
    run = published_run("megatron-lm-8.3b")
    assert run.provenance == "estimated"
    assert run.energy_j == pytest.approx(512 * 220.8 * float(_hw("V100-SXM2")["power_w"]) * 3600)


def test_catalogue_lists_cited_runs_and_unknown_names_fail():
    names = {r.name for r in published_runs()}
    assert {"gpt-3", "megatron-lm-8.3b", "bloom-176b", "llama-2-70b", "t5-11b", "bert-large"} <= names
    assert all(r.citation.source and r.citation.year for r in published_runs())
    with pytest.raises(FactorError):
        published_run("gpt-5")


def test_published_run_with_given_factors_uses_them():
    run = published_run("bloom-176b")
    f = resolve_factors("US", pue=1.0)
    assert footprint(run, f).kg_co2e == pytest.approx(run.energy_j / 3.6e6 * f.intensity_g_per_kwh / 1000)
