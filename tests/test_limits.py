"""Size bounds on names, tags and metadata: refused at the API with an error naming the
argument; a ledger written before the bounds, holding a 1 MB name, still lists, shows,
compares and reports quickly, with the name cut on display (whole in `show` and JSON)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from joulemeter.integrations.cli import app
from joulemeter.meter.errors import InputLimitError, JoulemeterError
from joulemeter.meter.limits import (
    METADATA_MAX_BYTES,
    NAME_MAX_CHARS,
    TAG_MAX_CHARS,
    TAGS_MAX,
    check_metadata,
    check_name,
    check_run_fields,
    check_tags,
)
from joulemeter.meter.store import open_ledger
from tests.test_compare import make_run

runner = CliRunner()


@pytest.mark.parametrize(
    ("call", "parameter"),
    [
        (lambda: check_name("n" * (NAME_MAX_CHARS + 1), "name"), "name"),
        (lambda: check_name(12, "project"), "project"),
        (lambda: check_tags(["t"] * (TAGS_MAX + 1)), "tags"),
        (lambda: check_tags(["t" * (TAG_MAX_CHARS + 1)]), "tags"),
        (lambda: check_tags("one-string"), "tags"),
        (lambda: check_metadata({"blob": "x" * METADATA_MAX_BYTES}), "metadata"),
        (lambda: check_run_fields("ok", "p" * 1_000_000, [], {}), "project"),
    ],
    ids=["long name", "non-string", "too many tags", "long tag", "tags as a string", "big metadata", "1 MB project"],
)
def test_a_value_past_its_bound_is_refused_naming_the_argument(call, parameter):
    with pytest.raises(InputLimitError) as caught:
        call()
    assert caught.value.parameter == parameter
    assert isinstance(caught.value, (JoulemeterError, ValueError))
    assert parameter in str(caught.value)


def test_values_within_the_bounds_pass_unchanged():
    check_run_fields("n" * NAME_MAX_CHARS, "project", ["t" * TAG_MAX_CHARS] * TAGS_MAX,
                     {"hyperparameters": {"lr": 3e-4, "layers": list(range(1000))}})
    assert check_tags(("a", "b")) == ["a", "b"]


def test_the_energy_meter_refuses_a_1_mb_name_before_measuring_anything():
    from joulemeter.meter import EnergyMeter

    with pytest.raises(InputLimitError, match="name is 1,000,000 characters long"):
        EnergyMeter("n" * 1_000_000, store=False)


BIG = "N" * 1_000_000


@pytest.fixture
def old_ledger(tmp_path, monkeypatch):
    """Two runs with 1 MB names and a 1 MB metadata value, saved as a ledger from before the bounds."""
    path = tmp_path / "ledger.sqlite"
    with open_ledger(path) as book:
        book.save_run(make_run("aaaa1111bbbb2222", BIG, energy_j=3400.0, units={"inferences": 1000},
                               metadata={"variant": BIG}))
        book.save_run(make_run("cccc3333dddd4444", BIG + "2", energy_j=1000.0, units={"inferences": 1000}))
    monkeypatch.setenv("JOULEMETER_LEDGER", str(path))
    monkeypatch.setenv("COLUMNS", "120")
    return path


@pytest.mark.parametrize(
    ("args", "most_chars"),
    [
        (["runs"], 5_000),
        (["compare", "aaaa", "cccc", "--intensity", "400"], 10_000),
        (["report", "aaaa", "cccc", "-f", "md", "--intensity", "400"], 20_000),
        (["report", "aaaa", "cccc", "-f", "latex", "--intensity", "400"], 20_000),
    ],
    ids=["runs", "compare", "report md", "report latex"],
)
def test_a_1_mb_name_from_an_old_ledger_is_cut_on_display_with_an_ellipsis(old_ledger, args, most_chars):
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output[-2000:]
    assert len(result.stdout) < most_chars  # it was 33.7 MB in 17 s for `runs`
    assert "NNN…" in result.stdout


def test_the_html_report_of_1_mb_names_is_small(old_ledger, tmp_path):
    out = tmp_path / "report.html"
    result = runner.invoke(app, ["report", "aaaa", "cccc", "--intensity", "400", "-o", str(out)])
    assert result.exit_code == 0, result.output[-2000:]
    assert out.stat().st_size < 200_000  # it was 10 MB, in 51 s


def test_show_and_json_keep_the_whole_name(old_ledger):
    shown = runner.invoke(app, ["show", "aaaa"])
    assert shown.exit_code == 0 and BIG in shown.stdout.replace("\n", "")
    assert BIG in runner.invoke(app, ["runs", "--json"]).stdout
