"""The Gaudi source, against a fake hl-smi on PATH (tests/fakes/fake_hl_smi.py)."""

from __future__ import annotations

import pytest

from joulemeter.meter.errors import SourceUnavailable
from joulemeter.meter.run import Provenance
from joulemeter.meter.sources.gaudi import GaudiSource
from tests.fakes.fake_hl_smi import FakeHlSmi, gaudi


@pytest.fixture
def hl_smi(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    monkeypatch.delenv("HABANA_VISIBLE_MODULES", raising=False)
    return FakeHlSmi(tmp_path, [gaudi(0, "98 W"), gaudi(1, "350 W")])


def test_each_gaudi_is_a_sampled_gpu_domain_with_its_power_in_watts(hl_smi):
    source = GaudiSource()
    domains = source.open()
    assert [(d.name, d.device, d.vendor, d.provenance) for d in domains] == [
        ("gpu:0", "Intel Gaudi HL-225", "habana", Provenance.SAMPLED),
        ("gpu:1", "Intel Gaudi HL-225", "habana", Provenance.SAMPLED),
    ]
    assert [r.power_w for r in source.read()] == [98.0, 350.0]
    hl_smi.state["devices"][0]["power.draw"] = "120"  # nounits
    hl_smi.save()
    assert source.read()[0].power_w == 120.0
    info = source.details(0.0)["gpu:1"]
    assert info["bus_id"] == "0000:1a:00.0" and info["hl_smi"]["calls"] == 3 and info["hl_smi"]["mean_s"] > 0


def test_habana_visible_modules_limits_the_devices(hl_smi, monkeypatch):
    monkeypatch.setenv("HABANA_VISIBLE_MODULES", "1")
    (domain,) = GaudiSource().open()
    assert domain.name == "gpu:0"


def test_without_hl_smi_the_source_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    (status,) = GaudiSource().statuses()
    assert not status.available and "hl-smi is not installed" in status.reason and "habanalabs" in status.fix


def test_hl_smi_that_fails_at_open_gives_its_message(hl_smi):
    hl_smi.state.update(exit_code=1, stderr="habanalabs driver not loaded")
    hl_smi.save()
    with pytest.raises(SourceUnavailable, match="driver not loaded"):
        GaudiSource().open()


def test_a_device_that_vanishes_or_reads_na_is_an_error_for_it_alone(hl_smi):
    source = GaudiSource()
    source.open()
    hl_smi.state["devices"] = [gaudi(1, "N/A")]
    hl_smi.save()
    lost, na = source.read()
    assert "no longer listed" in lost.error and "'N/A'" in na.error
    hl_smi.state.update(exit_code=3)
    hl_smi.save()
    assert all("exited with 3" in r.error for r in source.read())
    assert source.details(0.0)["gpu:0"]["lost"].startswith("device 0000:19:00.0")


def test_a_row_of_the_wrong_shape_is_an_error_in_the_readings_not_a_crash(hl_smi):
    source = GaudiSource()
    source.open()
    hl_smi.state["raw"] = "0, 98 W\n"
    hl_smi.save()
    assert all("a row of 2 fields, not 6" in r.error for r in source.read())
