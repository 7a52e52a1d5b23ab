"""NVML's energy counter read at window edges (issue 17)."""

from __future__ import annotations

import pytest

from joulemeter.meter.sources.nvml import NvmlSource
from tests.fakes.fake_pynvml import FakeGpu, FakeNvml, RealClock, install


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return install(monkeypatch, FakeNvml([FakeGpu(counter_period_s=0.05), FakeGpu(counter_period_s=0.05)],
                                         clock=RealClock()))


def test_the_counters_alone_are_read_for_an_edge_one_reading_per_counter_gpu(fake):
    source = NvmlSource()
    domains = source.open()
    try:
        tick = {r.domain: r.energy_j for r in source.read()}
        edge = source.read_counters()
    finally:
        source.close()
    assert [r.domain for r in edge] == [d.name for d in domains]
    assert all(r.power_w is None and r.energy_j is not None and r.energy_j >= tick[r.domain] for r in edge)
