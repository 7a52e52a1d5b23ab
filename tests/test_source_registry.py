"""A vendor registers its source in its own module; discovery and statuses find it unedited."""

from __future__ import annotations

import pytest

import joulemeter.meter.sources.base as base
import joulemeter.meter.sources.rapl as rapl
from joulemeter.meter.errors import SourceUnavailable
from joulemeter.meter.run import Domain, Provenance
from joulemeter.meter.sources import MEASURED, Reading, Source, discover, register_source, registry, statuses
from tests.fakes.fake_pynvml import FakeGpu, FakeNvml, install


class FakeAmdGpus(Source):
    """Two GPUs of another vendor, read through a counter; `present` says if its driver is."""

    name = "amd-smi"
    present = True
    opened = 0

    def open(self) -> list[Domain]:
        type(self).opened += 1
        if not self.present:
            raise SourceUnavailable(self.name, "no AMD driver", "install ROCm")
        return [Domain(f"gpu:{i}", "gpu", "AMD MI300X", Provenance.COUNTER, "AMD SMI energy counter")
                for i in range(2)]

    def read(self) -> list[Reading]:
        return [Reading(f"gpu:{i}", power_w=300.0, energy_j=1.0) for i in range(2)]


@pytest.fixture
def amd_registered(monkeypatch, tmp_path):
    """The fake vendor registered after NVML, for this test only; no RAPL here."""
    registry()  # the built-in sources register before the registry is swapped for a copy
    monkeypatch.setattr(base, "_registry", list(base._registry))
    monkeypatch.setattr(rapl, "DEFAULT_ROOT", tmp_path / "no-powercap")
    monkeypatch.setattr(FakeAmdGpus, "opened", 0)
    register_source("gpu", label="AMD SMI", preference=MEASURED + 1)(FakeAmdGpus)
    return FakeAmdGpus


def test_a_registered_vendor_meters_the_gpus_when_nvml_cannot_and_says_so(monkeypatch, amd_registered):
    install(monkeypatch, FakeNvml([], library_missing=True))
    found = discover(["gpu"])
    assert [(d.name, d.device) for d in found.domains] == [("gpu:0", "AMD MI300X"), ("gpu:1", "AMD MI300X")]
    assert [s.name for s in found.sources] == ["amd-smi"]
    assert found.fallbacks[0].startswith("NVML unavailable: no NVIDIA driver")
    assert found.fallbacks[0].endswith("; GPU AMD SMI energy counter")


def test_the_preferred_source_wins_and_the_vendor_after_it_is_not_opened(monkeypatch, amd_registered):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    install(monkeypatch, FakeNvml([FakeGpu()]))
    found = discover(["gpu"])
    assert [s.name for s in found.sources] == ["nvml"]
    assert found.fallbacks == []
    assert amd_registered.opened == 0
    for source in found.sources:
        source.close()


def test_statuses_list_the_registered_vendor_with_its_reason(monkeypatch, amd_registered):
    install(monkeypatch, FakeNvml([], library_missing=True))
    monkeypatch.setattr(FakeAmdGpus, "present", False)
    by_source = {s.source: s for s in statuses()}
    assert list(by_source) == ["nvml", "amdsmi", "amd-smi", "intel-gpu", "hl-smi", "jetson", "apple", "rapl",
                               "cpu-estimate", "ram-estimate"]
    assert (by_source["amd-smi"].available, by_source["amd-smi"].reason) == (False, "no AMD driver")


def test_no_gpu_source_reading_names_every_reason(monkeypatch, amd_registered):
    install(monkeypatch, FakeNvml([], library_missing=True))
    monkeypatch.setattr(FakeAmdGpus, "present", False)
    (note,) = discover(["gpu"]).fallbacks
    assert note.startswith("NVML unavailable: no NVIDIA driver")
    assert note.endswith("; AMD SMI unavailable: no AMD driver; GPUs are not metered")


def test_a_source_whose_hardware_is_absent_is_left_out_of_the_fallback_notes(monkeypatch, amd_registered):
    install(monkeypatch, FakeNvml([], library_missing=True))
    monkeypatch.setattr(FakeAmdGpus, "present", False)
    (note,) = discover(["gpu"]).fallbacks
    assert "Apple Silicon" not in note and "Jetson" not in note  # not a Mac, no Jetson rails here
    apple = {s.source: s for s in statuses()}["apple"]
    assert not apple.available and apple.reason == "not a Mac with Apple Silicon"  # `devices` still says why
