"""The AMD SMI GPU source and HIP's device numbering, against a fake amdsmi (tests/fakes/fake_amdsmi.py)."""

from __future__ import annotations

import pytest

from joulemeter.meter.energy import DomainAccumulator
from joulemeter.meter.errors import SourceUnavailable
from joulemeter.meter.run import Provenance
from joulemeter.meter.sources.amd import AmdSmiSource
from joulemeter.meter.sources.hip_devices import AmdBoard, map_devices
from tests.fakes.fake_amdsmi import (
    RESOLUTION_UJ,
    STATUS,
    FakeAmdGpu,
    FakeAmdSmi,
    install,
)

MI300 = "64ff74a1-0000-1000-8042-7d2a0e1b3900"
MI300_B = "64ff74a1-0000-1000-8043-9c11aa02ff01"


def _fake(monkeypatch, *gpus: FakeAmdGpu, **kwargs) -> FakeAmdSmi:
    return install(monkeypatch, FakeAmdSmi(list(gpus), **kwargs))


def _source(fake: FakeAmdSmi, check_s: float = 0.5) -> AmdSmiSource:
    """A source on the fake's clock, whose counter check advances that clock instead of sleeping."""
    return AmdSmiSource(clock=fake.clock, sleep=fake.clock.advance, check_s=check_s)


def test_an_mi300x_gives_a_counter_domain_in_joules_from_the_counter_resolution(monkeypatch):
    fake = _fake(monkeypatch, FakeAmdGpu(power_w=300.0))
    source = _source(fake)
    (domain,) = source.open()
    assert (domain.name, domain.kind, domain.vendor, domain.provenance) == ("gpu:0", "gpu", "amd", Provenance.COUNTER)
    assert "amdsmi_get_energy_count" in domain.method and "current_socket_power" in domain.method
    assert domain.counter_range_j == pytest.approx(2**64 * RESOLUTION_UJ * 1e-6)
    first = source.read()[0]
    fake.clock.advance(2.0)
    second = source.read()[0]
    # 300 W for 2 s = 600 J, counted in 15.259 uJ steps
    assert second.energy_j - first.energy_j == pytest.approx(600.0, abs=0.01)
    assert second.power_w == 300.0
    assert source.details(0.0)["gpu:0"]["counter_check"]["verdict"] == "agrees"


def test_the_old_binding_key_for_the_counter_is_read_too(monkeypatch):
    fake = _fake(monkeypatch, FakeAmdGpu(old_api=True, power_w=100.0))
    source = _source(fake)
    source.open()
    a = source.read()[0].energy_j
    fake.clock.advance(1.0)
    assert source.read()[0].energy_j - a == pytest.approx(100.0, abs=0.01)


def test_a_counter_that_disagrees_with_power_times_time_is_rejected_and_power_is_integrated(monkeypatch):
    fake = _fake(monkeypatch, FakeAmdGpu(counter_scale=40.0, power_w=200.0))
    source = _source(fake)
    (domain,) = source.open()
    assert domain.provenance is Provenance.SAMPLED
    assert "rejected" in domain.note and "ROCm/amdsmi#38" in domain.note
    reading = source.read()[0]
    assert reading.energy_j is None and reading.power_w == 200.0
    assert source.read_counters() == []


def test_a_navi_card_with_only_average_power_and_no_counter_is_sampled_and_says_it_is_averaged(monkeypatch):
    fake = _fake(monkeypatch, FakeAmdGpu(name="AMD Radeon RX 7900 XTX", counter=False,
                                         power_keys=("average_socket_power",), power_w=250.0))
    (domain,) = _source(fake).open()
    assert domain.provenance is Provenance.SAMPLED
    assert "average_socket_power" in domain.method
    assert "no energy counter" in domain.note and "average" in domain.note


def test_a_wrap_of_the_uint64_accumulator_is_unwrapped_by_the_meter(monkeypatch):
    start = 2**64 - int(50.0 / (RESOLUTION_UJ * 1e-6))  # 50 J before the wrap
    fake = _fake(monkeypatch, FakeAmdGpu(start_ticks=start, power_w=100.0))
    source = _source(fake, check_s=0.0)
    (domain,) = source.open()
    acc = DomainAccumulator(domain)
    acc.add(0.0, source.read()[0])
    fake.clock.advance(1.0)  # 100 J: past the wrap
    acc.add(1.0, source.read()[0])
    # near 2**64 steps (~2.8e14 J) a float64 joule value is spaced 1/16 J apart: two roundings
    assert acc.energy_j == pytest.approx(100.0, abs=0.25)
    assert acc.gaps == []


def test_a_transient_error_on_a_counter_gpu_is_bridged_and_a_lost_gpu_stays_lost(monkeypatch):
    gpu = FakeAmdGpu(power_w=100.0)
    fake = _fake(monkeypatch, gpu)
    source = _source(fake)
    source.open()
    source.read()
    gpu.failures["amdsmi_get_energy_count"] = [STATUS["BUSY"]]
    fake.clock.advance(1.0)
    assert source.read() == []  # left out: the next counter read holds the energy
    fake.clock.advance(1.0)
    assert source.read()[0].energy_j is not None
    (bridge,) = source.details(0.0)["gpu:0"]["errors_bridged_by_counter"]
    assert bridge["to_s"] is not None and "30" in bridge["error"]
    fake.lose(gpu)
    first, again = source.read()[0], source.read()[0]
    assert first.error.startswith("GPU lost") and again.error == first.error
    assert source.read_counters() == []


def test_a_gpu_amd_smi_refuses_is_named_unreadable_with_the_group_fix_while_the_other_is_metered(monkeypatch):
    fake = _fake(monkeypatch, FakeAmdGpu(uuid=MI300),
                 FakeAmdGpu(uuid=MI300_B, bdf="0000:26:00.0", broken={"amdsmi_get_gpu_device_uuid": STATUS["NO_PERM"]}))
    source = _source(fake)
    assert [d.name for d in source.open()] == ["gpu:0"]
    (why,) = source.unreadable()
    assert "AMD SMI index 1" in why.reason and "render" in why.fix


@pytest.mark.parametrize(
    ("kwargs", "words", "fix"),
    [
        ({"missing": True}, "not installed", "ROCm"),
        ({"init_error": STATUS["DRIVER_NOT_LOADED"]}, "amdgpu driver is not loaded", "modprobe amdgpu"),
        ({"init_error": STATUS["NO_PERM"]}, "refused this user", "render"),
    ],
)
def test_amd_smi_that_cannot_start_says_why_and_the_fix(monkeypatch, kwargs, words, fix):
    fake = _fake(monkeypatch, FakeAmdGpu(), **kwargs)
    with pytest.raises(SourceUnavailable) as info:
        _source(fake).open()
    assert words in info.value.reason and fix in info.value.fix
    (status,) = _source(fake).statuses()
    assert not status.available and words in status.reason


def test_no_amd_gpu_is_unavailable(monkeypatch):
    fake = _fake(monkeypatch)
    with pytest.raises(SourceUnavailable, match="no AMD GPU"):
        _source(fake).open()


def test_cpx_partitions_meter_the_one_with_a_reading_and_name_the_others(monkeypatch):
    fake = _fake(
        monkeypatch,
        FakeAmdGpu(uuid=MI300, partition="CPX"),
        FakeAmdGpu(uuid=MI300_B, bdf="0000:05:00.1", partition="CPX", counter=False, power_keys=()),
    )
    source = _source(fake)
    (domain,) = source.open()
    assert domain.name == "gpu:0" and "CPX" in domain.note and "whole socket" in domain.note
    (why,) = source.unreadable()
    assert "gpu:1" in why.reason and "CPX mode" in why.reason and "first partition" in why.reason


def test_an_mi250x_second_die_that_reads_nothing_is_left_out_with_the_reason(monkeypatch):
    fake = _fake(monkeypatch, FakeAmdGpu(name="AMD Instinct MI250X", uuid=MI300, power_w=400.0),
                 FakeAmdGpu(name="AMD Instinct MI250X", uuid=MI300_B, bdf="0000:06:00.0", power_w=0.0))
    source = _source(fake)
    assert [d.name for d in source.open()] == ["gpu:0"]
    (why,) = source.unreadable()
    assert "MI250" in why.reason and "does not move" in why.reason


def test_hip_visible_devices_renumbers_the_gpus_this_process_sees(monkeypatch):
    fake = _fake(monkeypatch, FakeAmdGpu(uuid=MI300, name="A"), FakeAmdGpu(uuid=MI300_B, bdf="0000:26:00.0", name="B"))
    monkeypatch.setenv("HIP_VISIBLE_DEVICES", "1")
    source = _source(fake)
    (domain,) = source.open()
    assert (domain.name, domain.device) == ("gpu:0", "B")
    assert source.details(0.0)["gpu:0"]["matched_by"] == "HIP_VISIBLE_DEVICES index 1 of PCI bus order"


def _boards() -> list[AmdBoard]:
    # AMD SMI's order is not PCI order here: the mapping must sort by BDF
    return [AmdBoard(0, "aa-01", "0000:C1:00.0", "third"), AmdBoard(1, "bb-02", "0000:05:00.0", "first"),
            AmdBoard(2, "cc-03", "0000:26:00.0", "second")]


def test_without_visible_devices_hip_numbers_gpus_in_pci_order():
    devices, warnings = map_devices(_boards(), None, None)
    assert [d.board.name for d in devices] == ["first", "second", "third"] and warnings == []


def test_rocr_by_uuid_then_hip_by_index_apply_in_turn():
    devices, warnings = map_devices(_boards(), "GPU-CC03,0,GPU-aa01", "2,0")
    # ROCr leaves [second, first, third]; HIP then takes its 2 and 0
    assert [(d.hip_index, d.board.name) for d in devices] == [(0, "third"), (1, "second")]
    assert devices[0].matched_by == "HIP_VISIBLE_DEVICES index 2 of ROCR_VISIBLE_DEVICES UUID" and warnings == []


def test_cuda_visible_devices_stands_for_hip_visible_devices_only_when_hip_is_unset():
    assert [d.board.name for d in map_devices(_boards(), None, None, "1")[0]] == ["second"]
    assert [d.board.name for d in map_devices(_boards(), None, "2", "1")[0]] == ["third"]


def test_an_entry_that_names_no_gpu_ends_the_list_with_a_warning():
    devices, warnings = map_devices(_boards(), "1,GPU-ffff,0", None)
    assert [d.board.name for d in devices] == ["second"]
    assert "'GPU-ffff' names no GPU" in warnings[0]
    devices, warnings = map_devices(_boards(), None, "0,7,1")
    assert [d.board.name for d in devices] == ["first"] and "'7'" in warnings[0]


def test_a_transient_error_during_the_counter_check_leaves_the_counter_unchecked_not_the_gpu_unread(monkeypatch):
    fake = _fake(monkeypatch, FakeAmdGpu(failures={"amdsmi_get_energy_count": []}))
    source = _source(fake)
    real_sleep = source.sleep

    def sleep_then_fail(seconds):
        real_sleep(seconds)
        fake.gpus[0].failures["amdsmi_get_energy_count"] = [STATUS["BUSY"]]

    source.sleep = sleep_then_fail
    (domain,) = source.open()
    assert domain.provenance is Provenance.COUNTER and "unchecked" in domain.note
