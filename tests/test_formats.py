"""One registry of output formats: the library and the CLI refuse an unknown format with
one error listing every format that can write what was asked; the CLI adds its flags to
library errors whose messages name none."""

from __future__ import annotations

import io

import pytest
from typer.testing import CliRunner

from joulemeter.integrations.cli import app
from joulemeter.meter.errors import (
    ForeignLedgerError,
    LedgerCorruptError,
    ReportError,
    UnknownFormatError,
    UnknownHardwareError,
    UnknownRegionError,
)
from joulemeter.meter.export import export_runs
from joulemeter.meter.formats import EXPORT, FORMATS, REPORT, format_names, output_format
from joulemeter.reports.compare import compare
from joulemeter.reports.render import render
from tests.test_cli_report import FACTOR_ARGS, fake_ledger, full_run, pruned_run  # noqa: F401

runner = CliRunner()
EXPORTS = ("json", "csv", "parquet", "codecarbon")
REPORTS = ("html", "md", "latex", "json", "csv")


def test_the_registry_names_every_format_once_with_what_it_writes():
    assert sorted(f.name for f in FORMATS) == sorted(set(EXPORTS + REPORTS))
    assert format_names(EXPORT) == EXPORTS and format_names(REPORT) == REPORTS
    for spec in FORMATS:
        assert spec.suffix.startswith(".")
        for product in spec.writers:
            assert callable(spec.writer(product)), (spec.name, product)


@pytest.mark.parametrize(("call", "product", "choices"), [
    (lambda: render(full_run(), "xlsx"), "report", REPORTS),
    (lambda: export_runs([full_run()], "xlsx", io.StringIO()), "export", EXPORTS),
    (lambda: render(full_run(), "parquet"), "report", REPORTS),  # a format, but not of reports
])
def test_an_unknown_format_is_one_error_listing_every_choice(call, product, choices):
    with pytest.raises(UnknownFormatError) as caught:
        call()
    error = caught.value
    assert isinstance(error, ReportError) and isinstance(error, ValueError)
    assert (error.product, error.choices, error.parameter) == (product, choices, "fmt")
    assert str(error).endswith("choose one of " + ", ".join(choices))


def test_output_format_gives_the_suffix_and_what_the_format_writes():
    assert output_format("latex", REPORT).suffix == ".tex"
    assert output_format("parquet", EXPORT).binary
    assert not output_format("json", EXPORT).tabular and output_format("csv", EXPORT).tabular


def test_a_codecarbon_export_goes_through_the_library_call():
    out = io.StringIO()
    export_runs([full_run()], "codecarbon", out)
    header = out.getvalue().splitlines()[0].split(",")
    assert "emissions" in header and "energy_consumed" in header


@pytest.mark.usefixtures("fake_ledger")
@pytest.mark.parametrize(("command", "choices"), [("export", EXPORTS), ("report", REPORTS)])
def test_the_cli_refuses_an_unknown_format_listing_every_choice_and_the_flag(command, choices):
    result = runner.invoke(app, [command, "aaaa", "--format", "xlsx"])
    assert result.exit_code == 2
    assert f"unknown format 'xlsx': --format takes {', '.join(choices)}" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.usefixtures("fake_ledger")
def test_library_messages_name_no_flag_that_the_cli_then_adds():
    with pytest.raises(ReportError) as caught:
        compare([full_run(), pruned_run()], per="token")
    assert "--" not in str(caught.value) and caught.value.parameter == "per"
    result = runner.invoke(app, ["compare", "aaaa", "cccc", "--per", "token", *FACTOR_ARGS])
    assert result.exit_code == 2
    assert "or compare whole runs (--per run)" in result.stderr


@pytest.mark.parametrize(("error", "flag"), [
    (UnknownRegionError("Atlantis", ["AT"]), "(--intensity)."),
    (UnknownHardwareError("Z9000"), "(--power-w)."),
    (LedgerCorruptError("l.sqlite", "truncated"), "(or --ledger)."),
    (ForeignLedgerError("l.sqlite", "it holds other tables"), "(or --ledger)."),
])
def test_the_cli_adds_the_flag_that_does_what_the_library_message_advises(error, flag):
    from joulemeter.integrations.cli._common import error_message

    library = str(error).replace("`joulemeter factors --list`", "")  # a command, not a flag
    assert "--" not in library
    assert error_message(error) == str(error)[:-1] + " " + flag


def test_an_unknown_country_on_the_command_line_gets_the_intensity_flag():
    result = runner.invoke(app, ["factors", "--country", "Atlantis"])
    assert result.exit_code == 2
    assert "or give the grid intensity yourself (--intensity)." in result.output


def test_an_unknown_format_error_survives_pickling_with_its_fields():
    import pickle

    from joulemeter.meter.errors import UnknownFormatError

    copy = pickle.loads(pickle.dumps(UnknownFormatError("xlsx", "export", ("json", "csv"))))
    assert (copy.name, copy.product, copy.choices) == ("xlsx", "export", ("json", "csv"))
    assert "choose one of json, csv" in str(copy)
