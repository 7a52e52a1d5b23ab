"""Discovery picks the best source per device and records each fallback; host info is local."""

from __future__ import annotations

import pytest

import joulemeter.meter.sources.rapl as rapl
from joulemeter.meter.errors import ReplayTraceError
from joulemeter.meter.hostinfo import host_info
from joulemeter.meter.run import Provenance
from joulemeter.meter.sources import discover, statuses
from tests.fakes.fake_pynvml import FakeGpu, FakeNvml, install
from tests.fakes.sysfs import add_zone, two_socket_server


@pytest.fixture
def two_gpus(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return install(monkeypatch, FakeNvml([FakeGpu(), FakeGpu(uuid="GPU-1", name="NVIDIA H100")]))


@pytest.fixture
def no_gpu_driver(monkeypatch):
    return install(monkeypatch, FakeNvml([], library_missing=True))


@pytest.fixture
def rapl_root(monkeypatch, tmp_path):
    root = tmp_path / "powercap"
    root.mkdir()
    monkeypatch.setattr(rapl, "DEFAULT_ROOT", root)
    return root


@pytest.fixture
def no_rapl(monkeypatch, tmp_path):
    monkeypatch.setattr(rapl, "DEFAULT_ROOT", tmp_path / "no-powercap")


def _close(found) -> None:
    for source in found.sources:
        source.close()


def test_a_gpu_server_with_rapl_meters_counters_only_and_falls_back_nowhere(two_gpus, rapl_root):
    two_socket_server(rapl_root)
    found = discover()
    assert [d.name for d in found.domains] == [
        "gpu:0", "gpu:1", "cpu:package-0", "cpu:package-1", "dram:0", "dram:1",
    ]
    assert {d.provenance for d in found.domains} == {Provenance.COUNTER}
    assert found.fallbacks == []
    _close(found)


def test_a_vm_without_gpu_or_rapl_estimates_cpu_and_ram_and_says_why(no_gpu_driver, no_rapl):
    found = discover()
    assert [(d.name, d.provenance) for d in found.domains] == [
        ("cpu", Provenance.ESTIMATED),
        ("ram", Provenance.ESTIMATED),
    ]
    nvml_note, cpu_note, ram_note = found.fallbacks
    assert nvml_note.startswith("NVML unavailable: no NVIDIA driver")
    assert cpu_note.startswith("RAPL unavailable: no RAPL powercap interface")
    assert "CPU estimate: CCF per-vCPU" in cpu_note
    assert "RAM estimate: CCF" in ram_note
    _close(found)


def test_rapl_without_dram_keeps_the_packages_and_estimates_ram(no_gpu_driver, rapl_root):
    add_zone(rapl_root, "intel-rapl:0", "package-0")
    found = discover(["cpu", "ram"])
    assert [d.name for d in found.domains] == ["cpu:package-0", "ram"]
    assert found.fallbacks[-1].startswith("RAPL has no dram zone; RAM estimate")
    _close(found)


def test_unreadable_rapl_falls_back_to_the_estimate_with_the_permission_reason(
    monkeypatch, no_gpu_driver, rapl_root
):
    two_socket_server(rapl_root)

    def root_only(path):
        if path.name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(path))
        return path.read_text()

    monkeypatch.setattr(rapl, "read_sysfs", root_only)
    found = discover(["cpu"])
    assert [d.name for d in found.domains] == ["cpu"]
    assert "CVE-2020-8694" in found.fallbacks[0]
    _close(found)


def test_asking_for_one_gpu_meters_and_reads_only_that_gpu(two_gpus, rapl_root):
    two_socket_server(rapl_root)
    found = discover(["gpu:1"])
    assert [d.name for d in found.domains] == ["gpu:1"]
    (source,) = found.sources
    assert [r.domain for r in source.read()] == ["gpu:1"]
    _close(found)
    assert two_gpus.initialised == 0  # closing the filtered source shut NVML down


def test_asking_for_cpu_and_ram_does_not_touch_nvml(two_gpus, rapl_root):
    two_socket_server(rapl_root)
    found = discover(["cpu", "ram"])
    assert [d.name for d in found.domains] == ["cpu:package-0", "cpu:package-1", "dram:0", "dram:1"]
    assert two_gpus.initialised == 0
    _close(found)


def test_a_replay_trace_is_the_only_source(two_gpus, rapl_root, tmp_path):
    two_socket_server(rapl_root)
    trace = tmp_path / "trace.csv"
    trace.write_text("t_s,domain,power_w\n0,gpu:0,100\n1,gpu:0,120\n")
    found = discover(replay=trace)
    assert [(d.name, d.provenance) for d in found.domains] == [("gpu:0", Provenance.REPLAYED)]
    assert [s.name for s in found.sources] == ["replay"]
    _close(found)


def test_a_malformed_replay_trace_raises_instead_of_metering_something_else(tmp_path):
    trace = tmp_path / "trace.csv"
    trace.write_text("t_s,domain\n0,gpu:0\n")
    with pytest.raises(ReplayTraceError):
        discover(replay=trace)


def test_statuses_cover_every_source_with_reason_and_fix_when_unavailable(no_gpu_driver, no_rapl):
    by_source = {s.source: s for s in statuses()}
    assert list(by_source) == ["nvml", "amdsmi", "intel-gpu", "hl-smi", "jetson", "apple", "rapl",
                               "cpu-estimate", "ram-estimate"]
    for name in ("nvml", "rapl"):
        assert not by_source[name].available
        assert by_source[name].reason and by_source[name].fix
    assert by_source["cpu-estimate"].available and by_source["ram-estimate"].available
    assert no_gpu_driver.initialised == 0


def test_host_info_lists_this_machine_and_the_gpus_nvml_reads(two_gpus):
    info = host_info()
    assert set(info) >= {"hostname", "os", "python", "cpu_model", "logical_cpus", "ram_gb", "gpus"}
    assert info["logical_cpus"] >= 1 and info["ram_gb"] > 0
    assert info["gpus"] == ["NVIDIA A100-SXM4-40GB", "NVIDIA H100"]
    assert two_gpus.initialised == 0


def test_host_info_without_a_gpu_driver_lists_no_gpus(no_gpu_driver):
    assert host_info()["gpus"] == []


def test_a_source_that_raises_unexpectedly_is_a_recorded_fallback_not_a_crash(
    monkeypatch, no_gpu_driver, no_rapl
):
    # e.g. an old nvidia-ml-py lacking a constant: AttributeError while opening
    import joulemeter.meter.sources.nvml as nvml

    def broken(self):
        raise AttributeError("module 'pynvml' has no attribute 'NVML_VALUE_TYPE_UNSIGNED_SHORT'")

    monkeypatch.setattr(nvml.NvmlSource, "open", broken)
    found = discover()
    assert [d.name for d in found.domains] == ["cpu", "ram"]
    assert any("NVML unavailable: unexpected AttributeError" in note for note in found.fallbacks)
    nvml_status = next(s for s in statuses() if s.source == "nvml")
    assert not nvml_status.available and "AttributeError" in nvml_status.reason
    _close(found)


def test_a_gpu_nvml_refuses_is_named_in_fallbacks_and_statuses_while_the_other_is_metered(
    monkeypatch, no_rapl
):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    install(monkeypatch, FakeNvml([
        FakeGpu(uuid="GPU-0", pci_bus_id="00000000:07:00.0"),
        FakeGpu(uuid="GPU-1", pci_bus_id="00000000:08:00.0", refuses=4),  # NO_PERMISSION
    ]))
    found = discover(["gpu"])
    assert [d.name for d in found.domains] == ["gpu:0"]
    assert any("gpu:1" in n and "Insufficient Permissions" in n for n in found.fallbacks)
    rows = [(s.available, s.reason) for s in statuses() if s.source == "nvml"]
    assert rows[0][0] is True and rows[1][0] is False and "gpu:1" in rows[1][1]
    _close(found)


def test_a_grace_hopper_module_reading_is_not_topped_up_with_a_cpu_or_ram_estimate(monkeypatch, no_rapl):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    install(monkeypatch, FakeNvml([FakeGpu(name="NVIDIA GH200 480GB", arch=9, gpu_scope=False)]))
    found = discover()
    assert [d.name for d in found.domains] == ["gpu:0"]
    assert sum("already include it" in n for n in found.fallbacks) == 2  # CPU and RAM
    _close(found)


def test_a_rank_filtered_to_one_gpu_reads_only_that_gpu(monkeypatch, no_rapl):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    fake = install(monkeypatch, FakeNvml([
        FakeGpu(uuid=f"GPU-{i}", pci_bus_id=f"00000000:0{i}:00.0", arch=4) for i in range(2)
    ]))
    found = discover(["gpu:1"])
    before = [g.calls for g in fake.gpus]
    (source,) = found.sources
    assert [r.domain for r in source.read()] == ["gpu:1"]
    assert fake.gpus[0].calls == before[0]
    _close(found)
