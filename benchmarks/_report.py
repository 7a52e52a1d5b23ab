"""The Markdown page of a benchmark run (docs/benchmarks.md), from run_all's results dict."""

from __future__ import annotations

from typing import Any

from benchmarks._stats import Spread
from benchmarks._worker import NO_TIMELINE
from benchmarks.overhead import VARIANTS

# issue 17's targets: at the default setting at most 0.5 % slower, a window under 5 µs,
# idle CPU no more than Zeus's, memory flat over time
TARGET_OVERHEAD_PCT = 0.5
TARGET_WINDOW_US = 5.0
TARGET_RENDER_S = 5.0
#: "flat": under 1 MiB of growth over the extrapolated 24 hours
TARGET_MEMORY_GROWTH_MIB_PER_DAY = 1.0


def _s(d: dict[str, Any]) -> Spread:
    return Spread(**d)


def _pct(d: dict[str, Any]) -> str:
    s = _s(d)
    return f"{s.median:+.2f} % (IQR {s.q1:+.2f} – {s.q3:+.2f})"


def _num(d: dict[str, Any], fmt: str = "{:.3g}") -> str:
    return _s(d).text(fmt)


def _met(ok: bool) -> str:
    return "yes" if ok else "**no**"


def _overhead(r: dict[str, Any]) -> list[str]:
    training, idle = r["training"], r["idle"]
    lines = [
        "## Overhead on a CPU training loop",
        "",
        f"A 3-layer MLP (256–512–512–10, batch 64, SGD) trained for {r['steps']} steps on one "
        "torch thread (`torch.set_num_threads(1)`). All variants run in one worker process "
        "(same memory layout and CPU placement), each creating and stopping its tool per "
        f"loop; every round runs all variants once in a shuffled order ({r['repeats']} "
        "rounds). joulemeter writes to a ledger as it does by default (from its writer thread: a flush to the "
        "run's journal every 1 s, a ledger write every 30 flushes; a trial shorter than that holds "
        "no ledger write, which the section on a tick's time gives amortized). "
        "Three views of the cost, because the machine is shared and wall time swings with "
        "other processes:",
        "",
        "- *Slowdown*: loop wall time over the unmetered loop's of the same round (median, IQR).",
        "- *Fastest*: the variant's fastest loop over the fastest unmetered loop, the runs "
        "least disturbed by other processes.",
        "- *CPU*: CPU time of the whole process during the loop (the training thread and the "
        "tool's threads) over the unmetered loop's, same round (median, IQR). It barely "
        "moves with other load, and on one core it is the slowdown.",
        "",
        "Start + stop: creating and starting the tool and stopping it (joulemeter also writes "
        f"its run to a ledger then). Idle CPU: the tool runs for {r['idle_s']} s while the "
        f"code sleeps ({r['idle_repeats']} rounds), counted from 0.5 s after the tool started, for "
        "every tool alike, once its one-off start-up work is done (joulemeter's thread that "
        "recovers other runs in the ledger, its first ledger write); process CPU time "
        "beyond the unmetered variant's, per second of run. joulemeter (no timeline) is "
        "`EnergyMeter(timeline=False)`: counters read at start, window edges and stop only, so "
        "it meters the devices with a counter (no RAM estimate).",
        "",
        "| Tool and setting | What it metered here | Loop time (s) | Slowdown | Fastest | CPU | "
        "Start + stop (ms) | Idle CPU (ms per s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for variant in VARIANTS:
        measured = r["measures"].get(variant, "")
        if variant in r["unavailable"]:
            lines.append(f"| {variant} | could not run here: `{r['unavailable'][variant]}` "
                         "| — | — | — | — | — | — |")
            continue
        t = training[variant]
        if variant == "unmetered":
            slowdown = fastest = cpu = "—"
        else:
            slowdown, cpu = _pct(t["overhead_pct"]), _pct(t["cpu_overhead_pct"])
            fastest = f"{t['fastest_overhead_pct']:+.2f} %"
        lines.append(
            f"| {variant} | {measured} | {_num(t['loop_s'])} | {slowdown} | {fastest} | {cpu} | "
            f"{_num(t['start_stop_ms'])} | {_num(idle[variant]['extra_cpu_ms_per_s'])} |"
        )
    lines += [
        "",
        "## Sampler cost",
        "",
        "CPU time of joulemeter's sampling thread alone (Linux schedstat of that thread) per "
        "second of an idle run, with the sources this machine has.",
        "",
        "| Sampling interval | Sampler thread CPU (ms per s of run) | Share of one core |",
        "|---|---|---|",
    ]
    labels = {"joulemeter": "default (adaptive: 1 s in a run's first seconds)", NO_TIMELINE: "none (timeline=False: edges only)"}
    for variant in ("joulemeter", "joulemeter@100ms", "joulemeter@10ms", NO_TIMELINE):
        entry = idle.get(variant, {}).get("sampler_thread_cpu_ms_per_s")
        if entry:
            share = _s(entry).median / 10
            label = labels.get(variant) or variant.split("@")[1]
            lines.append(f"| {label} | {_num(entry)} | {share:.2f} % |")
    return lines


def ledger_write_ms_per_s(sampling: dict[str, Any]) -> float | None:
    """The CPU of the writer's ledger writes, one every `ledger_flushes` flushes of 1 s, per
    second of run (ms), from the cold cost of one such write; None if it was not measured."""
    cold = sampling["parts"].get("cold_us_per_call", {})
    write = next((d for name, d in cold.items() if name.startswith("a ledger write")), None)
    return None if write is None else _s(write).median / 1000 / sampling["ledger_flushes"]


def _sampling(r: dict[str, Any]) -> list[str]:
    parts, threads = r["parts"], r["threads"]
    cold = parts.get("cold_us_per_call", {})
    amortized = ledger_write_ms_per_s(r)
    lines = [
        "## Where a tick's time goes",
        "",
        f"Sources found here: {', '.join(parts['sources'])} ({parts['processes']} processes "
        "running). CPU time of each part per call: warm, many calls in a row (a lower bound), "
        f"and cold, each call after a {parts.get('cold_gap_s', 0) * 1000:g} ms pause, as a tick "
        "comes after the thread slept:",
        "",
        "| Part | Warm CPU per call (µs) | Cold CPU per call (µs) |",
        "|---|---|---|",
        *[f"| {name} | {_num(d)} | {_num(cold[name]) if name in cold else '—'} |"
          for name, d in parts["us_per_call"].items()],
        "",
        "CPU of joulemeter's two threads per second of an idle run (schedstat of each thread; "
        "the writer flushes to the run's journal every second and writes to a SQLite ledger every "
        f"{r['ledger_flushes']} flushes, so the trials hold no ledger write: the last column adds "
        "them, amortized from the cold cost above):",
        "",
        "| Setting | Timeline interval | Sampler thread (ms per s) | Writer thread (ms per s) | "
        "Both, with ledger writes amortized (ms per s) |",
        "|---|---|---|---|---|",
    ]
    for label, t in threads.items():
        sampler = _num(t["sampler_ms_per_s"]) if t["sampler_ms_per_s"] else "—"
        writer = _num(t["writer_ms_per_s"]) if t["writer_ms_per_s"] else "—"
        both = "—"
        if t["sampler_ms_per_s"] and t["writer_ms_per_s"] and amortized is not None:
            both = f"{_s(t['sampler_ms_per_s']).median + _s(t['writer_ms_per_s']).median + amortized:.3g}"
        lines.append(f"| {label} | {t['interval_s']:g} s | {sampler} | {writer} | {both} |")
    lines += _long_idle(r.get("long_idle"))
    return lines


def long_idle_ms_per_s(entry: dict[str, Any] | None) -> float | None:
    """Both threads' CPU per second of a long idle run (ms), measured; None if not measured."""
    if not entry or entry["sampler_ms_per_s"] is None or entry["writer_ms_per_s"] is None:
        return None
    return entry["sampler_ms_per_s"] + entry["writer_ms_per_s"]


def _long_idle(entries: dict[str, Any] | None) -> list[str]:
    rows = []
    for label, entry in (entries or {}).items():
        both = long_idle_ms_per_s(entry)
        if both is None:
            continue
        if entry["timeline"]:
            setting = f"{label}: stretched to {entry['max_interval_s']:g} s ({entry['ramp_s']:.0f} s into the run)"
            counted = f"{entry['readings']} ticks"
        else:
            setting = f"{label}: heartbeats every {entry['heartbeat_s']:g} s (from {entry['ramp_s']:.0f} s into the run)"
            counted = f"{entry['readings']} counter reads"
        rows.append(f"| {setting} | {entry['measured_s']:.0f} | {counted}, {entry['ledger_writes']} | "
                    f"{entry['sampler_ms_per_s']:.3g} | {entry['writer_ms_per_s']:.3g} | {both:.3g} | {both / 10:.4f} % |")
    if not rows:
        return []
    return [
        "",
        "A long idle run: the default meter once its adaptive timeline had stretched to its longest "
        "interval, and a meter without a timeline once its first heartbeat had opened the run's "
        "journal (each heartbeat goes to the journal, and every 4th to the ledger too), each "
        "then left asleep. What fell in the span is counted and its CPU measured as it fell, not "
        "amortized:",
        "",
        "| Setting | Span (s) | Readings, ledger writes | Sampler thread (ms per s) | "
        "Writer thread (ms per s) | Both (ms per s) | Share of one core |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ]


def _memory(r: dict[str, Any]) -> list[str]:
    day_growth = r["rss_24h_extrapolated_mib"] - r["rss_end_mib"]
    return [
        "## Memory of a long run",
        "",
        f"{r['gpus']} simulated GPU counters plus this machine's {', '.join(d for d in r['domains'] if not d.startswith('gpu'))} "
        f"sources, ticking every {r['interval_s'] * 1000:g} ms with a flush to the journal every tick and "
        "a SQLite ledger write every 30 (the default run's 1 s and 30 s, sped up), "
        f"so that {r['ticks']:,.0f} ticks (a run of {r['ticks'] / 3600:.1f} h at the default 1 s "
        f"timeline) took {r['wall_s']:.0f} s (`python3 -m benchmarks.memory_growth {r['ticks']:.0f}` on its own). Resident memory of the "
        f"process, and its growth per tick from tick {r['fit_from_ticks']:,.0f} on (the timeline has filled "
        "twice by then and only thins and refills), extrapolated to the 86,400 ticks of 24 h:",
        "",
        "| Figure | Value |",
        "|---|---|",
        f"| RSS before the meter started | {r['rss_before_mib']:.1f} MiB |",
        f"| RSS after {r['ticks']:,.0f} ticks | {r['rss_end_mib']:.1f} MiB |",
        f"| Growth once the timeline filled | {r['rss_growth_mib_per_1000_ticks']:.3f} MiB per 1,000 ticks |",
        f"| RSS of a 24 h run, extrapolated | {r['rss_24h_extrapolated_mib']:.1f} MiB "
        f"(+{day_growth:.1f} MiB beyond the end of this run) |",
        f"| Samples held for the writer (most, once the timeline filled) | {r['held_samples_max_steady']:,} |",
        f"| Samples in the in-memory timeline at the end | {r['timeline_samples_end']:,} "
        "(at most 4,097 ticks: thinned evenly as the run grows) |",
        "",
        "Before issue 17 every sample stayed in memory: at the then default 100 ms, 360,000 "
        "samples an hour for such a run. The timeline holds numbers in arrays, not Sample objects "
        "(about 20 bytes a sample), and windows' edges hold nothing but the window.",
    ]


def _window(r: dict[str, Any]) -> list[str]:
    lines = [
        "## Window cost",
        "",
        "Entering and leaving one window, each tool in a fresh process: joulemeter "
        "`with m.window(\"w\"): pass` (no device sync; energy counters are read by its thread "
        "just after each edge, and the thread fills in each window's energy once every domain "
        "has been read past its end), Zeus `begin_window`/`end_window` (no sync; counters read "
        "in the caller at both edges), CodeCarbon `start_task`/`stop_task`. µs per window: wall "
        "time in the caller; CPU: process CPU time of every thread per window, so what a tool's "
        "thread does for the windows counts too.",
        "",
        "| Tool | What it metered here | Windows per repeat | µs per window | CPU µs per window |",
        "|---|---|---|---|---|",
    ]
    for tool, d in r.items():
        if "error" in d:
            lines.append(f"| {tool} | could not run here: `{d['error']}` | — | — | — |")
            continue
        cpu = _num(d["cpu_per_window_us"], "{:.2f}") if "cpu_per_window_us" in d else "—"
        lines.append(f"| {tool} | {d['metered']} | {d['windows_per_repeat']:,} | "
                     f"{_num(d['per_window_us'], '{:.2f}')} | {cpu} |")
    return lines


def _startup(r: dict[str, Any]) -> list[str]:
    lines = [
        "## Start-up",
        "",
        "Fresh subprocesses, interleaved. Import times are measured inside the child around "
        "the import statement (interpreter start-up excluded); command times are the wall "
        "time of the whole command, so `python -c pass` is their floor.",
        "",
        "| What | Time (ms) | Heavy modules it loaded |",
        "|---|---|---|",
    ]
    for name, d in r["import_ms"].items():
        heavy = ", ".join(r["heavy_modules_loaded"].get(name, [])) or "none"
        lines.append(f"| `{r['import_statements'][name]}` | {_num(d)} | {heavy} |")
    for name, d in r["command_ms"].items():
        lines.append(f"| `{name}` | {_num(d)} | |")
    for name, error in r["errors"].items():
        lines.append(f"| {name} | could not run: {error} | |")
    lines += ["", "Heavy modules looked for: torch, pandas, numpy, matplotlib, sqlalchemy."]
    return lines


def _ledger(r: dict[str, Any]) -> list[str]:
    ratio = _s(r["ratio_to_need"])
    return [
        "## Ledger (SQLite file)",
        "",
        f"{r['gpus']} GPUs sampled every {r['interval_s'] * 1000:g} ms need "
        f"{r['needed_samples_per_s']:g} samples/s. `append_samples` of {r['batch_samples']}-sample "
        f"batches (2 s of such a run, the meter's flush interval), {ratio.n} batches:",
        "",
        "| Figure | Value |",
        "|---|---|",
        f"| Sustained ingest (samples/s) | {_num(r['samples_per_s'], '{:,.0f}')} |",
        f"| Ratio to the {r['needed_samples_per_s']:g} samples/s needed | {ratio.text('{:.0f}')} × |",
        f"| Size on disk per sample | {r['bytes_per_sample']:.0f} bytes |",
        f"| Size on disk per hour of such a run | {r['mib_per_hour']:.0f} MiB "
        f"(extrapolated from the {r['samples_written']:,} samples written) |",
    ]


def _report(r: dict[str, Any]) -> list[str]:
    s = _s(r["render_s"])
    return [
        "## Report",
        "",
        f"`joulemeter.reports.render.render(run, \"html\")` of one run with {r['samples']:,} samples "
        f"(4 GPU domains at 10 ms, 10 windows), {s.n} repeats: **{s.text('{:.2f}')} s** "
        f"(target < {TARGET_RENDER_S:g} s: {_met(s.median < TARGET_RENDER_S)}); the page is "
        f"{r['html_bytes'] / 1024:.0f} KiB.",
    ]


def _gpu(r: dict[str, Any] | None) -> list[str]:
    lines = [
        "## GPU counterpart",
        "",
        "`python3 benchmarks/gpu_matmul.py --write` on a machine with an NVIDIA GPU: a ~20 s "
        "matmul training loop metered by joulemeter; the energy counter against the "
        "trapezoid integral of the sampled power, the sampling rate reached, and the "
        "overhead against an unmetered loop and Zeus. It writes docs/benchmarks-gpu.json, "
        "which the next `run_all.py` shows here.",
        "",
    ]
    if not r:
        lines.append("Not run yet: this machine has no GPU.")
        return lines
    lines += [
        f"Measured on {r['device']} ({r['date']}, `{r['command']}`):",
        "",
        "| Figure | Value |",
        "|---|---|",
        "| Energy counter (J) | "
        + (f"{r['counter_energy_j']:.1f}" if r["counter_energy_j"] is not None else "this GPU has none")
        + " |",
        f"| Trapezoid integral of the power samples (J) | {r['integrated_power_j']:.1f} |",
        "| Integral vs counter | "
        + (f"{r['integral_vs_counter_pct']:+.2f} %" if r["counter_energy_j"] is not None else "—")
        + " |",
        f"| Sampling rate reached (Hz), asked {1 / r['interval_s']:g} | {r['sampling_rate_hz']:.1f} |",
    ]
    for name, d in r["overhead_pct"].items():
        lines.append(f"| {name} slowdown vs unmetered | {_pct(d)} |")
    if r.get("zeus_error"):
        lines.append(f"| zeus slowdown vs unmetered | could not run: `{r['zeus_error']}` |")
    return lines


def _targets(results: dict[str, Any]) -> list[str]:
    o = results["overhead"]

    def views(variant: str) -> tuple[float, float, float]:
        t = o["training"][variant]
        return _s(t["overhead_pct"]).median, t["fastest_overhead_pct"], _s(t["cpu_overhead_pct"]).median

    def shown(variant: str) -> str:
        median, fastest, cpu = views(variant)
        return f"slowdown {median:+.2f} %, fastest {fastest:+.2f} %, CPU {cpu:+.2f} %"

    _, fastest, cpu = views("joulemeter")
    rows = [(
        f"joulemeter ≤ {TARGET_OVERHEAD_PCT:g} % slower than unmetered at the default setting (fastest and CPU)",
        shown("joulemeter"),
        _met(fastest <= TARGET_OVERHEAD_PCT and cpu <= TARGET_OVERHEAD_PCT),
    )]
    idle = o["idle"]
    if "zeus" in idle:
        zeus = _s(idle["zeus"]["extra_cpu_ms_per_s"])
        zeus_shown = f"zeus {zeus.median:.3g} ms per s (IQR {zeus.q1:.3g} – {zeus.q3:.3g})"
        if "joulemeter" in idle:  # a trial shorter than 30 flushes holds no ledger write: amortized
            ledger_ms = ledger_write_ms_per_s(results["sampling"]) or 0.0
            mine_idle = _s(idle["joulemeter"]["extra_cpu_ms_per_s"]).median
            rows.append(("joulemeter idle CPU at or below Zeus's (default setting, a run's first seconds)",
                         f"joulemeter {mine_idle:.3g} ms per s (+{ledger_ms:.2g} for its ledger writes, "
                         f"amortized), {zeus_shown}", _met(mine_idle + ledger_ms <= zeus.median)))
        for label, setting in (("default", "default setting, a long idle run"), ("no timeline", "timeline=False, a long idle run")):
            long_idle = long_idle_ms_per_s(results["sampling"].get("long_idle", {}).get(label))
            if long_idle is not None:
                rows.append((f"joulemeter idle CPU at or below Zeus's ({setting})",
                             f"joulemeter {long_idle:.3g} ms per s (its threads, ledger writes included), "
                             f"{zeus_shown}", _met(long_idle <= zeus.median)))
    for variant, peers in (("joulemeter", ("codecarbon@100ms", "zeus")),
                           ("joulemeter@100ms", ("codecarbon@100ms",)), ("joulemeter@10ms", ("codecarbon@10ms",))):
        mine = views(variant)
        for peer in peers:
            if peer in o["unavailable"] or peer not in o["training"]:
                rows.append((f"{variant} lighter than {peer}", "peer could not run here", "—"))
                continue
            theirs = views(peer)
            rows.append((
                f"{variant} lighter than {peer} (fastest and CPU)",
                f"joulemeter {shown(variant)}; {peer} {shown(peer)} "
                f"({peer} metered: {o['measures'].get(peer, '?')})",
                _met(mine[1] < theirs[1] and mine[2] < theirs[2]),
            ))
    window = results["window"]
    if "per_window_us" in window.get("joulemeter", {}):
        w = _s(window["joulemeter"]["per_window_us"]).median
        peers = "; ".join(f"{t} {_s(d['per_window_us']).median:.3g} µs" for t, d in window.items()
                          if t != "joulemeter" and "per_window_us" in d)
        rows.append((f"window enter + leave < {TARGET_WINDOW_US:g} µs", f"{w:.2f} µs ({peers})",
                     _met(w < TARGET_WINDOW_US)))
    memory = results.get("memory")
    if memory:
        growth = memory["rss_24h_extrapolated_mib"] - memory["rss_end_mib"]
        rows.append(("memory flat over time (24 h × 8 GPUs, extrapolated)",
                     f"{memory['rss_24h_extrapolated_mib']:.0f} MiB at 24 h, +{growth:.1f} MiB after the measured "
                     f"{memory['ticks'] / 3600:.1f} h", _met(growth < TARGET_MEMORY_GROWTH_MIB_PER_DAY)))
    ratio = _s(results["ledger"]["ratio_to_need"]).median
    rows.append(("ledger keeps up with 8 GPUs at 10 ms", f"{ratio:.0f} × the need", _met(ratio >= 1)))
    render = _s(results["report"]["render_s"]).median
    rows.append(("HTML report of 1,000,000 samples < 5 s", f"{render:.2f} s", _met(render < TARGET_RENDER_S)))
    return [
        "## Targets",
        "",
        "Medians unless said otherwise; a difference smaller than the spread in the tables "
        "below is not a difference.",
        "",
        "| Target | Measured | Met |",
        "|---|---|---|",
        *[f"| {a} | {b} | {c} |" for a, b, c in rows],
    ]


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    load0 = ", ".join(f"{x:.2f}" for x in m["load_average_at_start"])
    load1 = ", ".join(f"{x:.2f}" for x in m["load_average_at_end"])
    lines = [
        "# Benchmarks",
        "",
        "Written by `" + results["command"] + "` (after `bash benchmarks/setup_peers.sh`, which "
        "installs Zeus into benchmarks/.venv-peers). Every figure is a ratio or a cost "
        "measured in that one run, on the machine below; a spread is the median and "
        "interquartile range over the repeats. The raw trials are in benchmarks.json beside "
        "this page.",
        "",
        f"- Date: {results['date']}; mode: {results['mode']}; the suite took {results['suite_s']:.0f} s",
        f"- Machine: {m['cpu']}, {m['cpu_count']} logical CPUs, {m['os']}, Python {m['python']}",
        f"- Versions: {versions}",
        f"- Load average (1, 5, 15 min) at start: {load0}; at end: {load1} (on "
        f"{m['cpu_count']} CPUs: anything above about 1 is other work sharing the machine).",
        "",
    ]
    for part in (
        _targets(results),
        _overhead(results["overhead"]),
        _sampling(results["sampling"]),
        _window(results["window"]),
        _memory(results["memory"]),
        _startup(results["startup"]),
        _ledger(results["ledger"]),
        _report(results["report"]),
        _gpu(results.get("gpu")),
    ):
        lines += part + [""]
    return "\n".join(lines)
