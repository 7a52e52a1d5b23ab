"""Recorded `powermetrics -f plist` samples and a fake powermetrics that streams them; a fake
zeus_apple_silicon.

The samples are constructed from the documented format (powermetrics(1): -f plist, samplers
cpu_power, gpu_power, ane_power; one plist per sample, NUL-separated) with the keys its
plists carry on Apple Silicon (elapsed_ns, hw_model, processor.{cpu,gpu,ane}_{energy,power},
combined_power, gpu.freq_hz/idle_ratio): they were not captured from a machine.
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass
from pathlib import Path

SAMPLE = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
<key>is_delta</key><true/>
<key>elapsed_ns</key><integer>{elapsed_ns}</integer>
<key>hw_model</key><string>Mac14,6</string>
<key>kern_osversion</key><string>23E224</string>
<key>timestamp</key><date>2026-11-30T10:00:00Z</date>
<key>processor</key>
<dict>
<key>clusters</key>
<array>
<dict><key>name</key><string>E-Cluster</string><key>freq_hz</key><real>1212000000</real><key>idle_ratio</key><real>0.61</real></dict>
<dict><key>name</key><string>P0-Cluster</string><key>freq_hz</key><real>3204000000</real><key>idle_ratio</key><real>0.12</real></dict>
</array>
<key>ane_energy</key><integer>{ane_mj}</integer>
<key>ane_power</key><real>{ane_mw}</real>
<key>cpu_energy</key><integer>{cpu_mj}</integer>
<key>cpu_power</key><real>{cpu_mw}</real>
<key>gpu_energy</key><integer>{gpu_mj}</integer>
<key>gpu_power</key><real>{gpu_mw}</real>
<key>combined_power</key><real>{combined_mw}</real>
</dict>
<key>gpu</key>
<dict>
<key>freq_hz</key><real>1398000000</real>
<key>idle_ratio</key><real>0.05</real>
<key>gpu_energy</key><integer>{gpu_mj}</integer>
</dict>
</dict>
</plist>
"""


def sample(cpu_mw: float = 4000.0, gpu_mw: float = 20000.0, ane_mw: float = 500.0, elapsed_ns: int = 100_000_000) -> str:
    """One sample's plist text; energies (mJ) are power × elapsed, as powermetrics reports them."""
    s = elapsed_ns / 1e9
    return SAMPLE.format(elapsed_ns=elapsed_ns, cpu_mw=cpu_mw, gpu_mw=gpu_mw, ane_mw=ane_mw,
                         cpu_mj=round(cpu_mw * s), gpu_mj=round(gpu_mw * s), ane_mj=round(ane_mw * s),
                         combined_mw=cpu_mw + gpu_mw + ane_mw)


SCRIPT = """#!{python}
import sys, time
data = open({data!r}, "rb").read()
sys.stdout.buffer.write(data)
sys.stdout.buffer.flush()
if {linger}:
    time.sleep(60)
sys.exit({exit_code})
"""


def fake_powermetrics(folder: Path, samples: list[str], linger: bool = True, exit_code: int = 0) -> list[str]:
    """A script writing `samples` NUL-separated, then waiting to be stopped (or exiting); its command."""
    data = folder / "powermetrics.out"
    data.write_bytes(b"\x00".join(s.encode() for s in samples) + b"\x00")
    script = folder / "powermetrics"
    script.write_text(SCRIPT.format(python=sys.executable, data=str(data), linger=linger, exit_code=exit_code))
    script.chmod(0o755)
    return [str(script)]


@dataclass
class AppleEnergyMetrics:
    """Cumulative mJ per part, the fields zeus_apple_silicon.AppleEnergyMetrics has (None: absent)."""

    cpu_total_mj: int | None = 0
    gpu_mj: int | None = 0
    ane_mj: int | None = 0
    dram_mj: int | None = 0
    gpu_sram_mj: int | None = 0


def fake_zeus_apple_silicon(metrics: AppleEnergyMetrics, error: Exception | None = None) -> types.ModuleType:
    """A zeus_apple_silicon whose monitor returns `metrics` (mutable by the test), or fails with `error`."""
    module = types.ModuleType("zeus_apple_silicon")

    class AppleEnergyMonitor:
        def __init__(self) -> None:
            if error is not None:
                raise error

        def get_cumulative_energy(self) -> AppleEnergyMetrics:
            return AppleEnergyMetrics(**vars(metrics))

    module.AppleEnergyMonitor = AppleEnergyMonitor  # type: ignore[attr-defined]
    module.AppleEnergyMetrics = AppleEnergyMetrics  # type: ignore[attr-defined]
    return module
