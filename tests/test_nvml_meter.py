"""EnergyMeter with the NVML source: device sync at run and window edges, what the source
learnt kept in the run, the measured counter period in the short-window note.

Needs the meter.py change that calls Source.synchronize/details/counter_update_s.
"""

from __future__ import annotations

import sys
import types

import pytest

from joulemeter.meter import EnergyMeter
from tests.fakes.fake_pynvml import FakeGpu, FakeNvml, RealClock, install
from tests.polling import wait_until


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return install(monkeypatch, FakeNvml([FakeGpu(counter_period_s=0.05)], clock=RealClock()))


@pytest.fixture
def fake_torch(monkeypatch):
    """A torch whose CUDA runs here; records each device synchronised, in order."""
    synced: list[int] = []
    cuda = types.SimpleNamespace(is_initialized=lambda: True, device_count=lambda: 1,
                                 synchronize=synced.append,
                                 get_device_properties=lambda i: types.SimpleNamespace(uuid="00000000-0000-0000-0000-000000000000"))
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda))
    return synced


def test_the_metered_gpus_are_synchronised_at_start_stop_and_every_window_edge(fake, fake_torch):
    with EnergyMeter("sync", devices=["gpu"], store=False) as m:
        assert fake_torch == [0]  # run start
        with m.window("step"):
            assert fake_torch == [0, 0]
        assert fake_torch == [0, 0, 0]
    assert fake_torch == [0, 0, 0, 0]  # run stop


def test_sync_devices_false_leaves_synchronising_to_the_caller(fake, fake_torch):
    with EnergyMeter("no-sync", devices=["gpu"], store=False, sync_devices=False) as m, m.window("step"):
        pass
    assert fake_torch == []


def test_the_run_keeps_each_gpus_identity_and_the_measured_counter_period(fake):
    with EnergyMeter("period", devices=["gpu"], store=False, interval_s=0.01) as m:
        wait_until(lambda: m._sources[0].counter_update_s(), "the counter period to be measured")
        with m.window("tiny"):
            pass
    gpu = m.run.metadata["devices"]["gpu:0"]
    assert gpu["uuid"] == fake.gpus[0].uuid and gpu["counter_update_s"] == pytest.approx(0.05, rel=0.3)
    assert gpu["power_methods"][0]["method"] == "NVML_FI_DEV_POWER_INSTANT"
    (tiny,) = m.run.windows
    assert "update period (measured)" in tiny.note


def test_work_queued_before_stop_is_counted_because_stop_synchronises_first(fake, monkeypatch):
    # The fake GPU "runs" queued work at 300 W until synchronised: the energy drawn up to
    # the sync belongs to the run, so stop must sync before its last reading.
    gpu = fake.gpus[0]
    done = []

    def synchronize(index):
        wait_until(lambda: fake.clock.t_s > started + 0.3, "the queued work to run")
        fake.set_power(gpu, 100.0)
        done.append(fake.clock.t_s)

    cuda = types.SimpleNamespace(is_initialized=lambda: True, device_count=lambda: 1, synchronize=synchronize,
                                 get_device_properties=lambda i: types.SimpleNamespace(uuid=gpu.uuid[4:]))
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda))
    started = fake.clock.t_s
    with EnergyMeter("queued", devices=["gpu"], store=False, interval_s=0.01) as m:
        done.clear()  # the start's sync
        started = fake.clock.t_s
        fake.set_power(gpu, 300.0)  # work queued, running asynchronously
    assert done and m.run.energy["gpu:0"].energy_j >= 300.0 * 0.3 * 0.8
