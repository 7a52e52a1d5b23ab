"""The %%joulemeter cell magic, run through a real IPython InteractiveShell."""

from __future__ import annotations

import pytest

pytest.importorskip("IPython")

from IPython.core.interactiveshell import InteractiveShell  # noqa: E402
from IPython.utils.capture import capture_output  # noqa: E402

from joulemeter.meter import Provenance, Status  # noqa: E402
from joulemeter.meter.errors import UnknownRegionError  # noqa: E402
from joulemeter.meter.store import open_ledger  # noqa: E402
from joulemeter.reports.factors import resolve_factors  # noqa: E402
from joulemeter.reports.render import formatting  # noqa: E402

GPU_W, CPU_W = 120.0, 30.0  # the replayed trace's constant powers
J_PER_KWH = 3.6e6


@pytest.fixture
def shell(tmp_path, monkeypatch):
    monkeypatch.setenv("JOULEMETER_LEDGER", str(tmp_path / "ledger.sqlite"))
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "joulemeter.integrations.notebook")
    yield ip
    ip.user_ns.pop("_joulemeter_run", None)


@pytest.fixture
def trace(tmp_path):
    path = tmp_path / "trace.csv"
    path.write_text(
        "t_s,domain,power_w\n"
        f"0,gpu:0,{GPU_W}\n3600,gpu:0,{GPU_W}\n0,cpu,{CPU_W}\n3600,cpu,{CPU_W}\n"
    )
    return path


def test_the_short_extension_name_registers_the_same_magic(tmp_path, monkeypatch):
    monkeypatch.setenv("JOULEMETER_LEDGER", str(tmp_path / "ledger.sqlite"))
    ip = InteractiveShell.instance()
    ip.magics_manager.magics["cell"].pop("joulemeter", None)
    ip.run_line_magic("load_ext", "joulemeter")
    assert "joulemeter" in ip.magics_manager.magics["cell"]


def run_magic(shell, line: str, cell: str):
    with capture_output() as captured:
        shell.run_cell_magic("joulemeter", line, cell)
    return captured


def test_cell_is_metered_and_its_footprint_shown_with_provenance_and_sources(shell, trace):
    captured = run_magic(
        shell, f"--name cell --country FR --replay {trace}",
        "total = 0\nfor i in range(200000):\n    total += i\n",
    )
    assert shell.user_ns["total"] == sum(range(200000))  # the cell ran in the user namespace
    run = shell.user_ns["_joulemeter_run"]
    assert run.status is Status.COMPLETED
    assert run.provenance is Provenance.REPLAYED
    gpu_times = [x.t_s for x in run.samples if x.domain == "gpu:0"]
    assert run.energy["gpu:0"].energy_j == pytest.approx(GPU_W * (gpu_times[-1] - gpu_times[0]), rel=1e-6)

    shown = [o.data for o in captured.outputs]
    assert len(shown) == 1
    html, text = shown[0]["text/html"], shown[0]["text/plain"]
    factors = resolve_factors("FR")
    kg_co2e = run.total_energy_j * factors.pue / J_PER_KWH * factors.intensity_g_per_kwh / 1000
    assert formatting.co2e(kg_co2e) in text and formatting.co2e(kg_co2e) in html
    assert "(replayed)" in text and "J (replayed)" in html
    assert "kWh" in text and "CO2e" in text and "France" in text
    assert str(factors.intensity_citation) in text  # the factor's source is named

    with open_ledger() as ledger:
        stored = ledger.get_run(run.id)
    assert stored.name == "cell"
    assert stored.total_energy_j == pytest.approx(run.total_energy_j)


def test_footprint_uses_the_country_intensity_and_pue(shell, trace):
    run_magic(shell, f"--country FR --pue 1.5 --no-store --replay {trace}", "x = 1\n")
    magics = shell.magics_manager.registry["JoulemeterMagics"]
    fp, run = magics.last.footprint, magics.last.run
    factors = resolve_factors("FR")
    assert fp.energy_j == pytest.approx(run.total_energy_j)
    assert fp.energy_kwh == pytest.approx(run.total_energy_j * 1.5 / J_PER_KWH)
    assert fp.kg_co2e == pytest.approx(fp.energy_kwh * factors.intensity_g_per_kwh / 1000)
    assert fp.provenance == "replayed"


def test_a_failing_cell_is_kept_as_a_failed_run(shell, trace):
    run_magic(shell, f"--replay {trace}", "raise ValueError('bad batch')\n")
    run = shell.user_ns["_joulemeter_run"]
    assert run.status is Status.FAILED
    assert "bad batch" in run.error
    with open_ledger() as ledger:
        assert ledger.get_run(run.id).status is Status.FAILED


def test_an_unknown_country_fails_before_the_cell_runs(shell, trace):
    shell.user_ns.pop("ran", None)
    with pytest.raises(UnknownRegionError):
        shell.run_cell_magic("joulemeter", f"--country Atlantis --replay {trace}", "ran = True\n")
    assert "ran" not in shell.user_ns
    with open_ledger() as ledger:
        assert ledger.list_runs() == []


def test_without_a_trace_the_cell_is_metered_by_the_machines_own_sources(shell):
    run_magic(shell, "--no-store", "y = sum(range(100000))\n")
    run = shell.user_ns["_joulemeter_run"]
    assert run.status is Status.COMPLETED
    assert run.domains  # this machine: CPU and RAM estimates (or RAPL/NVML where present)
