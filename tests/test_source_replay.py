"""Replaying a recorded power trace: validation of bad files and playback on a fake clock."""

from __future__ import annotations

import pytest

from joulemeter.meter.energy import DomainAccumulator
from joulemeter.meter.errors import ReplayTraceError
from joulemeter.meter.run import Provenance
from joulemeter.meter.sources.replay import ReplaySource, load_trace

TRACE = """t_s,domain,power_w,energy_j,kind
0,gpu:0,100,0,
0,cpu:package-0,20,,
1,gpu:0,200,150,
2,gpu:0,200,350,
2,cpu:package-0,40,,
"""


class Clock:
    def __init__(self, t_s: float = 50.0) -> None:
        self.t_s = t_s

    def __call__(self) -> float:
        return self.t_s


@pytest.fixture
def trace(tmp_path):
    path = tmp_path / "trace.csv"
    path.write_text(TRACE)
    return path


def _write(tmp_path, text: str):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    return path


def test_load_trace_returns_the_validated_rows_with_their_lines(trace):
    rows = load_trace(trace)
    assert [(r.t_s, r.domain, r.power_w, r.energy_j, r.line) for r in rows[:3]] == [
        (0.0, "gpu:0", 100.0, 0.0, 2),
        (0.0, "cpu:package-0", 20.0, None, 3),
        (1.0, "gpu:0", 200.0, 150.0, 4),
    ]


def test_playback_interpolates_power_and_energy_at_the_elapsed_time(trace):
    clock = Clock()
    source = ReplaySource(trace, clock=clock)
    domains = source.open()
    assert [(d.name, d.kind, d.provenance) for d in domains] == [
        ("gpu:0", "gpu", Provenance.REPLAYED),
        ("cpu:package-0", "cpu", Provenance.REPLAYED),
    ]
    clock.t_s += 0.5
    gpu, cpu = source.read()
    assert (gpu.power_w, gpu.energy_j) == (pytest.approx(150.0), pytest.approx(75.0))
    assert (cpu.power_w, cpu.energy_j) == (pytest.approx(25.0), None)  # 20 -> 40 W over 2 s


def test_speed_plays_the_trace_faster(trace):
    clock = Clock()
    source = ReplaySource(trace, clock=clock, speed=2.0)
    source.open()
    assert source.duration_s == pytest.approx(1.0)
    clock.t_s += 0.5  # trace time 1 s
    gpu, _ = source.read()
    assert gpu.power_w == pytest.approx(200.0) and gpu.energy_j == pytest.approx(150.0)


def test_after_the_trace_ends_readings_are_errors_so_the_meter_records_a_gap(trace):
    clock = Clock()
    source = ReplaySource(trace, clock=clock)
    gpu_domain = source.open()[0]
    acc = DomainAccumulator(gpu_domain)
    for t_s in (0.0, 1.0, 2.0, 3.0):
        clock.t_s = 50.0 + t_s
        acc.add(t_s, source.read()[0])
    acc.finish(3.0)
    assert acc.energy_j == pytest.approx(350.0)  # the trace's own energy column, end to end
    assert [(g.start_s, g.end_s) for g in acc.gaps] == [(2.0, None)]
    assert "trace ended" in acc.gaps[0].reason


def test_a_trace_without_energy_is_integrated_from_power(tmp_path):
    path = _write(tmp_path, "t_s,domain,power_w\n0,gpu:0,100\n2,gpu:0,300\n")
    clock = Clock()
    source = ReplaySource(path, clock=clock)
    acc = DomainAccumulator(source.open()[0])
    for t_s in (0.0, 1.0, 2.0):
        clock.t_s = 50.0 + t_s
        acc.add(t_s, source.read()[0])
    # trapezoids: (100+200)/2 × 1 + (200+300)/2 × 1 = 400 J
    assert acc.energy_j == pytest.approx(400.0)


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("t_s,domain,watts\n0,gpu:0,1\n", 1, "missing column(s) power_w"),
        ("t_s,domain,power_w\n0,gpu:0,1\n2,gpu:0,1\n1,gpu:0,1\n", 4, "time does not increase"),
        ("t_s,domain,power_w\n0,gpu:0,1\n0,gpu:0,1\n", 3, "time does not increase"),
        ("t_s,domain,power_w\n0,gpu:0,nan\n", 2, "power_w is nan"),
        ("t_s,domain,power_w\nnan,gpu:0,5\n", 2, "t_s is nan"),
        ("t_s,domain,power_w\n0,gpu:0,-3\n", 2, "negative power"),
        ("t_s,domain,power_w\n0,gpu:0,250000\n", 2, "beyond 10000 W"),
        ("t_s,domain,power_w\n0,gpu:0,lots\n", 2, "'lots' is not a number"),
        ("t_s,domain,power_w\n0,gpu:0,\n", 2, "power_w is empty"),
        ("t_s,domain,power_w\n0,,5\n", 2, "empty domain"),
        ("t_s,domain,power_w,energy_j\n0,gpu:0,5,-1\n", 2, "negative energy"),
        ("t_s,domain,power_w,kind\n0,x,5,gpu\n1,x,5,cpu\n", 3, "changes kind"),
        ("t_s,domain,power_w\n", 2, "no rows"),
    ],
)
def test_a_malformed_trace_names_the_file_line_and_problem(tmp_path, text, line, problem):
    path = _write(tmp_path, text)
    with pytest.raises(ReplayTraceError) as err:
        load_trace(path)
    message = str(err.value)
    assert f"{path}, line {line}:" in message
    assert problem in message


def test_time_may_repeat_across_domains_but_not_within_one(tmp_path):
    path = _write(tmp_path, "t_s,domain,power_w\n0,gpu:0,1\n0,gpu:1,1\n")
    assert len(load_trace(path)) == 2


def test_a_missing_trace_file_says_which_path(tmp_path):
    with pytest.raises(ReplayTraceError, match="absent.csv cannot be read"):
        ReplaySource(tmp_path / "absent.csv").open()


def test_a_field_beyond_the_csv_field_limit_is_a_replay_trace_error_not_a_csv_error(tmp_path):
    huge = "x" * 200_000  # csv's field limit is 131,072 characters
    path = _write(tmp_path, f't_s,domain,power_w\n0,gpu:0,1\n1,"{huge}",2\n')
    with pytest.raises(ReplayTraceError, match=r"not a readable CSV after line \d+ \(field larger than field limit"):
        load_trace(path)


def test_a_domain_name_beyond_the_name_limit_is_refused(tmp_path):
    path = _write(tmp_path, f"t_s,domain,power_w\n0,{'g' * 300},1\n")
    with pytest.raises(ReplayTraceError, match="line 2: a domain name of 300 characters; the limit is 256"):
        load_trace(path)
