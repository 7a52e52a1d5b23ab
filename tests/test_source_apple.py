"""The Apple Silicon source: recorded powermetrics plists, a fake powermetrics, a fake zeus-apple-silicon."""

from __future__ import annotations

import sys

import pytest

import joulemeter.meter.sources.apple as apple
from joulemeter.meter.errors import SourceUnavailable
from joulemeter.meter.run import Provenance
from joulemeter.meter.sources.apple import AppleSource, parse_sample
from tests.fakes.powermetrics import (
    AppleEnergyMetrics,
    fake_powermetrics,
    fake_zeus_apple_silicon,
    sample,
)
from tests.polling import wait_until


@pytest.fixture
def mac(monkeypatch):
    """This machine passes for Apple Silicon; no zeus-apple-silicon unless a test installs one."""
    monkeypatch.setattr(apple, "is_apple_silicon", lambda: True)
    monkeypatch.setitem(sys.modules, "zeus_apple_silicon", None)


def test_a_recorded_sample_parses_to_millijoules_and_milliwatts_per_part():
    parsed = parse_sample(sample(cpu_mw=4000.0, gpu_mw=20000.0, ane_mw=500.0).encode())
    assert parsed.elapsed_s == pytest.approx(0.1)
    assert parsed.energy_mj == {"cpu": 400.0, "gpu": 2000.0, "ane": 50.0}
    assert parsed.power_mw == {"cpu": 4000.0, "gpu": 20000.0, "ane": 500.0}


def test_a_sample_without_energy_keys_takes_power_times_elapsed():
    text = sample(cpu_mw=1000.0, elapsed_ns=200_000_000)
    for key in ("cpu_energy", "gpu_energy", "ane_energy"):
        start = text.index(f"<key>{key}</key>")
        text = text[:start] + text[text.index("\n", start) + 1:]
    assert parse_sample(text.encode()).energy_mj["cpu"] == pytest.approx(200.0)


@pytest.mark.parametrize("data", [b"garbage", b"<plist version='1.0'><dict></dict></plist>"])
def test_a_garbled_or_empty_plist_is_a_value_error(data):
    with pytest.raises(ValueError):
        parse_sample(data)


def test_off_apple_silicon_the_source_says_so(monkeypatch):
    monkeypatch.setattr(apple, "is_apple_silicon", lambda: False)
    (status,) = AppleSource().statuses()
    assert not status.available and status.reason == "not a Mac with Apple Silicon"


def test_without_the_binding_and_without_root_it_says_how_to_read(mac, monkeypatch):
    monkeypatch.setattr(apple, "is_root", lambda: False)
    (status,) = AppleSource().statuses()
    assert "zeus-apple-silicon is not installed" in status.reason and "needs root" in status.reason
    assert "pip install zeus-apple-silicon" in status.fix and "sudo" in status.fix


def test_powermetrics_samples_are_summed_into_counters_per_part(mac, tmp_path):
    command = fake_powermetrics(tmp_path, [sample(gpu_mw=20000.0), sample(gpu_mw=30000.0)])
    source = AppleSource(powermetrics=command)
    try:
        domains = source.open()
        assert [(d.name, d.kind, d.vendor, d.provenance) for d in domains] == [
            ("cpu", "cpu", None, Provenance.COUNTER),
            ("gpu:0", "gpu", "apple", Provenance.COUNTER),
            ("ane", "ane", "apple", Provenance.COUNTER),
        ]
        wait_until(lambda: source.details(0.0)["cpu"]["samples"] == 2, "both samples to be read")
        by_name = {r.domain: r for r in source.read()}
        assert by_name["gpu:0"].energy_j == pytest.approx(2.0 + 3.0)  # 2000 mJ + 3000 mJ
        assert by_name["gpu:0"].power_w == pytest.approx(30.0)
        assert by_name["cpu"].energy_j == pytest.approx(0.8)
        assert source.counter_update_s()["gpu:0"] == pytest.approx(0.1)
    finally:
        source.close()


def test_an_unreadable_sample_is_told_once_as_an_error_then_reading_goes_on(mac, tmp_path):
    command = fake_powermetrics(tmp_path, [sample(), "<plist>broken", sample()])
    source = AppleSource(powermetrics=command)
    try:
        source.open()
        wait_until(lambda: source.details(0.0)["cpu"]["samples"] == 2, "the good samples to be read")
        assert all("unreadable" in r.error for r in source.read())
        assert all(r.error is None for r in source.read())
        assert source.details(0.0)["gpu:0"]["bad_samples"] == 1
    finally:
        source.close()


def test_powermetrics_ending_mid_run_makes_every_read_an_error(mac, tmp_path):
    source = AppleSource(powermetrics=fake_powermetrics(tmp_path, [sample()], linger=False, exit_code=1))
    try:
        source.open()
        wait_until(lambda: source.details(0.0)["cpu"]["ended"], "powermetrics to end")
        assert all("exit code 1" in r.error for r in source.read())
    finally:
        source.close()


def test_powermetrics_that_never_samples_is_unavailable(mac, tmp_path):
    with pytest.raises(SourceUnavailable, match="no usable sample"):
        AppleSource(powermetrics=fake_powermetrics(tmp_path, [], linger=False)).open()


def test_the_binding_reads_ioreport_counters_without_root_including_dram(mac, monkeypatch):
    metrics = AppleEnergyMetrics(cpu_total_mj=1000, gpu_mj=5000, ane_mj=None, dram_mj=700)
    monkeypatch.setitem(sys.modules, "zeus_apple_silicon", fake_zeus_apple_silicon(metrics))
    monkeypatch.setattr(apple, "is_root", lambda: False)
    source = AppleSource()
    domains = source.open()
    assert [(d.name, d.kind) for d in domains] == [("cpu", "cpu"), ("gpu:0", "gpu"), ("dram", "dram")]
    assert "zeus-apple-silicon (gpu_mj)" in domains[1].method
    metrics.gpu_mj = 7500
    by_name = {r.domain: r.energy_j for r in source.read()}
    assert by_name == {"cpu": 1.0, "gpu:0": 7.5, "dram": pytest.approx(0.7)}
    assert source.details(0.0)["gpu:0"]["read_through"] == "ioreport"


def test_a_binding_that_cannot_read_ioreport_falls_to_powermetrics_and_says_both_reasons(mac, monkeypatch):
    broken = fake_zeus_apple_silicon(AppleEnergyMetrics(), error=RuntimeError("IOReport channel missing"))
    monkeypatch.setitem(sys.modules, "zeus_apple_silicon", broken)
    monkeypatch.setattr(apple, "is_root", lambda: False)
    with pytest.raises(SourceUnavailable) as info:
        AppleSource().open()
    assert "IOReport channel missing" in info.value.reason and "needs root" in info.value.reason


def test_discovery_meters_the_neural_engine_with_the_gpu_and_alone_when_asked(mac, monkeypatch, tmp_path):
    from joulemeter.meter.sources import discover
    from tests.fakes.fake_pynvml import FakeNvml, install

    install(monkeypatch, FakeNvml([], library_missing=True))
    monkeypatch.setattr(apple, "is_root", lambda: True)
    fake_powermetrics(tmp_path, [sample(), sample()])  # found on PATH as "powermetrics"
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    for devices, names, method in ((["gpu"], ["gpu:0", "ane"], "gpu_energy"), (["ane"], ["ane"], "ane_energy")):
        found = discover(devices)
        try:
            assert [d.name for d in found.domains] == names
            assert found.fallbacks[0].startswith("NVML unavailable") and f"powermetrics {method}" in found.fallbacks[0]
        finally:
            for source in found.sources:
                source.close()
