"""The NVML GPU source, against a faithful fake pynvml (tests/fakes/fake_pynvml.py)."""

from __future__ import annotations

import sys

import pytest

from joulemeter.meter.energy import DomainAccumulator
from joulemeter.meter.errors import SourceUnavailable
from joulemeter.meter.run import Provenance
from joulemeter.meter.sources.nvml import NvmlSource
from tests.fakes.fake_pynvml import FakeGpu, FakeNvml, FakeProcess, RealClock, install

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


def _sampled(monkeypatch, source: NvmlSource, fake: FakeNvml, reads: int, step_s: float = 0.5):
    """Read `source` `reads` times, `step_s` apart on the fake clock, into one accumulator."""
    (domain,) = source.open()
    acc = DomainAccumulator(domain)
    for i in range(reads):
        fake.clock.t_s = i * step_s
        for reading in source.read():
            acc.add(fake.clock.t_s, reading)
    acc.finish(fake.clock.t_s)
    return acc


# -- defect 1: the oldest binding allowed, and surprises that must not crash --------------
def test_an_unsigned_short_power_field_reads_on_a_binding_without_that_value_type(monkeypatch, no_cvd):
    # nvidia-ml-py 12.535.77 has neither NVML_VALUE_TYPE_UNSIGNED_SHORT nor the usVal member
    fake = _fake(monkeypatch, FakeGpu(arch=4, power_w=42.0, power_value_type=6))
    assert not hasattr(fake.module, "NVML_VALUE_TYPE_UNSIGNED_SHORT")
    source = NvmlSource()
    (domain,) = source.open()
    assert "NVML_FI_DEV_POWER_INSTANT" in domain.method
    assert source.read()[0].power_w == pytest.approx(42.0)


def test_every_binding_name_the_source_uses_exists_in_the_oldest_binding_allowed(monkeypatch):
    # The fake offers exactly what nvidia-ml-py 12.535.77 offers of what it models.
    import ast
    from pathlib import Path

    import joulemeter.meter.sources.nvml as nvml

    tree = ast.parse(Path(nvml.__file__).read_text())
    used = {n.attr for n in ast.walk(tree)
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "pynvml"}
    module = FakeNvml([]).module
    assert used and not {name for name in used if not hasattr(module, name)}


def test_an_unexpected_exception_reading_one_gpu_is_a_gap_for_that_gpu_only(monkeypatch, no_cvd):
    fake = _fake(monkeypatch, FakeGpu(uuid=A100, pci_bus_id="00000000:07:00.0"),
                 FakeGpu(uuid=H100, pci_bus_id="00000000:08:00.0"))
    source = NvmlSource()
    source.open()

    def broken(handle):
        if handle is fake.gpus[0]:
            raise AttributeError("module 'pynvml' has no attribute 'X'")
        return handle.counter_mj(fake.clock.t_s)

    monkeypatch.setattr(fake.module, "nvmlDeviceGetTotalEnergyConsumption", broken)
    first, second = source.read()
    assert first.error == "unexpected AttributeError: module 'pynvml' has no attribute 'X'"
    assert second.error is None and second.energy_j is not None


# -- defect 3: counter and power read apart; transient errors bridged; lost stays lost ------
def test_a_failing_power_field_keeps_the_counter_reading_and_leaves_no_gap(monkeypatch, no_cvd):
    gpu = FakeGpu(power_w=100.0)
    fake = _fake(monkeypatch, gpu)
    gpu.fail("field:186", "TIMEOUT", times=None)  # the instant field fails from now on
    gpu.fail("nvmlDeviceGetPowerUsage", "TIMEOUT", times=None)
    acc = _sampled(monkeypatch, NvmlSource(), fake, reads=5)
    assert acc.energy_j == pytest.approx(200.0)  # 100 W over 0 -> 2 s, from the counter
    assert acc.gaps == []


def test_a_transient_counter_error_is_bridged_by_the_counter(monkeypatch, no_cvd):
    gpu = FakeGpu(power_w=100.0)
    fake = _fake(monkeypatch, gpu)
    source = NvmlSource(clock=fake.clock, measure_updates=False)  # no probe using up the failures
    (domain,) = source.open()
    acc = DomainAccumulator(domain)
    for t_s in range(6):  # the counter times out at t = 2 and 3 s
        fake.clock.t_s = float(t_s)
        if t_s == 2:
            gpu.fail("nvmlDeviceGetTotalEnergyConsumption", "TIMEOUT", times=2)
        for reading in source.read():
            acc.add(float(t_s), reading)
    assert acc.energy_j == pytest.approx(500.0)  # nothing lost: the counter held it
    assert acc.gaps == []
    (bridged,) = source.details(0.0)["gpu:0"]["errors_bridged_by_counter"]
    assert (bridged["from_s"], bridged["to_s"], bridged["error"]) == (2.0, 4.0, "Timeout")


@pytest.mark.parametrize("error", ["GPU_IS_LOST", "RESET_REQUIRED"])
def test_a_gpu_fallen_off_the_bus_stays_lost_for_the_rest_of_the_run(monkeypatch, no_cvd, error):
    gpu = FakeGpu(power_w=100.0)
    fake = _fake(monkeypatch, gpu)
    source = NvmlSource(measure_updates=False)
    (domain,) = source.open()
    acc = DomainAccumulator(domain)
    for t_s in range(5):
        fake.clock.t_s = float(t_s)
        if t_s == 2:
            gpu.fail("nvmlDeviceGetTotalEnergyConsumption", error, times=1)  # one failure, then sticky
        for reading in source.read():
            acc.add(float(t_s), reading)
    calls_after_loss = gpu.calls
    source.read()
    assert gpu.calls == calls_after_loss  # never asked again on that handle
    (gap,) = acc.finish(4.0)
    assert acc.energy_j == pytest.approx(100.0)  # 0 -> 1 s only
    assert gap.end_s is None and gap.reason.startswith("GPU lost:") and "not read again" in gap.reason


# -- defect 4: one refusing GPU does not disable the others ----------------------------------
@pytest.mark.parametrize(
    ("board", "words"),
    [({"refuses": 4}, "Insufficient Permissions"), ({"hidden": 17}, "operating system has blocked")],
)
def test_a_gpu_nvml_refuses_is_left_out_alone_and_named_with_why(monkeypatch, no_cvd, board, words):
    _fake(monkeypatch, FakeGpu(uuid=A100, pci_bus_id="00000000:07:00.0"),
          FakeGpu(uuid=H100, pci_bus_id="00000000:08:00.0", **board))
    source = NvmlSource()
    (domain,) = source.open()
    assert domain.name == "gpu:0"
    (why,) = source.unreadable()
    assert words in why.reason and "not metered" in why.reason and why.fix
    statuses = NvmlSource().statuses()
    assert [s.available for s in statuses] == [True, False] and words in statuses[1].reason


# -- defect 5: CUDA numbers matched to boards by identity -----------------------------------
def test_cuda_indices_follow_pci_bus_order_not_nvml_order(monkeypatch):
    _fake(monkeypatch, FakeGpu(uuid=A100, pci_bus_id="00000000:B1:00.0"),
          FakeGpu(uuid=H100, pci_bus_id="00000000:07:00.0"))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    monkeypatch.setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    source = NvmlSource()
    source.open()
    assert source.details(0.0)["gpu:0"]["uuid"] == H100  # lowest bus id, though NVML index 1


def test_torch_cuda_uuids_decide_which_board_each_index_is(monkeypatch, no_cvd):
    import types

    _fake(monkeypatch, FakeGpu(uuid=A100, pci_bus_id="00000000:07:00.0"),
          FakeGpu(uuid=H100, pci_bus_id="00000000:08:00.0"))
    uuids = [H100[4:], A100[4:]]  # torch numbers the H100 first (fastest first)
    cuda = types.SimpleNamespace(
        is_initialized=lambda: True, device_count=lambda: 2,
        get_device_properties=lambda i: types.SimpleNamespace(uuid=uuids[i]),
    )
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda))
    source = NvmlSource()
    source.open()
    details = source.details(0.0)
    assert (details["gpu:0"]["uuid"], details["gpu:1"]["uuid"]) == (H100, A100)
    assert details["gpu:0"]["matched_by"] == "UUID from torch"


# -- defect 9: only the kept GPUs are read; other users of a metered GPU are recorded ------
def test_a_source_kept_to_one_gpu_never_reads_the_others(monkeypatch, no_cvd):
    # pre-Volta boards: no counter, so no background probe of it touches them either
    boards = [FakeGpu(uuid=f"GPU-{i}", pci_bus_id=f"00000000:0{i}:00.0", arch=4) for i in range(3)]
    fake = _fake(monkeypatch, *boards)
    source = NvmlSource()
    source.open()
    source.keep({"gpu:1"})
    before = [g.calls for g in fake.gpus]
    assert [r.domain for r in source.read()] == ["gpu:1"]
    assert [g.calls - b for g, b in zip(fake.gpus, before)] == [0, 3, 0]  # power field, process list, utilisation


def test_other_processes_on_a_metered_gpu_are_recorded_with_an_attributed_share(monkeypatch, no_cvd):
    import os

    gpu = FakeGpu(processes=[FakeProcess(os.getpid(), sm_util=60), FakeProcess(999_999, sm_util=20)])
    fake = _fake(monkeypatch, gpu)
    source = NvmlSource()
    source.open()
    fake.clock.advance(1.0)
    source.read()
    details = source.details(0.0)["gpu:0"]
    assert details["shared"] is True
    assert details["other_processes"] == [{"pid": 999_999, "gpu_memory_b": 1 << 30}]
    assert details["attributed_share"]["value"] == pytest.approx(0.75)
    assert details["attributed_share"]["label"].startswith("estimate:")


# -- defect 2: synchronising the metered devices, never importing torch ------------------
def test_synchronize_waits_on_the_metered_cuda_devices_only(monkeypatch, no_cvd):
    import types

    _three_gpus(monkeypatch)
    synced = []
    cuda = types.SimpleNamespace(is_initialized=lambda: True, device_count=lambda: 3,
                                 synchronize=synced.append,
                                 get_device_properties=lambda i: (_ for _ in ()).throw(RuntimeError()))
    source = NvmlSource()
    source.open()
    source.keep({"gpu:0", "gpu:2"})
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    source.synchronize()  # torch not imported: nothing to wait for, and torch stays unimported
    assert "torch" not in sys.modules and synced == []
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda))
    source.synchronize()
    assert synced == [0, 2]


# -- defect 7: the power method actually used is recorded --------------------------------
def test_a_switch_to_averaged_power_mid_run_is_recorded_with_its_time(monkeypatch, no_cvd):
    gpu = FakeGpu(name="NVIDIA RTX A6000", arch=7, power_w=80.0, counter_period_s=0.1)
    gpu.arch = 4  # no counter: power is what the energy comes from
    fake = _fake(monkeypatch, gpu)
    source = NvmlSource()
    source.open()
    source.read()
    fake.clock.t_s = 1.0
    gpu.fail("field:186", "TIMEOUT", times=None)
    source.read()
    methods = source.details(0.0)["gpu:0"]["power_methods"]
    assert [m["method"] for m in methods] == ["NVML_FI_DEV_POWER_INSTANT", "nvmlDeviceGetPowerUsage"]
    assert methods[1]["from_s"] > 0


def test_a_no_counter_gpu_with_only_averaged_power_says_windows_are_smeared(monkeypatch, no_cvd):
    _fake(monkeypatch, FakeGpu(name="NVIDIA H100 PCIe", arch=9, power_field=False))
    monkeypatch.setattr(FakeGpu, "averaged_power_usage", property(lambda self: True))
    (domain,) = NvmlSource().open()
    assert domain.provenance is Provenance.COUNTER  # Hopper has a counter: no smearing


def test_averaged_power_without_a_counter_gets_the_smearing_note(monkeypatch, no_cvd):
    gpu = FakeGpu(name="NVIDIA H100 PCIe", arch=9, power_field=False)
    fake = _fake(monkeypatch, gpu)
    monkeypatch.setattr(fake.module, "nvmlDeviceGetTotalEnergyConsumption",
                        lambda h: (_ for _ in ()).throw(fake.module.NVMLError(3)))
    (domain,) = NvmlSource().open()
    assert domain.provenance is Provenance.SAMPLED
    assert "1 s average" in domain.method and "smeared over about 1 s" in domain.note


# -- defect 8: the counter's update period is measured --------------------------------------
def test_the_counter_update_period_is_measured_at_start(monkeypatch, no_cvd):
    from tests.polling import wait_until

    fake = _fake(monkeypatch, FakeGpu(counter_period_s=0.05), clock=RealClock())
    source = NvmlSource()
    source.open()
    try:
        period = wait_until(lambda: source.counter_update_s().get("gpu:0"), "the measured period")
    finally:
        source.close()
    assert period == pytest.approx(0.05, rel=0.3)
    assert fake.initialised == 0


# -- defect 6: Grace superchips read at module scope, labelled so ----------------------------
def test_a_grace_hopper_module_is_read_at_module_scope_and_covers_cpu_and_ram(monkeypatch, no_cvd):
    _fake(monkeypatch, FakeGpu(name="NVIDIA GH200 480GB", arch=9, gpu_scope=False, power_w=300.0))
    source = NvmlSource()
    (domain,) = source.open()
    assert "module scope" in domain.method and "whole module" in domain.method
    assert "Grace" in domain.note
    assert source.read()[0].power_w == pytest.approx(300.0)
    assert source.covers() == {"cpu", "ram"}
