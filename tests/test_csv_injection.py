"""Every CSV joulemeter writes neutralises cells a spreadsheet would run as a formula (OWASP)."""

from __future__ import annotations

import csv
import io

import pytest

from joulemeter.meter.export import export_runs, spreadsheet_safe
from joulemeter.meter.run import Window
from joulemeter.reports.factors import resolve_factors
from joulemeter.reports.render import render
from tests.test_compare import make_run

FORMULAS = ['=HYPERLINK("http://evil.example","x")', "+1+1", "-2+3", "@SUM(A1)", "\tcmd", "\rcmd"]


@pytest.mark.parametrize("value", FORMULAS)
def test_a_formula_cell_is_quoted_and_plain_values_are_left_alone(value):
    assert spreadsheet_safe(value) == "'" + value
    assert spreadsheet_safe("resnet-50") == "resnet-50"
    assert spreadsheet_safe(-2.5) == -2.5  # numbers are never text formulas


def _cells(text: str) -> list[str]:
    return [cell for row in csv.reader(io.StringIO(text)) for cell in row]


def _hostile_run():
    hostile = FORMULAS[0]
    window = Window(hostile, hostile, 0.0, 10.0, energy_j={"gpu:0": 1.0})
    run = make_run("r1", hostile, windows=[window], metadata={"variant": "@SUM(A1)"})
    run.project = hostile  # CodeCarbon's project_name
    return run


@pytest.mark.parametrize("table", ["samples", "windows", "domains"])
def test_csv_exports_never_start_a_cell_with_a_formula(table):
    out = io.StringIO()
    export_runs([_hostile_run()], "csv", out, table=table)
    cells = _cells(out.getvalue())
    assert cells
    assert not [c for c in cells if c[:1] in ("=", "+", "@", "\t", "\r")]
    if table == "windows":
        assert "'" + FORMULAS[0] in cells


def test_the_codecarbon_export_and_the_csv_report_never_start_a_cell_with_a_formula():
    out = io.StringIO()
    export_runs([_hostile_run()], "codecarbon", out)
    report = render([_hostile_run()], "csv", factors=resolve_factors(country="FR"))
    for text in (out.getvalue(), report):
        cells = _cells(text)
        assert "'" + FORMULAS[0] in cells
        assert not [c for c in cells if c[:1] in ("=", "+", "@", "\t", "\r")]
