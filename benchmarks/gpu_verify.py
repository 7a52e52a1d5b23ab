"""Does joulemeter meter an NVIDIA GPU right? One script, a verdict per check, under 5 minutes.

    python benchmarks/gpu_verify.py --out docs/gpu_verify.json      # on a machine with a GPU
    python benchmarks/gpu_verify.py --fake --quick --out /tmp/v.json  # against the test double

Writes JSON (versions, GPU identity, every measurement, every check with passed/detail)
and exits 1 if any check failed (2: no NVIDIA GPU and not --fake). Reads only: it never
changes clocks, power limits or MIG mode. `--fake` (or JOULEMETER_FAKE_NVML=1) puts the
faithful double (tests/fakes/fake_pynvml) in place of pynvml and a stand-in for torch's
CUDA whose queued work runs until synchronised, so the script's own logic is tested.

Checks: discovery (one gpu domain per visible GPU, counter provenance, method named);
power probes (instant/average at GPU and module scope) and NVML call latency; the
counter's update period; a step load (idle, load, idle) logged as instant, averaged and
counter-derived power; a window against direct counter reads around the same synchronised
work (within 2 %); windows of 0.05, 0.2, 1 and 5 s against power × time and the
short-window note; work queued without sync counted at window end and at run stop;
device selection by index, UUID and UUID prefix in subprocesses; overhead against an
unmetered loop and against Zeus where it is installed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: make `benchmarks` and `tests` importable
    sys.path.insert(0, str(REPO))

NO_GPU_STATUS = 2
#: The fake machine: two boards (so selection by index, UUID and prefix tell them apart).
FAKE_UUIDS = ("GPU-5a1e0000-0000-4000-8000-000000000000", "GPU-5b2f0000-0000-4000-8000-000000000001")
FAKE_IDLE_W, FAKE_LOAD_W = 70.0, 450.0


# -- the two backends: real torch CUDA, or the faithful double --------------------------------
class Backend:
    """A GPU to load: `busy` runs work for `seconds` synchronously; `enqueue` queues it and returns."""

    name = "real"

    def __init__(self) -> None:
        import torch

        self.torch = torch
        self.a = torch.randn(8192, 8192, device="cuda:0", dtype=torch.float16)
        self.b = torch.randn_like(self.a)
        self.per_s = self._calibrate()

    def _calibrate(self) -> float:
        """Matmuls per second on cuda:0 (measured over ~1 s, after warm-up)."""
        for _ in range(5):
            self.a @ self.b
        self.torch.cuda.synchronize()
        n, start = 0, time.monotonic()
        while time.monotonic() - start < 1.0:
            for _ in range(10):
                self.a @ self.b
            self.torch.cuda.synchronize()
            n += 10
        return n / (time.monotonic() - start)

    def enqueue(self, seconds: float) -> None:
        for _ in range(max(int(self.per_s * seconds), 1)):
            self.a @ self.b

    def busy(self, seconds: float) -> None:
        self.enqueue(seconds)
        self.sync()

    def sync(self) -> None:
        self.torch.cuda.synchronize()

    def versions(self) -> dict[str, Any]:
        return {"torch": self.torch.__version__, "cuda": self.torch.version.cuda}


class FakeBackend(Backend):
    """The double: queued work draws FAKE_LOAD_W until it is done or synchronised."""

    name = "fake"

    def __init__(self, fake: Any) -> None:
        self.fake, self.gpu = fake, fake.gpus[0]
        self.until_s = 0.0
        self.per_s = 1.0

    def enqueue(self, seconds: float) -> None:
        self.until_s = max(self.until_s, self.fake.clock.t_s) + seconds
        self.fake.set_power(self.gpu, FAKE_LOAD_W)

    def sync(self) -> None:
        remaining = self.until_s - self.fake.clock.t_s
        if remaining > 0:
            time.sleep(remaining)  # the stand-in GPU is busy for exactly that long
        if self.gpu.power_w != FAKE_IDLE_W:
            self.fake.set_power(self.gpu, FAKE_IDLE_W)

    def versions(self) -> dict[str, Any]:
        return {"torch": None, "cuda": None, "fake": "tests/fakes/fake_pynvml"}


def install_fake(counter_period_s: float = 0.02) -> Any:
    """Put the faithful double in place of pynvml, and a torch stand-in whose CUDA runs here."""
    from joulemeter.meter.sources.cuda_devices import Board, map_devices
    from tests.fakes.fake_pynvml import ARCH, FakeGpu, FakeNvml, RealClock

    gpus = [FakeGpu(name="NVIDIA H200", uuid=uuid, pci_bus_id=f"00000000:{0x18 + i:02X}:00.0",
                    arch=ARCH["HOPPER"], power_w=FAKE_IDLE_W, counter_period_s=counter_period_s)
            for i, uuid in enumerate(FAKE_UUIDS)]
    fake = FakeNvml(gpus, clock=RealClock())
    sys.modules["pynvml"] = fake.module
    backend = FakeBackend(fake)
    boards = [Board(i, g.uuid, g.pci_bus_id, g.name) for i, g in enumerate(gpus)]
    seen, _ = map_devices(boards, os.environ.get("CUDA_VISIBLE_DEVICES"), "PCI_BUS_ID")
    cuda = types.SimpleNamespace(  # torch sees what CUDA_VISIBLE_DEVICES lets through
        is_initialized=lambda: True, device_count=lambda: len(seen),
        synchronize=lambda index=None: backend.sync(),
        get_device_properties=lambda i: types.SimpleNamespace(uuid=seen[i].board.uuid[4:]),
    )
    sys.modules["torch"] = types.SimpleNamespace(cuda=cuda, __version__="fake")
    return backend


# -- checks -------------------------------------------------------------------------------
class Verdicts:
    """Every check's verdict, in order, plus the measurements behind them."""

    def __init__(self) -> None:
        self.checks: list[dict[str, Any]] = []
        self.measured: dict[str, Any] = {}

    def check(self, name: str, passed: bool, detail: str) -> bool:
        self.checks.append({"name": name, "passed": bool(passed), "detail": detail})
        print(f"[{'PASS' if passed else 'FAIL'}] {name}: {detail}", flush=True)
        return passed

    def run(self, name: str, step: Callable[[], None]) -> None:
        """Run one step; an exception is its failed check, never the end of the script."""
        try:
            step()
        except Exception as exc:
            self.check(name, False, f"raised {type(exc).__name__}: {exc}")


def _identity(pynvml: Any) -> dict[str, Any]:
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    try:
        mig = pynvml.nvmlDeviceGetMigMode(handle)[0]
    except pynvml.NVMLError:
        mig = None
    driver = pynvml.nvmlSystemGetDriverVersion()
    return {
        "driver": driver.decode() if isinstance(driver, bytes) else driver,
        "gpu_count": pynvml.nvmlDeviceGetCount(),
        "name": str(pynvml.nvmlDeviceGetName(handle)),
        "uuid": str(pynvml.nvmlDeviceGetUUID(handle)),
        "mig_mode": mig,
    }


def check_discovery(v: Verdicts, visible: int) -> None:
    from joulemeter.meter.run import Provenance
    from joulemeter.meter.sources import discover

    found = discover(["gpu"])
    try:
        domains = [d for d in found.domains if d.kind == "gpu"]
        v.measured["domains"] = [d.to_dict() for d in domains]
        v.check("discovery: one gpu domain per visible GPU", len(domains) == visible,
                f"{len(domains)} domains for {visible} visible GPUs: {[d.name for d in domains]}")
        v.check("discovery: energy from the hardware counter",
                all(d.provenance is Provenance.COUNTER for d in domains),
                "; ".join(f"{d.name}: {d.provenance.value}" for d in domains))
        v.check("discovery: the method is named", all("NVML" in d.method for d in domains),
                "; ".join(d.method for d in domains))
    finally:
        for source in found.sources:
            source.close()


def check_probes(v: Verdicts, pynvml: Any, handle: Any) -> None:
    from joulemeter.meter.sources.nvml import _field_number

    probes: dict[str, Any] = {}
    for field_name in ("NVML_FI_DEV_POWER_INSTANT", "NVML_FI_DEV_POWER_AVERAGE"):
        for scope_name in ("NVML_POWER_SCOPE_GPU", "NVML_POWER_SCOPE_MODULE"):
            request = (getattr(pynvml, field_name), getattr(pynvml, scope_name))
            (entry,) = pynvml.nvmlDeviceGetFieldValues(handle, [request])
            probes[f"{field_name}@{scope_name}"] = (
                _field_number(entry) / 1e3 if entry.nvmlReturn == pynvml.NVML_SUCCESS
                else f"error {entry.nvmlReturn}"
            )
    probes["nvmlDeviceGetPowerUsage_w"] = pynvml.nvmlDeviceGetPowerUsage(handle) / 1e3
    latencies = []
    for _ in range(200):
        start = time.perf_counter()
        pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
        latencies.append(time.perf_counter() - start)
    probes["counter_call_latency_ms"] = {"median": statistics.median(latencies) * 1e3,
                                         "max": max(latencies) * 1e3}
    v.measured["power_probes"] = probes
    readable = [k for k, value in probes.items() if isinstance(value, float)]
    v.check("probes: some power reading answers", bool(readable), json.dumps(probes))


def check_update_period(v: Verdicts, pynvml: Any, handle: Any) -> float | None:
    from joulemeter.meter.sources.nvml import counter_update_period_s

    period = counter_update_period_s(pynvml, handle, deadline_s=3.0)
    v.measured["counter_update_s"] = period
    v.check("counter: update period measured", period is not None and 0.001 < period < 1.0,
            f"{period * 1000:.1f} ms" if period else "the counter did not move")
    return period


def check_step_load(v: Verdicts, pynvml: Any, handle: Any, backend: Backend, scale: float) -> None:
    """Idle, load, idle; instant, averaged and counter-derived power every 20 ms."""
    import threading

    log: list[tuple[float, float | None, float, float]] = []
    stop = threading.Event()

    def poll() -> None:
        from joulemeter.meter.sources.nvml import _field_number

        t0 = time.monotonic()
        while not stop.is_set():
            (entry,) = pynvml.nvmlDeviceGetFieldValues(handle, [pynvml.NVML_FI_DEV_POWER_INSTANT])
            instant = _field_number(entry) / 1e3 if entry.nvmlReturn == pynvml.NVML_SUCCESS else None
            log.append((time.monotonic() - t0, instant, pynvml.nvmlDeviceGetPowerUsage(handle) / 1e3,
                        pynvml.nvmlDeviceGetTotalEnergyConsumption(handle) / 1e3))
            stop.wait(0.02)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    phases = (2.0 * scale, 4.0 * scale, 2.0 * scale)
    time.sleep(phases[0])  # idle, by definition
    backend.busy(phases[1])
    time.sleep(phases[2])
    stop.set()
    thread.join()
    edges = (phases[0], phases[0] + phases[1])

    def counter_w(a: float, b: float) -> float:
        inside = [row for row in log if a <= row[0] <= b]
        return (inside[-1][3] - inside[0][3]) / (inside[-1][0] - inside[0][0]) if len(inside) > 1 else 0.0

    idle_w = counter_w(0.0, edges[0])
    load_w = counter_w(edges[0] + 0.2 * scale, edges[1])
    v.measured["step_load"] = {"phases_s": phases, "idle_counter_w": idle_w, "load_counter_w": load_w,
                               "log": [[round(x, 4) if x is not None else None for x in r] for r in log]}
    v.check("step load: the counter sees the load", load_w > 1.2 * idle_w,
            f"counter-derived power idle {idle_w:.1f} W, under load {load_w:.1f} W")


def check_window_vs_counter(v: Verdicts, pynvml: Any, handle: Any, backend: Backend, scale: float,
                            period_s: float | None) -> None:
    from joulemeter.meter import EnergyMeter

    with EnergyMeter("verify-window", devices=["gpu:0"], store=False, interval_s=0.02) as m:
        backend.sync()
        before = pynvml.nvmlDeviceGetTotalEnergyConsumption(handle) / 1e3
        with m.window("work") as window:
            backend.busy(6.0 * scale)
        after = pynvml.nvmlDeviceGetTotalEnergyConsumption(handle) / 1e3
    meter_j, direct_j = window.energy_j["gpu:0"], after - before
    error = abs(meter_j - direct_j) / direct_j if direct_j else float("inf")
    v.measured["window_vs_counter"] = {"meter_j": meter_j, "direct_j": direct_j, "relative_error": error,
                                       "counter_update_s": period_s}
    v.check("window energy matches a direct counter read (within 2 %)", error <= 0.02,
            f"joulemeter {meter_j:.1f} J, direct {direct_j:.1f} J, {error * 100:.2f} %")


def check_short_windows(v: Verdicts, backend: Backend, scale: float) -> None:
    from joulemeter.meter import EnergyMeter

    lengths = (0.05, 0.2, 1.0, 5.0 if scale >= 1 else 2.0)
    with EnergyMeter("verify-short", devices=["gpu:0"], store=False, interval_s=0.01) as m:
        backend.busy(0.5)  # warm: power has risen before the first window
        windows = []
        for length in lengths:
            with m.window(f"{length:g}s") as window:
                backend.busy(length)  # window edges synchronise, so the work is all inside
            windows.append(window)
    samples = [s for s in m.run.samples if s.domain == "gpu:0" and s.power_w is not None]
    rows = []
    for length, window in zip(lengths, windows):
        inside = [s.power_w for s in samples if window.start_s <= s.t_s <= window.end_s]
        expected = statistics.fmean(inside) * (window.end_s - window.start_s) if inside else None
        got = window.energy_j["gpu:0"]
        rows.append({"length_s": length, "energy_j": got, "power_x_time_j": expected, "note": window.note})
        if length >= 1.0 and expected:
            v.check(f"window {length:g} s: energy ≈ power × time (within 10 %)",
                    abs(got - expected) / expected <= 0.10, f"{got:.1f} J vs {expected:.1f} J")
    period = m.run.metadata.get("devices", {}).get("gpu:0", {}).get("counter_update_s") or 0.1
    right = [bool(r["note"]) == (w.end_s - w.start_s < period) for r, w in zip(rows, windows)]
    v.check("windows shorter than the counter period, and only they, carry the note", all(right),
            f"period {period * 1000:.0f} ms; notes: {[(r['length_s'], r['note']) for r in rows]}")
    v.measured["short_windows"] = rows


def check_queued_work(v: Verdicts, backend: Backend, scale: float) -> None:
    from joulemeter.meter import EnergyMeter

    work_s = 1.5 * scale
    with EnergyMeter("verify-queued", devices=["gpu:0"], store=False, interval_s=0.02) as m:
        with m.window("queued") as window:
            backend.enqueue(work_s)  # no sync: the meter must wait for it at the window end
        backend.enqueue(work_s)  # queued at run stop
    run_s = m.run.duration_s or 0.0
    v.measured["queued"] = {"work_s": work_s, "window_s": window.end_s - window.start_s, "run_s": run_s}
    v.check("work queued without sync is counted at window end",
            window.end_s - window.start_s >= 0.9 * work_s,
            f"window lasted {window.end_s - window.start_s:.2f} s for {work_s:.2f} s of queued work")
    v.check("work queued without sync is counted at run stop", run_s >= 1.9 * work_s,
            f"run lasted {run_s:.2f} s for {2 * work_s:.2f} s of queued work")


_SELECT = """
import json, os, sys
sys.path.insert(0, {repo!r})
if os.environ.get("JOULEMETER_FAKE_NVML"):
    from benchmarks.gpu_verify import install_fake
    install_fake()
    sys.modules.pop("torch")  # only CUDA_VISIBLE_DEVICES decides in these subprocesses
from joulemeter.meter.sources import discover
found = discover(["gpu"])
print(json.dumps({{k: d["uuid"] for s in found.sources for k, d in s.details(0.0).items()}}))
for s in found.sources:
    s.close()
"""


def check_selection(v: Verdicts, uuids: list[str], fake: bool) -> None:
    target = uuids[-1]
    cases = {"index": str(len(uuids) - 1), "UUID": target, "UUID prefix": target[:12]}
    env = dict(os.environ, CUDA_DEVICE_ORDER="PCI_BUS_ID", **({"JOULEMETER_FAKE_NVML": "1"} if fake else {}))
    for how, spec in cases.items():
        out = subprocess.run([sys.executable, "-c", _SELECT.format(repo=str(REPO))],
                             env=dict(env, CUDA_VISIBLE_DEVICES=spec), capture_output=True, text=True, timeout=120)
        got = json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 and out.stdout.strip() else None
        v.check(f"selection by {how} ({spec})", got == {"gpu:0": target},
                f"metered {got}" if got is not None else f"failed: {out.stderr.strip()[-300:]}")


def check_overhead(v: Verdicts, backend: Backend, scale: float) -> None:
    from joulemeter.meter import EnergyMeter

    def loop() -> float:
        start = time.perf_counter()
        backend.busy(3.0 * scale)
        return time.perf_counter() - start

    rounds = {"unmetered": [], "joulemeter": [], "zeus": []}
    try:
        from zeus.monitor import ZeusMonitor  # type: ignore[import-not-found]
    except ImportError:
        ZeusMonitor = None  # noqa: N806
    for _ in range(2):
        rounds["unmetered"].append(loop())
        with EnergyMeter("verify-overhead", devices=["gpu:0"], store=False):
            rounds["joulemeter"].append(loop())
        if ZeusMonitor is not None and backend.name == "real":
            monitor = ZeusMonitor(gpu_indices=[0])
            monitor.begin_window("loop")
            rounds["zeus"].append(loop())
            monitor.end_window("loop")
    base = min(rounds["unmetered"])
    slowdown = {k: min(t) / base - 1 for k, t in rounds.items() if t}
    v.measured["overhead"] = {"loop_s": rounds, "slowdown": slowdown,
                              "zeus": "measured" if rounds["zeus"] else "not installed here"}
    v.check("overhead: joulemeter slows the loop by under 5 %", slowdown["joulemeter"] < 0.05,
            ", ".join(f"{k} {s * 100:+.1f} %" for k, s in slowdown.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "gpu_verify.json")
    parser.add_argument("--fake", action="store_true", default=bool(os.environ.get("JOULEMETER_FAKE_NVML")),
                        help="verify against the test double (tests/fakes/fake_pynvml), no GPU needed")
    parser.add_argument("--quick", action="store_true", help="shorter loads (a tenth), for tests")
    args = parser.parse_args(argv)
    scale = 0.25 if args.quick else 1.0
    started = time.monotonic()
    if args.fake:
        backend: Backend = install_fake()
    else:
        try:
            import torch
        except ImportError:
            print("torch is not installed: no way to load the GPU", file=sys.stderr)
            return NO_GPU_STATUS
        if not torch.cuda.is_available():
            print("no CUDA GPU here", file=sys.stderr)
            return NO_GPU_STATUS
        backend = Backend()
    import pynvml

    v = Verdicts()
    pynvml.nvmlInit()
    try:
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        identity = _identity(pynvml)
        uuids = [str(pynvml.nvmlDeviceGetUUID(pynvml.nvmlDeviceGetHandleByIndex(i)))
                 for i in range(identity["gpu_count"])]
        visible = sys.modules["torch"].cuda.device_count()  # the CUDA devices this process has
        v.run("discovery", lambda: check_discovery(v, visible))
        v.run("probes", lambda: check_probes(v, pynvml, handle))
        period: list[float | None] = [None]
        v.run("update period", lambda: period.__setitem__(0, check_update_period(v, pynvml, handle)))
        v.run("step load", lambda: check_step_load(v, pynvml, handle, backend, scale))
        v.run("window vs counter", lambda: check_window_vs_counter(v, pynvml, handle, backend, scale, period[0]))
        v.run("short windows", lambda: check_short_windows(v, backend, scale))
        v.run("queued work", lambda: check_queued_work(v, backend, scale))
        v.run("selection", lambda: check_selection(v, uuids, args.fake))
        v.run("overhead", lambda: check_overhead(v, backend, scale))
    finally:
        pynvml.nvmlShutdown()
    failed = [c["name"] for c in v.checks if not c["passed"]]
    report = {
        "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "backend": backend.name,
        "versions": {"python": platform.python_version(), "nvidia-ml-py": _binding_version(args.fake),
                     **backend.versions()},
        "gpu": identity,
        "duration_s": round(time.monotonic() - started, 1),
        "checks": v.checks,
        "failed": failed,
        "measured": v.measured,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"{len(v.checks) - len(failed)}/{len(v.checks)} checks passed; written to {args.out}")
    return 1 if failed else 0


def _binding_version(fake: bool) -> str | None:
    if fake:
        return "fake (models 12.535.77)"
    from importlib.metadata import version

    return version("nvidia-ml-py")


if __name__ == "__main__":
    sys.exit(main())
