"""The RAPL source, on a temporary powercap tree laid out like the Linux intel_rapl driver's."""

from __future__ import annotations

from pathlib import Path

import pytest

from joulemeter.meter.energy import DomainAccumulator
from joulemeter.meter.errors import SourceUnavailable
from joulemeter.meter.run import Provenance
from joulemeter.meter.sources.rapl import RaplSource, read_sysfs
from tests.fakes.sysfs import TYPICAL_RANGE_UJ, add_zone, set_energy, two_socket_server


def test_packages_and_dram_are_found_and_core_uncore_are_not(tmp_path):
    two_socket_server(tmp_path)
    domains = RaplSource(tmp_path).open()
    assert [(d.name, d.kind) for d in domains] == [
        ("cpu:package-0", "cpu"),
        ("cpu:package-1", "cpu"),
        ("dram:0", "dram"),
        ("dram:1", "dram"),
    ]
    assert all(d.provenance is Provenance.COUNTER for d in domains)
    assert domains[0].counter_range_j == pytest.approx(TYPICAL_RANGE_UJ / 1e6)


def test_the_mmio_mirror_of_a_package_is_not_counted_twice(tmp_path):
    add_zone(tmp_path, "intel-rapl:0", "package-0")
    add_zone(tmp_path, "intel-rapl-mmio:0", "package-0")
    assert [d.name for d in RaplSource(tmp_path).open()] == ["cpu:package-0"]


def test_psys_is_not_added_to_the_packages_it_covers(tmp_path):
    zones = two_socket_server(tmp_path)
    assert "psys" not in [d.name for d in RaplSource(tmp_path).open()]
    assert zones["psys"].exists()


def test_psys_is_metered_when_there_is_no_package_zone(tmp_path):
    add_zone(tmp_path, "intel-rapl:0", "psys")
    (domain,) = RaplSource(tmp_path).open()
    assert (domain.name, domain.kind) == ("psys", "psys")


def test_readings_are_raw_counters_in_joules(tmp_path):
    zones = two_socket_server(tmp_path)
    set_energy(zones["package-0"], 1_500_000)
    set_energy(zones["dram-1"], 250_000)
    source = RaplSource(tmp_path)
    source.open()
    by_name = {r.domain: r for r in source.read()}
    assert by_name["cpu:package-0"].energy_j == pytest.approx(1.5)
    assert by_name["dram:1"].energy_j == pytest.approx(0.25)
    assert by_name["cpu:package-0"].power_w is None  # the meter derives power from the counter


def test_an_unreadable_energy_file_says_why_and_how_to_grant_access(tmp_path):
    two_socket_server(tmp_path)

    def root_only(path: Path) -> str:  # what a non-root reader meets on Linux >= 5.10
        if path.name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(path))
        return read_sysfs(path)

    with pytest.raises(SourceUnavailable) as err:
        RaplSource(tmp_path, read_text=root_only).open()
    assert "CVE-2020-8694" in err.value.reason
    assert "chmod o+r" in err.value.fix and "root" in err.value.fix


def test_no_powercap_directory_means_unavailable_as_in_vms(tmp_path):
    status = RaplSource(tmp_path / "absent").status()
    assert not status.available
    assert status.reason == "no RAPL powercap interface (common in VMs and containers)"


def test_a_zone_that_fails_mid_run_gives_an_error_reading_and_others_still_read(tmp_path):
    zones = two_socket_server(tmp_path)
    source = RaplSource(tmp_path)
    source.open()
    (zones["dram-0"] / "energy_uj").unlink()
    by_name = {r.domain: r for r in source.read()}
    assert by_name["dram:0"].error and by_name["dram:0"].energy_j is None
    assert by_name["cpu:package-0"].error is None


def test_a_counter_that_wraps_twice_still_gives_the_right_positive_energy(tmp_path):
    package = add_zone(tmp_path, "intel-rapl:0", "package-0", max_energy_range_uj=100_000_000)
    source = RaplSource(tmp_path)
    (domain,) = source.open()
    assert domain.counter_range_j == pytest.approx(100.0)
    acc = DomainAccumulator(domain)
    # 90 J -> 30 J (wrapped: +40) -> 80 J (+50) -> 20 J (wrapped: +40) = 130 J
    for t_s, energy_uj in enumerate([90_000_000, 30_000_000, 80_000_000, 20_000_000]):
        set_energy(package, energy_uj)
        acc.add(float(t_s), source.read()[0])
    assert acc.energy_j == pytest.approx(130.0)
    assert acc.gaps == []
