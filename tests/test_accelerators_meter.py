"""A whole EnergyMeter run on each vendor's source (against its fake), and the distributed merge of
such runs: every accelerator is a `gpu` domain (Apple's Neural Engine an `ane` one) with its vendor."""

from __future__ import annotations

import sys

import pytest

import joulemeter.meter.sources.apple as apple
from joulemeter.integrations.distributed import RankPlacement, merge_runs
from joulemeter.meter import EnergyMeter
from joulemeter.meter.run import Provenance
from joulemeter.meter.sources.amd import AmdSmiSource
from joulemeter.meter.sources.apple import AppleSource
from joulemeter.meter.sources.gaudi import GaudiSource
from joulemeter.meter.sources.intel_gpu import IntelGpuSource
from joulemeter.meter.sources.jetson import JetsonSource
from tests.fakes.fake_amdsmi import FakeAmdGpu, FakeAmdSmi, install
from tests.fakes.fake_hl_smi import FakeHlSmi, gaudi
from tests.fakes.fake_pynvml import FakeGpu, FakeNvml, RealClock
from tests.fakes.fake_pynvml import install as install_nvml
from tests.fakes.hwmon import intel_card, jetson_hwmon
from tests.fakes.powermetrics import fake_powermetrics, sample
from tests.polling import wait_until


def _amd(monkeypatch, tmp_path):
    install(monkeypatch, FakeAmdSmi([FakeAmdGpu(power_w=300.0)], clock=RealClock()))
    return AmdSmiSource(check_s=0.02)


def _nvidia(monkeypatch, tmp_path):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    install_nvml(monkeypatch, FakeNvml([FakeGpu(power_w=300.0, counter_period_s=0.001)], clock=RealClock()))
    from joulemeter.meter.sources.nvml import NvmlSource

    return NvmlSource(measure_updates=False)


def _intel(monkeypatch, tmp_path):
    intel_card(tmp_path, 0, "xe", {"card": 1_000_000})
    return IntelGpuSource(tmp_path)


def _gaudi(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    monkeypatch.delenv("HABANA_VISIBLE_MODULES", raising=False)
    FakeHlSmi(tmp_path, [gaudi(0, "300 W")])
    return GaudiSource()


def _jetson(monkeypatch, tmp_path):
    jetson_hwmon(tmp_path, {"VDD_GPU_SOC": (5000, 2000), "VDD_CPU_CV": (5000, 1000)})
    return JetsonSource(tmp_path)


def _apple(monkeypatch, tmp_path):
    monkeypatch.setattr(apple, "is_apple_silicon", lambda: True)
    monkeypatch.setitem(sys.modules, "zeus_apple_silicon", None)
    return AppleSource(powermetrics=fake_powermetrics(tmp_path, [sample(), sample()]))


VENDORS = [
    (_nvidia, "nvidia", Provenance.COUNTER),
    (_amd, "amd", Provenance.COUNTER),
    (_intel, "intel", Provenance.COUNTER),
    (_gaudi, "habana", Provenance.SAMPLED),
    (_jetson, "nvidia", Provenance.SAMPLED),
    (_apple, "apple", Provenance.COUNTER),
]


def _run(source):
    with EnergyMeter("accelerators", sources=[source], store=False, interval_s=0.01) as meter:
        wait_until(lambda: len({s.t_s for s in meter._sampler.samples()}) >= 3, "three ticks")
    return meter.run


@pytest.mark.parametrize(("make", "vendor", "provenance"), VENDORS, ids=[m.__name__[1:] for m, *_ in VENDORS])
def test_a_run_on_each_vendor_keeps_its_gpu_domain_vendor_and_provenance(monkeypatch, tmp_path, make, vendor,
                                                                          provenance):
    run = _run(make(monkeypatch, tmp_path))
    (gpu,) = [d for d in run.domains if d.kind == "gpu"]
    assert (gpu.name, gpu.vendor, gpu.provenance) == ("gpu:0", vendor, provenance)
    assert run.energy["gpu:0"].provenance is provenance
    assert run.energy["gpu:0"].energy_j >= 0.0


def test_an_amd_gpu_at_constant_power_meters_power_times_duration(monkeypatch, tmp_path):
    run = _run(_amd(monkeypatch, tmp_path))
    assert run.energy["gpu:0"].energy_j == pytest.approx(300.0 * run.duration_s, rel=0.1)
    assert run.metadata["devices"]["gpu:0"]["counter_check"]["verdict"] == "agrees"


def _placements():
    return [RankPlacement(r, r, "node0", "0", "host", (0,), r == 0) for r in range(2)]


@pytest.mark.parametrize(("make", "vendor", "provenance"), VENDORS, ids=[m.__name__[1:] for m, *_ in VENDORS])
def test_the_distributed_merge_treats_every_vendor_alike(monkeypatch, tmp_path, make, vendor, provenance):
    runs = []
    for rank in range(2):
        folder = tmp_path / f"rank{rank}"
        folder.mkdir()
        runs.append(_run(make(monkeypatch, folder)))
    merged = merge_runs(runs, _placements(), run_id="merged")
    gpus = {d.name: d for d in merged.domains if d.kind == "gpu"}
    assert set(gpus) == {"node0/rank0/gpu:0", "node0/rank1/gpu:0"}
    assert {(d.vendor, d.provenance) for d in gpus.values()} == {(vendor, provenance)}
    assert merged.metadata["energy_by_rank_j"]["0"] == pytest.approx(
        sum(e.energy_j for n, e in runs[0].energy.items() if n.startswith(("gpu", "ane"))))
    if any(d.kind == "cpu" for d in runs[0].domains):  # Jetson's and Apple's CPU: the host rank's, node-level
        assert "node0/cpu" in {d.name for d in merged.domains}
