"""Apple Silicon: CPU, GPU, Neural Engine (and DRAM) energy from the SoC's own accounting.

Two ways, best first:
- IOReport's "Energy Model" counters without root, through `zeus-apple-silicon` (the Zeus
  project's maintained binding, a Mac-only wheel, imported when opened): cumulative mJ for
  the CPU, GPU, ANE and DRAM (AppleEnergyMonitor.get_cumulative_energy, as zeus/device/soc/
  apple.py reads it);
- `powermetrics` (root only): `powermetrics --samplers cpu_power,gpu_power,ane_power -f plist
  -i <ms>` streams one plist per sample, separated by NUL bytes, whose `processor` dict holds
  cpu_energy / gpu_energy / ane_energy in mJ over the sample's `elapsed_ns` and
  cpu_power / gpu_power / ane_power in mW (powermetrics(1); keys as the plist shows them).
  The per-sample energies are summed into a counter that steps once per sample.

Both give Apple's own figures (the Energy Model is the SoC's accounting, as RAPL is
Intel's), so domains are `counter`; the Neural Engine is its own kind, "ane", metered with
the accelerators (discovery's "gpu" takes it, as "cpu" takes psys).
"""

from __future__ import annotations

import logging
import os
import platform
import plistlib
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from typing import IO, Any

from joulemeter.meter.errors import SourceUnavailable
from joulemeter.meter.run import Domain, Provenance
from joulemeter.meter.sources.base import MEASURED, Reading, Source, register_source
from joulemeter.meter.units import J_PER_MILLIJOULE, W_PER_MILLIWATT

log = logging.getLogger("joulemeter.sources.apple")

#: How often powermetrics samples (ms), and how long open waits for its first sample (s).
POWERMETRICS_INTERVAL_MS = 100
_FIRST_SAMPLE_S = 5.0
_NOTE = "Apple's Energy Model: the SoC's own energy accounting, not an external meter"
#: Domain of each part: (name, kind, device); the binding's field and powermetrics' key prefix.
_PARTS = {
    "cpu": ("cpu", "cpu", "Apple Silicon CPU", "cpu_total_mj"),
    "gpu": ("gpu:0", "gpu", "Apple Silicon GPU", "gpu_mj"),
    "ane": ("ane", "ane", "Apple Neural Engine", "ane_mj"),
    "dram": ("dram", "dram", "Apple Silicon DRAM", "dram_mj"),
}
_ROOT_FIX = ("pip install zeus-apple-silicon (joulemeter[apple]) to read IOReport without root, or run "
             "joulemeter as root (sudo) so it can start powermetrics")


def is_apple_silicon() -> bool:
    return sys.platform == "darwin" and platform.machine() == "arm64"


def is_root() -> bool:
    return os.geteuid() == 0


@dataclass(frozen=True)
class PowermetricsSample:
    """One powermetrics sample: its length and each part's energy (mJ) and power (mW)."""

    elapsed_s: float
    energy_mj: dict[str, float]
    power_mw: dict[str, float]


def parse_sample(data: bytes) -> PowermetricsSample:
    """One plist of `powermetrics -f plist`; ValueError if it is not one or lacks the processor dict."""
    try:
        sample = plistlib.loads(data.strip(b"\x00\n "))
    except Exception as exc:  # plistlib raises several kinds for garbled input
        raise ValueError(f"not a powermetrics plist: {exc}") from None
    processor = sample.get("processor") if isinstance(sample, dict) else None
    if not isinstance(processor, dict):
        raise ValueError("powermetrics plist without a processor dict (sampler cpu_power missing?)")
    elapsed_s = float(sample.get("elapsed_ns", 0)) / 1e9
    gpu = sample.get("gpu") if isinstance(sample.get("gpu"), dict) else {}
    energy, power = {}, {}
    for part in ("cpu", "gpu", "ane"):
        mw = processor.get(f"{part}_power", gpu.get(f"{part}_power") if part == "gpu" else None)
        mj = processor.get(f"{part}_energy", gpu.get(f"{part}_energy") if part == "gpu" else None)
        if mw is not None:
            power[part] = float(mw)
        if mj is None and mw is not None and elapsed_s > 0:
            mj = float(mw) * elapsed_s  # mW × s = mJ
        if mj is not None:
            energy[part] = float(mj)
    if not energy:
        raise ValueError("powermetrics plist with no CPU, GPU or ANE energy")
    return PowermetricsSample(elapsed_s, energy, power)


@register_source("gpu", "cpu", "ram", label="Apple Silicon", preference=MEASURED + 5)
class AppleSource(Source):
    """Apple Silicon's parts, read through IOReport (zeus-apple-silicon) or powermetrics.

    `powermetrics`: the command to start, run as given (e.g. with `sudo -n`); default: powermetrics on
    PATH, as root only. `interval_ms`: its sampling period.
    """

    name = "apple"

    def __init__(self, powermetrics: list[str] | None = None, interval_ms: int = POWERMETRICS_INTERVAL_MS) -> None:
        self.powermetrics = powermetrics
        self.interval_ms = interval_ms
        self._monitor: Any = None
        self._process: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._lock = threading.Lock()
        self._first = threading.Event()
        self._total_mj: dict[str, float] = {}
        self._power_mw: dict[str, float] = {}
        self._problem: str | None = None  # a bad sample, told once as a gap
        self._ended: str | None = None  # powermetrics stopped: every read is an error
        self._samples = 0
        self._bad = 0
        self._domains: dict[str, Domain] = {}

    def open(self) -> list[Domain]:
        if not is_apple_silicon():
            raise SourceUnavailable(self.name, "not a Mac with Apple Silicon", None, absent=True)
        try:
            import zeus_apple_silicon
        except ImportError:
            return self._open_powermetrics("zeus-apple-silicon is not installed")
        try:
            self._monitor = zeus_apple_silicon.AppleEnergyMonitor()
            metrics = self._monitor.get_cumulative_energy()
        except Exception as exc:  # RuntimeError when IOReport refuses
            self._monitor = None
            return self._open_powermetrics(f"zeus-apple-silicon cannot read IOReport: {exc}")
        parts = [p for p, (*_, attr) in _PARTS.items() if getattr(metrics, attr, None) is not None]
        if not parts:
            self._monitor = None
            return self._open_powermetrics("IOReport gave no CPU, GPU, ANE or DRAM energy")
        return self._make_domains(parts, "IOReport Energy Model counter via zeus-apple-silicon ({attr})")

    def read(self) -> list[Reading]:
        if self._monitor is not None:
            return self._read_ioreport()
        with self._lock:
            if self._ended is not None:
                return [Reading(d.name, error=self._ended) for d in self._domains.values()]
            if self._problem is not None:
                problem, self._problem = self._problem, None
                return [Reading(d.name, error=problem) for d in self._domains.values()]
            return [Reading(d.name, energy_j=self._total_mj.get(p, 0.0) * J_PER_MILLIJOULE,
                            power_w=self._power_mw[p] * W_PER_MILLIWATT if p in self._power_mw else None)
                    for p, d in self._domains.items()]

    def read_counters(self) -> list[Reading]:
        return [r for r in self.read() if r.energy_j is not None]

    def close(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.join(timeout=2.0)
        self._monitor = None

    def keep(self, names: set[str]) -> None:
        self._domains = {p: d for p, d in self._domains.items() if d.name in names}

    def synchronize(self) -> None:
        """Wait for queued MPS work where torch already runs it here; never imports torch."""
        mps = getattr(sys.modules.get("torch"), "mps", None)
        try:
            if mps is not None:
                mps.synchronize()
        except Exception as exc:
            log.debug("torch.mps cannot synchronise: %s", exc)

    def counter_update_s(self) -> dict[str, float]:
        if self._process is None:
            return {}
        return {d.name: self.interval_ms / 1000.0 for d in self._domains.values()}

    def details(self, t0_s: float) -> dict[str, dict[str, Any]]:
        way = "ioreport" if self._monitor is not None else "powermetrics"
        return {d.name: {"read_through": way, "samples": self._samples, "bad_samples": self._bad,
                         "ended": self._ended} for d in self._domains.values()}

    # -- IOReport ------------------------------------------------------------------
    def _read_ioreport(self) -> list[Reading]:
        try:
            metrics = self._monitor.get_cumulative_energy()
        except Exception as exc:
            return [Reading(d.name, error=f"IOReport read failed: {exc}") for d in self._domains.values()]
        readings = []
        for part, domain in self._domains.items():
            mj = getattr(metrics, _PARTS[part][3], None)
            readings.append(Reading(domain.name, energy_j=mj * J_PER_MILLIJOULE) if mj is not None
                            else Reading(domain.name, error=f"IOReport gave no {part} energy"))
        return readings

    # -- powermetrics ----------------------------------------------------------------
    def _open_powermetrics(self, why_not_ioreport: str) -> list[Domain]:
        command = self.powermetrics
        if command is None:
            executable = shutil.which("powermetrics") or "/usr/bin/powermetrics"
            command = [executable, "--samplers", "cpu_power,gpu_power,ane_power", "-f", "plist",
                       "-i", str(self.interval_ms)]
            if not is_root():
                raise SourceUnavailable(self.name, f"{why_not_ioreport}, and powermetrics needs root", _ROOT_FIX)
        try:
            self._process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        except OSError as exc:
            raise SourceUnavailable(self.name, f"{why_not_ioreport}, and powermetrics cannot start: {exc}",
                                    _ROOT_FIX) from None
        assert self._process.stdout is not None
        self._reader = threading.Thread(target=self._follow, args=(self._process.stdout,),
                                        name="joulemeter-powermetrics", daemon=True)
        self._reader.start()
        if not self._first.wait(_FIRST_SAMPLE_S) or not self._total_mj:
            ended = self._ended or f"no sample within {_FIRST_SAMPLE_S:.0f} s"
            self.close()
            raise SourceUnavailable(self.name, f"powermetrics gave no usable sample: {ended}", _ROOT_FIX)
        with self._lock:
            parts = [p for p in _PARTS if p in self._total_mj]
        return self._make_domains(parts, "powermetrics {key} per sample, summed")

    def _follow(self, stream: IO[bytes]) -> None:
        """Read plists separated by NUL bytes until powermetrics ends; add each sample's energy."""
        buffer = b""
        while chunk := stream.read1(65536):  # type: ignore[attr-defined]
            buffer += chunk
            *whole, buffer = buffer.split(b"\x00")
            for data in whole:
                if data.strip():
                    self._add(data)
        if buffer.strip():
            self._add(buffer)
        process = self._process
        code = process.wait() if process is not None else None
        with self._lock:
            self._ended = f"powermetrics ended (exit code {code}); the rest of the run is not metered"
        self._first.set()

    def _add(self, data: bytes) -> None:
        try:
            sample = parse_sample(data)
        except ValueError as exc:
            log.warning("powermetrics: %s", exc)
            with self._lock:
                self._bad += 1
                self._problem = f"a powermetrics sample was unreadable ({exc}): its energy is missing"
            return
        with self._lock:
            self._samples += 1
            for part, mj in sample.energy_mj.items():
                self._total_mj[part] = self._total_mj.get(part, 0.0) + mj
            self._power_mw.update(sample.power_mw)
        self._first.set()

    def _make_domains(self, parts: list[str], method: str) -> list[Domain]:
        self._domains = {}
        for part in parts:
            name, kind, device, attr = _PARTS[part]
            self._domains[part] = Domain(
                name=name, kind=kind, device=device, provenance=Provenance.COUNTER,
                method=method.format(attr=attr, key=f"{part}_energy"), note=_NOTE,
                vendor="apple" if kind in ("gpu", "ane") else None,
            )
        return list(self._domains.values())
