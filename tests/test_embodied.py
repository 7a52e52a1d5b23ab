"""Embodied CO2e: cited footprints amortised per device-hour, overridable assumptions, named gaps."""

from __future__ import annotations

import pytest

from joulemeter.meter.errors import FactorError
from joulemeter.meter.run import Domain, Provenance, Run
from joulemeter.meter.units import HOURS_PER_YEAR
from joulemeter.reports.embodied import Assumptions, embodied, embodied_of_devices, footprints, hardware_for_device, rate
from joulemeter.reports.estimates import hardware_table, published_run


def _gpu_run(device: str, gpus: int, hours: float) -> Run:
    domains = [Domain(f"gpu:{i}", "gpu", device, Provenance.COUNTER, "NVML") for i in range(gpus)]
    domains.append(Domain("cpu:0", "cpu", "Intel Xeon", Provenance.ESTIMATED, "TDP model"))
    return Run(id="r", name="r", duration_s=hours * 3600, domains=domains)


def test_bloom_gpu_hours_reproduce_the_papers_embodied_total_of_11_2_tonnes():
    # Luccioni et al. 2023, Table 3: 11.2 t CO2e embodied over the final training's 1,082,990 A100-hours
    bloom = published_run("bloom-176b")
    found = embodied_of_devices({"NVIDIA A100-SXM4-80GB": bloom.device_hours})
    assert found.kg_co2e == pytest.approx(11_200, rel=0.01)
    assert not found.gaps


def test_every_footprint_names_hardware_the_hardware_table_knows_and_a_plausible_life():
    for row in footprints():
        assert row.hardware in hardware_table(), row.key
        assert row.kg_co2e > 0 and row.devices_per_unit >= 1, row.key
        assert 0 < row.life_years_short <= row.life_years <= 15 and 0 < row.utilization <= 1, row.key


def test_device_names_as_sources_report_them_map_to_the_hardware_table():
    assert hardware_for_device("NVIDIA A100-SXM4-80GB") == "A100-SXM"
    assert hardware_for_device("NVIDIA H100 80GB HBM3") == "H100-SXM"
    assert hardware_for_device("Tesla V100-SXM2-16GB") == "V100-SXM2"
    assert hardware_for_device("Some Accelerator 9000") is None


def test_a_run_is_charged_per_gpu_hour_and_the_cpu_domain_is_not_a_gpu():
    one = embodied(_gpu_run("NVIDIA A100-SXM4-80GB", 1, 1.0))
    eight = embodied(_gpu_run("NVIDIA A100-SXM4-80GB", 8, 2.5))
    assert one.device_hours == {"A100-SXM": pytest.approx(1.0)}
    assert eight.kg_co2e == pytest.approx(one.kg_co2e * 8 * 2.5)


def test_one_gpu_hour_is_the_gpu_and_its_server_share_over_life_times_utilization():
    # (150 kg + 2,500 kg / 8) ÷ (6 years × 8,766 h × 0.85), by hand
    expected = (150 + 2500 / 8) / (6 * HOURS_PER_YEAR * 0.85)
    assert rate("A100-SXM").kg_per_device_hour == pytest.approx(expected)


def test_the_range_runs_from_the_cited_life_to_the_shorter_one():
    found = rate("A100-SXM")
    low, high = found.range_kg_per_device_hour
    assert low == pytest.approx(found.kg_per_device_hour)
    assert high == pytest.approx(found.kg_per_device_hour * 6 / 4)


def test_a_given_life_and_utilization_replace_the_files_and_close_the_range():
    found = rate("A100-SXM", Assumptions(life_years=3, utilization=0.5))
    assert found.kg_per_device_hour == pytest.approx((150 + 2500 / 8) / (3 * HOURS_PER_YEAR * 0.5))
    assert found.range_kg_per_device_hour == (found.kg_per_device_hour,) * 2


def test_hardware_without_a_footprint_is_a_named_gap_not_a_guess():
    found = embodied(_gpu_run("NVIDIA L4", 4, 1.0))  # in the hardware table, no footprint cited
    assert found.kg_co2e == 0.0
    assert found.gaps == {"NVIDIA L4": pytest.approx(4.0)}


def test_an_h100_card_is_charged_boaviztas_footprint_without_a_server_share():
    found = rate("H100-SXM")
    # 575.1 kg CO2e per card (Boavizta API 2.5.0), over the BLOOM rows' 6 years at 85 %, by hand
    assert found.kg_per_device_hour == pytest.approx(575.1 / (6 * HOURS_PER_YEAR * 0.85))
    assert [c.source.split(",")[0] for c in found.citations] == ["Boavizta API 2.5.0"]
    assert found.method.startswith("gpu: 575.1 kg CO2e") and "server" not in found.method  # the card alone


@pytest.mark.parametrize("device,hardware,kg", [("NVIDIA H200", "H200-SXM", 1067.0), ("NVIDIA B200", "B200", 1415.0)])
def test_h200_and_b200_cards_are_charged_boaviztas_footprint_as_nvml_names_them(device, hardware, kg):
    # Boavizta API 2.5.0, run as for the H100 rows; over 6 years at 85 %, by hand
    found = embodied(_gpu_run(device, 8, 1.0))
    assert not found.gaps
    assert found.rates[hardware].kg_per_device_hour == pytest.approx(kg / (6 * HOURS_PER_YEAR * 0.85))
    assert found.kg_co2e == pytest.approx(8 * kg / (6 * HOURS_PER_YEAR * 0.85))


def test_a_footprint_given_for_uncovered_hardware_needs_its_life_and_utilization():
    with pytest.raises(FactorError, match="service life and utilization"):
        rate("L4", Assumptions(kg_co2e_per_device={"L4": 1000.0}))
    given = rate("L4", Assumptions(life_years=5, utilization=0.8, kg_co2e_per_device={"L4": 1000.0}))
    assert given.kg_per_device_hour == pytest.approx(1000 / (5 * HOURS_PER_YEAR * 0.8))
    assert given.citations == ()


@pytest.mark.parametrize("kwargs", [{"life_years": 0}, {"utilization": 1.5}, {"utilization": 0},
                                    {"kg_co2e_per_device": {"A100-SXM": -1.0}}])
def test_impossible_assumptions_are_refused(kwargs):
    with pytest.raises(FactorError):
        Assumptions(**kwargs)
