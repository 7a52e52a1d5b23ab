"""The Jetson source, against fake INA3221 trees in both driver layouts (tests/fakes/hwmon.py)."""

from __future__ import annotations

import pytest

from joulemeter.meter.energy import DomainAccumulator
from joulemeter.meter.errors import SourceUnavailable
from joulemeter.meter.run import Provenance
from joulemeter.meter.sources.jetson import JetsonSource
from tests.fakes.hwmon import jetson_hwmon, jetson_iio, set_value

# Rail names of the Jetson Linux Developer Guide, "Platform Power and Performance"
AGX_ORIN = {"VDD_GPU_SOC": (5000, 2000), "VDD_CPU_CV": (5000, 1000), "VIN_SYS_5V0": (5000, 900)}
ORIN_NANO = {"VDD_IN": (5000, 3000), "VDD_CPU_GPU_CV": (5000, 1500), "VDD_SOC": (5000, 600)}


def test_agx_orin_meters_its_gpu_and_cpu_rails_from_millivolts_times_milliamps(tmp_path):
    hwmon = jetson_hwmon(tmp_path, AGX_ORIN)
    source = JetsonSource(tmp_path)
    gpu, cpu = source.open()
    assert (gpu.name, gpu.kind, gpu.vendor, gpu.provenance) == ("gpu:0", "gpu", "nvidia", Provenance.SAMPLED)
    assert (cpu.name, cpu.kind) == ("cpu", "cpu")
    assert "VDD_GPU_SOC" in gpu.method and "includes the SoC" in gpu.note
    assert "CV accelerators" in cpu.note
    by_name = {r.domain: r.power_w for r in source.read()}
    assert by_name == {"gpu:0": pytest.approx(10.0), "cpu": pytest.approx(5.0)}  # 5 V × 2 A, 5 V × 1 A
    assert source.covers() == frozenset()
    assert source.details(0.0)["gpu:0"]["rails_not_added"] == ["VIN_SYS_5V0"]
    set_value(hwmon / "curr1_input", 3000)
    assert source.read()[0].power_w == pytest.approx(15.0)


def test_a_rail_that_feeds_cpu_and_gpu_is_one_gpu_domain_that_covers_the_cpu(tmp_path):
    jetson_hwmon(tmp_path, ORIN_NANO)
    source = JetsonSource(tmp_path)
    (gpu,) = source.open()
    assert "VDD_CPU_GPU_CV" in gpu.method and "the CPU is in this reading" in gpu.note
    assert source.covers() == frozenset({"cpu"})
    assert source.read()[0].power_w == pytest.approx(7.5)


def test_the_older_iio_driver_gives_power_in_milliwatts(tmp_path):
    jetson_iio(tmp_path, {"POM_5V_IN": 4000, "POM_5V_GPU": 1200, "POM_5V_CPU": 800})
    source = JetsonSource(tmp_path)
    gpu, cpu = source.open()
    assert "in_power mW" in gpu.method
    assert [r.power_w for r in source.read()] == [pytest.approx(1.2), pytest.approx(0.8)]


def test_power_is_integrated_by_the_meter(tmp_path):
    hwmon = jetson_hwmon(tmp_path, AGX_ORIN)
    source = JetsonSource(tmp_path)
    gpu, _ = source.open()
    acc = DomainAccumulator(gpu)
    acc.add(0.0, source.read()[0])
    set_value(hwmon / "curr1_input", 4000)  # 20 W
    acc.add(2.0, source.read()[0])
    assert acc.energy_j == pytest.approx((10.0 + 20.0) / 2 * 2.0)


def test_not_a_jetson_is_unavailable_with_the_reason(tmp_path):
    with pytest.raises(SourceUnavailable, match="not a Jetson"):
        JetsonSource(tmp_path).open()


def test_a_rail_that_cannot_be_read_mid_run_is_an_error_for_that_rail_only(tmp_path):
    hwmon = jetson_hwmon(tmp_path, AGX_ORIN)
    source = JetsonSource(tmp_path)
    source.open()
    (hwmon / "curr1_input").unlink()
    gpu, cpu = source.read()
    assert "VDD_GPU_SOC read failed" in gpu.error and cpu.power_w == pytest.approx(5.0)


def test_an_unreadable_rail_says_so_at_open(tmp_path):
    jetson_hwmon(tmp_path, AGX_ORIN)

    def refuse(path):
        if path.name.startswith("curr"):
            raise PermissionError(13, "Permission denied")
        return path.read_text()

    (status,) = JetsonSource(tmp_path, read_text=refuse).statuses()
    assert not status.available and "not readable" in status.reason and status.fix
