"""Cheaper reads: /proc files kept open give what psutil gives, sources close what they
opened, and the vendors' per-GPU read loop is one helper (issue 17)."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass

import pytest

from joulemeter.meter.run import Domain, Provenance
from joulemeter.meter.sources.base import Reading, read_devices
from joulemeter.meter.sources.estimate import (
    CpuEstimate,
    ProcMeminfoUsed,
    ProcStatCpuSeconds,
    RamEstimate,
    machine_cpu_seconds,
    machine_ram_used_bytes,
)

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux's")


@linux
def test_proc_stat_kept_open_gives_the_cpu_seconds_psutil_gives():
    reader = ProcStatCpuSeconds()
    try:
        before = machine_cpu_seconds()
        busy, total = reader()
        after = machine_cpu_seconds()
    finally:
        reader.close()
    assert before[0] - 1e-6 <= busy <= after[0] + 1e-6
    assert before[1] - 1e-6 <= total <= after[1] + 1e-6


@linux
def test_proc_meminfo_kept_open_gives_the_memory_in_use_psutil_gives():
    reader = ProcMeminfoUsed()
    try:
        used = reader()
    finally:
        reader.close()
    assert used == pytest.approx(machine_ram_used_bytes(), rel=0.05)  # memory moves between the reads


@linux
def test_a_proc_file_is_read_again_from_its_start_not_where_the_last_read_ended():
    reader = ProcStatCpuSeconds()
    try:
        first, second = reader(), reader()
    finally:
        reader.close()
    assert second[1] >= first[1] > 0


@linux
def test_a_closed_source_closes_its_proc_file_and_a_reopened_one_reads_again():
    cpu, ram = CpuEstimate(), RamEstimate()
    for _ in range(2):
        cpu.open()
        ram.open()
        assert cpu.read()[0].error is None and ram.read()[0].error is None
        opened = (cpu._opened, ram._opened)
        cpu.close()
        ram.close()
        for proc_file in opened:
            with pytest.raises(OSError):
                proc_file.head()  # type: ignore[union-attr]


def test_a_source_given_its_reader_keeps_it_across_close_and_open():
    def reader() -> tuple[float, float]:
        return 10.0, 20.0

    cpu = CpuEstimate(cpu_seconds=reader, logical_cpus=2)
    cpu.open()
    cpu.close()
    cpu.open()
    assert cpu._cpu_seconds is reader
    cpu.close()


@dataclass
class _Device:
    domain: Domain
    fails: bool = False
    bridged: bool = False


def test_a_device_whose_read_raises_gets_an_error_reading_while_the_others_read(caplog):
    devices = [_Device(Domain(f"gpu:{i}", "gpu", "test", Provenance.COUNTER, "test")) for i in range(3)]
    devices[1].fails = True
    devices[2].bridged = True

    def read_one(device: _Device, now: float) -> Reading | None:
        if device.fails:
            raise RuntimeError("driver surprise")
        return None if device.bridged else Reading(device.domain.name, energy_j=now)

    readings = read_devices(devices, 5.0, read_one, logging.getLogger("joulemeter.test"))
    assert readings[0] == Reading("gpu:0", energy_j=5.0)
    assert readings[1].domain == "gpu:1" and "driver surprise" in (readings[1].error or "")
    assert len(readings) == 2  # the bridged one gives none
    assert "gpu:1" in caplog.text
