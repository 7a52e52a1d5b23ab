"""The Intel GPU source, against a fake /sys/class/drm laid out as the i915 and xe drivers do."""

from __future__ import annotations

import sys
import types

import pytest

from joulemeter.meter.energy import DomainAccumulator
from joulemeter.meter.errors import SourceUnavailable
from joulemeter.meter.run import Provenance
from joulemeter.meter.sources.intel_gpu import IntelGpuSource
from tests.fakes.hwmon import intel_card, set_value


def test_an_xe_card_is_metered_from_its_card_channel_in_microjoules(tmp_path):
    hwmon = intel_card(tmp_path, 0, "xe", {"pkg": 5_000_000, "card": 9_000_000})
    source = IntelGpuSource(tmp_path)
    (domain,) = source.open()
    assert (domain.name, domain.kind, domain.vendor, domain.provenance) == ("gpu:0", "gpu", "intel", Provenance.COUNTER)
    assert "card, energy2_input" in domain.method and domain.note is None
    assert domain.device == "Intel GPU PCI 8086:0bd5 (xe)"
    assert source.read()[0].energy_j == pytest.approx(9.0)
    set_value(hwmon / "energy2_input", 9_250_000)
    assert source.read_counters()[0].energy_j == pytest.approx(9.25)


def test_an_i915_card_without_labels_reads_its_one_channel_as_the_cards(tmp_path):
    intel_card(tmp_path, 1, "i915", {"": 1_000_000})
    (domain,) = IntelGpuSource(tmp_path).open()
    assert domain.name == "gpu:0" and "i915 hwmon energy counter (card, energy1_input)" == domain.method


def test_a_package_only_channel_is_metered_with_a_note_that_memory_is_left_out(tmp_path):
    intel_card(tmp_path, 0, "xe", {"pkg": 0})
    (domain,) = IntelGpuSource(tmp_path).open()
    assert "package channel only" in domain.note


def test_cards_of_other_drivers_and_connectors_are_skipped_and_cards_numbered_in_order(tmp_path):
    intel_card(tmp_path, 2, "i915", {"": 0})
    other = intel_card(tmp_path, 0, "amdgpu", {"": 0})
    assert other.exists()
    intel_card(tmp_path, 10, "xe")
    domains = IntelGpuSource(tmp_path).open()
    assert [(d.name, d.method.split()[0]) for d in domains] == [("gpu:0", "i915"), ("gpu:1", "xe")]


def test_no_intel_gpu_counter_is_unavailable_with_the_kernel_fix(tmp_path):
    with pytest.raises(SourceUnavailable) as info:
        IntelGpuSource(tmp_path / "none").open()
    assert "no Intel GPU energy counter" in info.value.reason and "6.2" in info.value.fix


def test_a_root_only_counter_says_how_to_grant_access(tmp_path):
    intel_card(tmp_path, 0, "xe")

    def root_only(path):
        if path.name.startswith("energy") and path.name.endswith("_input"):
            raise PermissionError(13, "Permission denied")
        return path.read_text()

    (status,) = IntelGpuSource(tmp_path, read_text=root_only).statuses()
    assert not status.available and "root only" in status.reason and "chmod" in status.fix


def test_a_counter_that_goes_back_is_a_gap_and_a_removed_card_stays_lost(tmp_path):
    hwmon = intel_card(tmp_path, 0, "xe", {"card": 10_000_000})
    source = IntelGpuSource(tmp_path)
    (domain,) = source.open()
    acc = DomainAccumulator(domain)
    acc.add(0.0, source.read()[0])
    set_value(hwmon / "energy1_input", 2_000_000)  # driver reloaded: the count restarts
    acc.add(1.0, source.read()[0])
    assert acc.energy_j == 0.0 and "reset" in acc.gaps[0].reason
    (hwmon / "energy1_input").unlink()
    lost = source.read()[0]
    assert lost.error.startswith("GPU lost")
    set_value(hwmon / "energy1_input", 3_000_000)
    assert source.read()[0].error == lost.error


def test_a_garbled_value_is_an_error_for_that_read_only(tmp_path):
    hwmon = intel_card(tmp_path, 0, "xe", {"card": 1})
    source = IntelGpuSource(tmp_path)
    source.open()
    set_value(hwmon / "energy1_input", "garbage")  # type: ignore[arg-type]
    assert "hwmon read failed" in source.read()[0].error
    set_value(hwmon / "energy1_input", 5)
    assert source.read()[0].energy_j == pytest.approx(5e-6)


def test_synchronize_waits_on_torch_xpu_only_where_torch_runs_it(tmp_path, monkeypatch):
    intel_card(tmp_path, 0, "xe")
    synced = []
    xpu = types.SimpleNamespace(is_initialized=lambda: True, synchronize=lambda: synced.append(True))
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(xpu=xpu))
    source = IntelGpuSource(tmp_path)
    source.open()
    source.synchronize()
    assert synced == [True]
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace())
    source.synchronize()
    assert synced == [True]
