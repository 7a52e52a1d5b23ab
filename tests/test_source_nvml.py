"""The NVML GPU source, against a fake pynvml that keeps pynvml's constants, errors and units."""

from __future__ import annotations

import sys

import pytest

from joulemeter.meter.energy import DomainAccumulator
from joulemeter.meter.errors import SourceUnavailable
from joulemeter.meter.run import Provenance
from joulemeter.meter.sources.nvml import NvmlSource
from tests.fakes.fake_pynvml import FakeGpu, FakeNvml, install

A100 = "GPU-a1000000-0000-0000-0000-000000000001"
H100 = "GPU-h1000000-0000-0000-0000-000000000002"
P100 = "GPU-p1000000-0000-0000-0000-000000000003"


@pytest.fixture
def no_cvd(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def _fake(monkeypatch, *gpus: FakeGpu, **kwargs) -> FakeNvml:
    return install(monkeypatch, FakeNvml(list(gpus), **kwargs))


def _three_gpus(monkeypatch) -> FakeNvml:
    return _fake(
        monkeypatch,
        FakeGpu(name="NVIDIA A100-SXM4-40GB", uuid=A100),
        FakeGpu(name="NVIDIA H100 80GB HBM3", uuid=H100, arch=9),
        FakeGpu(name="Tesla P100-PCIE-16GB", uuid=P100, arch=4, power_field=False),
    )


def test_a_gpu_with_an_energy_counter_gives_a_counter_domain_and_raw_joules(monkeypatch, no_cvd):
    fake = _fake(monkeypatch, FakeGpu(power_w=100.0))
    source = NvmlSource()
    (domain,) = source.open()
    assert (domain.name, domain.kind, domain.provenance) == ("gpu:0", "gpu", Provenance.COUNTER)
    assert domain.device == "NVIDIA A100-SXM4-40GB"
    fake.clock.advance(2.0)
    (reading,) = source.read()
    # 100 W for 2 s = 200,000 mJ on the counter = 200 J; power field 100,000 mW = 100 W
    assert reading.energy_j == pytest.approx(200.0)
    assert reading.power_w == pytest.approx(100.0)
    assert reading.error is None


def test_a_pre_volta_gpu_is_sampled_from_power_without_a_counter(monkeypatch, no_cvd):
    fake = _fake(monkeypatch, FakeGpu(name="Tesla P100-PCIE-16GB", arch=4, power_w=150.0))
    source = NvmlSource()
    (domain,) = source.open()
    assert domain.provenance is Provenance.SAMPLED
    fake.clock.advance(1.0)
    (reading,) = source.read()
    assert reading.energy_j is None
    assert reading.power_w == pytest.approx(150.0)


def test_power_falls_back_to_power_usage_when_the_instant_field_is_unsupported(monkeypatch, no_cvd):
    _fake(monkeypatch, FakeGpu(power_field=False, power_w=75.0))
    source = NvmlSource()
    (domain,) = source.open()
    assert "nvmlDeviceGetPowerUsage" in domain.method
    assert source.read()[0].power_w == pytest.approx(75.0)


def test_cuda_visible_devices_by_index_renumbers_gpus_as_the_process_sees_them(monkeypatch):
    _three_gpus(monkeypatch)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,0")
    domains = NvmlSource().open()
    assert [(d.name, d.device) for d in domains] == [
        ("gpu:0", "Tesla P100-PCIE-16GB"),
        ("gpu:1", "NVIDIA A100-SXM4-40GB"),
    ]


def test_cuda_visible_devices_by_uuid_and_unique_uuid_prefix(monkeypatch):
    _three_gpus(monkeypatch)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", f"{H100}, GPU-a1")
    domains = NvmlSource().open()
    assert [d.device for d in domains] == ["NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-40GB"]


def test_cuda_visible_devices_stops_at_the_first_entry_naming_no_gpu(monkeypatch):
    _three_gpus(monkeypatch)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,7,0")
    assert [d.device for d in NvmlSource().open()] == ["NVIDIA H100 80GB HBM3"]


def test_empty_cuda_visible_devices_hides_every_gpu_and_shuts_nvml_down(monkeypatch):
    fake = _three_gpus(monkeypatch)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(SourceUnavailable) as err:
        NvmlSource().open()
    assert "hides every GPU" in err.value.reason
    assert fake.initialised == 0


def test_mig_mode_notes_that_power_is_board_level(monkeypatch, no_cvd):
    _fake(monkeypatch, FakeGpu(mig_enabled=True), FakeGpu(uuid=H100, mig_enabled=False))
    mig, plain = NvmlSource().open()
    assert "board" in mig.note and "MIG" in mig.note
    assert plain.note is None


def test_a_mig_instance_in_cuda_visible_devices_meters_its_board(monkeypatch):
    mig_uuid = "MIG-11111111-2222-3333-4444-555555555555"
    _fake(
        monkeypatch,
        FakeGpu(name="NVIDIA A100-SXM4-40GB", uuid=A100),
        FakeGpu(name="NVIDIA H100 80GB HBM3", uuid=H100, arch=9, mig_enabled=True,
                mig_uuids=[mig_uuid]),
    )
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", mig_uuid)
    (domain,) = NvmlSource().open()
    assert (domain.name, domain.device) == ("gpu:0", "NVIDIA H100 80GB HBM3")
    assert "board" in domain.note


def test_a_lost_gpu_gives_error_readings_then_resumes(monkeypatch, no_cvd):
    gpu = FakeGpu(power_w=100.0)
    fake = _fake(monkeypatch, gpu)
    source = NvmlSource()
    source.open()
    gpu.lost = True
    (lost,) = source.read()
    assert lost.error == "GPU lost: GPU is lost"
    assert lost.energy_j is None and lost.power_w is None
    gpu.lost = False
    fake.clock.advance(1.0)
    (back,) = source.read()
    assert back.error is None and back.energy_j == pytest.approx(100.0)


def test_missing_nvidia_ml_py_makes_the_source_unavailable(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml raises ImportError
    with pytest.raises(SourceUnavailable) as err:
        NvmlSource().open()
    assert "nvidia-ml-py" in err.value.reason and err.value.fix == "pip install nvidia-ml-py"


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"library_missing": True}, "no NVIDIA driver"),
        ({"driver_not_loaded": True}, "not loaded"),
    ],
)
def test_a_missing_or_unloaded_driver_makes_the_source_unavailable(monkeypatch, kwargs, reason):
    _fake(monkeypatch, FakeGpu(), **kwargs)
    status = NvmlSource().status()
    assert not status.available
    assert reason in status.reason and status.fix


def test_no_gpu_makes_the_source_unavailable_and_shuts_nvml_down(monkeypatch, no_cvd):
    fake = _fake(monkeypatch)
    with pytest.raises(SourceUnavailable, match="no NVIDIA GPU found"):
        NvmlSource().open()
    assert fake.initialised == 0


def test_close_shuts_nvml_down_once_even_when_called_twice(monkeypatch, no_cvd):
    fake = _fake(monkeypatch, FakeGpu())
    source = NvmlSource()
    source.open()
    assert fake.initialised == 1
    source.close()
    source.close()
    assert fake.initialised == 0


def test_a_lost_gpu_becomes_a_gap_with_no_energy_counted_across_it(monkeypatch, no_cvd):
    gpu = FakeGpu(power_w=100.0)
    fake = _fake(monkeypatch, gpu)
    source = NvmlSource()
    (domain,) = source.open()
    acc = DomainAccumulator(domain)
    energies = []
    for t_s in range(6):  # reads at t = 0..5 s; the GPU is lost for the reads at 2 and 3
        gpu.lost = t_s in (2, 3)
        fake.clock.t_s = float(t_s)
        energies.append(acc.add(float(t_s), source.read()[0]).energy_j)
    acc.finish(5.0)
    # counted: 0->1 s (100 J) and 4->5 s (100 J); nothing across the gap 1->4 s
    assert acc.energy_j == pytest.approx(200.0)
    assert [(g.start_s, g.end_s) for g in acc.gaps] == [(1.0, 4.0)]
    assert "GPU lost" in acc.gaps[0].reason
    known = [e for e in energies if e is not None]
    assert known == sorted(known) and min(known) >= 0


def test_a_counter_reset_records_a_gap_and_never_negative_energy(monkeypatch, no_cvd):
    gpu = FakeGpu(power_w=50.0)
    fake = _fake(monkeypatch, gpu)
    source = NvmlSource()
    (domain,) = source.open()
    acc = DomainAccumulator(domain)
    fake.clock.advance(10.0)  # counter at 500 J before the first read
    acc.add(0.0, source.read()[0])
    fake.clock.advance(1.0)
    acc.add(1.0, source.read()[0])  # +50 J
    fake.reset_counter(gpu)
    fake.clock.advance(1.0)
    acc.add(2.0, source.read()[0])  # counter went 550 J -> 50 J: reset, nothing counted
    fake.clock.advance(1.0)
    acc.add(3.0, source.read()[0])  # +50 J
    assert acc.energy_j == pytest.approx(100.0)
    assert [g.reason for g in acc.gaps] == ["energy counter went back (reset)"]
