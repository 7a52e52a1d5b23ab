"""What a new user's walkthrough of reports and the CLI found (issue 12 item 8, issue 13): an
LLM run per token beside a published one, metadata labels and units, Markdown escaping and
tables, money, the LLM sweep's words, default file names, compare at 80 columns, and HTML
tables that never make a page scroll sideways."""

from __future__ import annotations

import re

import pytest
from rich.console import Console
from typer.testing import CliRunner

from joulemeter.integrations.cli import app
from joulemeter.reports.compare import compare
from joulemeter.reports.estimates import published_run
from joulemeter.reports.factors import resolve_factors
from tests.test_compare import FACTORS_KW, make_run

runner = CliRunner()
FACTOR_ARGS = ["--intensity", "400", "--pue", "1.5", "--price", "0.30", "--currency", "EUR"]


def llm_run():
    """An LLM sweep as joulemeter.integrations.llm counts it: input and output tokens, no tokens."""
    return make_run("11112222aaaabbbb", "llm-sweep", energy_j=8.0, units={"input_tokens": 10_000.0,
                    "output_tokens": 4_000.0}, metadata={"kind": "llm-inference", "parameters": 182_016})


def run_with_metadata(run_id: str, name: str, accuracy: float):
    return make_run(run_id, name, energy_j=1000.0, units={"inferences": 1000.0}, metadata={
        "accuracy": accuracy, "latency_p50_s": 5.58e-4, "size_on_disk_bytes": 343_000, "batch_size": 256,
        "throughput_per_s": 400_000.0, "peak_memory_bytes": 1.72e6, "kind": "inference"})


@pytest.fixture()
def ledger(tmp_path, monkeypatch):
    from joulemeter.meter.store import open_ledger

    path = tmp_path / "ledger.sqlite"
    with open_ledger(path) as book:
        book.save_runs([llm_run(), run_with_metadata("aaaa000011112222", "full", 0.9639),
                        run_with_metadata("bbbb000011112222", "pruned", 0.9694),
                        run_with_metadata("cccc000011112222", "a-rather-long-run-name/int8", 0.9639)])
    monkeypatch.setenv("JOULEMETER_LEDGER", str(path))
    return path


# -- 1. an LLM run beside a published one -----------------------------------------------


def test_an_llm_run_is_compared_per_token_processed_with_a_published_run_and_says_so(ledger):
    result = runner.invoke(app, ["compare", "1111", "--published", "GPT-3 175B", *FACTOR_ARGS])
    assert result.exit_code == 0, result.output
    assert "comparing energy per token processed (an LLM run's input + output tokens)" in result.stderr
    words = " ".join(result.stdout.split())
    assert "per token here is per token processed, its 10,000 input (prompt) and 4,000 output" in words
    assert "training and inference are not the same work" in words
    assert "no figure" not in words  # the published side is not blamed for the LLM run's units


def test_whole_runs_of_wildly_different_size_get_a_ratio_a_reader_can_say(ledger):
    result = runner.invoke(app, ["compare", "1111", "--published", "gpt-3", "--per", "run", *FACTOR_ARGS])
    assert result.exit_code == 0, result.output
    words = " ".join(result.stdout.split())
    assert "× 10¹¹× more energy than llm-sweep" in words
    assert not re.search(r"\d{4},\d{3}", words)  # no 12-digit ratio, no 195,624.00 cost
    assert "cents" not in words and ".00 EUR" not in words


def test_a_published_run_is_found_by_the_model_name_that_published_lists():
    assert published_run("Llama 2 70B").name == published_run("llama-2-70b").name == "llama-2-70b"


def test_a_published_run_has_no_ledger_id_to_show_in_compare_tables():
    from joulemeter.integrations.cli.report_cmd import _run_label

    row = {"id": published_run("gpt-3").as_run().id, "name": "GPT-3 175B (published)"}
    assert _run_label(row) == "GPT-3 175B (published)"  # not "… publishe", its id's first 8 characters
    assert _run_label({"id": "aaaa000011112222", "name": "full"}) == "full\n[dim]aaaa0000[/]"


# -- 2. metadata: one label and one format everywhere ------------------------------------


def test_metadata_has_human_labels_and_scaled_values_in_markdown_html_and_the_terminal(ledger):
    md = runner.invoke(app, ["report", "aaaa", "bbbb", "cccc", "-f", "md", *FACTOR_ARGS]).stdout
    html_path = ledger.parent / "r.html"
    assert runner.invoke(app, ["report", "aaaa", "bbbb", "cccc", "-o", str(html_path), *FACTOR_ARGS]).exit_code == 0
    html = html_path.read_text()
    terminal = runner.invoke(app, ["compare", "aaaa", "bbbb", "cccc", *FACTOR_ARGS]).stdout
    for text in (md, html, terminal):
        assert "p50 latency" in text and "558 µs" in text and "size on disk" in text and "343 kB" in text
        assert "96.4 %" in text and "0.9639" not in text  # accuracy one way everywhere
        assert "latency p50 s" not in text and "size on disk bytes" not in text


def test_the_markdown_comparison_keeps_metadata_as_rows_not_thirty_columns(ledger):
    md = runner.invoke(app, ["report", "aaaa", "bbbb", "cccc", "-f", "md", *FACTOR_ARGS]).stdout
    widths = [line.count(" | ") + 1 for line in md.splitlines() if line.startswith("| ")]
    assert max(widths) <= 8
    assert "| p50 latency | 558 µs | 558 µs | 558 µs |" in md


# -- 7, 8. the LLM sweep's words, default file names -------------------------------------


def test_the_llm_sweep_says_its_point_names_in_words_and_a_quick_sweep_says_quick():
    from joulemeter.integrations.experiment_llm import sweep_name
    from joulemeter.reports.llm import Estimate, PointFigures
    from joulemeter.reports.render.llm import legend

    none = Estimate(None, None, 0)
    point = PointFigures("b1-in32-out32", 1, 32, 32, none, none, none, None, None, [])
    assert legend([point, point]) == "Point b1-in32-out32 = batch 1, 32 input tokens, 32 output tokens; the others alike."
    assert sweep_name(True) == "llm-sweep-quick" and sweep_name(False) == "llm-sweep"


def test_demo_help_names_the_files_each_experiment_writes():
    from joulemeter.integrations.cli.demo_cmd import DEFAULT_REPORTS
    from joulemeter.integrations.demo import DemoOptions
    from joulemeter.integrations.experiment_llm import LLMDemoOptions
    from joulemeter.integrations.experiment_tlc import TLCOptions

    assert DEFAULT_REPORTS == {"compression": DemoOptions().output, "llm-sweep": LLMDemoOptions().output,
                               "train-large-then-compress": TLCOptions().output}
    help_text = " ".join(runner.invoke(app, ["demo", "--help"], env={"COLUMNS": "200"}).stdout.split())
    for path in DEFAULT_REPORTS.values():
        assert str(path) in help_text
    assert "<experiment>" not in help_text


def test_report_help_names_the_file_it_writes_for_several_runs(ledger, tmp_path, monkeypatch):
    help_text = " ".join(runner.invoke(app, ["report", "--help"], env={"COLUMNS": "200"}).stdout.split())
    assert "joulemeter-report-<id>-and-<n>-more.html" in help_text
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["report", "aaaa", "bbbb", "cccc", *FACTOR_ARGS])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "joulemeter-report-aaaa0000-and-2-more.html").exists()


def test_the_demo_says_its_time_is_the_whole_demos(capsys):
    from pathlib import Path

    from joulemeter.integrations.cli.demo_cmd import _print_written

    _print_written(Path("joulemeter-demo.html"), 21.2)
    assert "report written to joulemeter-demo.html; the whole demo took 21.2 s" in capsys.readouterr().out


# -- 9. "production" -------------------------------------------------------------------------


def test_break_even_words_speak_of_making_a_variant_not_of_production():
    from joulemeter.reports.render.wording import break_even_text

    assert "production" not in break_even_text(1.0, -0.1, None)
    assert "making it" in break_even_text(1.0, -0.1, None)


# -- 10, 11. HTML at 390 px, compare at 80 columns -------------------------------------------


def test_every_html_table_scrolls_in_its_own_box(ledger):
    html_path = ledger.parent / "r.html"
    assert runner.invoke(app, ["report", "aaaa", "bbbb", "cccc", "-o", str(html_path), *FACTOR_ARGS]).exit_code == 0
    html = html_path.read_text()
    assert html.count("<table") == html.count('<div class="scroll"><table>') > 0


def test_compare_tables_fit_80_columns_without_losing_a_header_or_a_name():
    from joulemeter.integrations.cli.report_cmd import _comparison_tables

    runs = [run_with_metadata("aaaa000011112222", "digits-mlp/full", 0.9639),
            run_with_metadata("bbbb000011112222", "digits-mlp/pruned", 0.9694),
            run_with_metadata("cccc000011112222", "digits-mlp/distilled", 0.9)]
    result = compare(runs, per="1000", factors=resolve_factors(**FACTORS_KW))
    console = Console(width=80, record=True)
    for table in _comparison_tables(result):
        console.print(table)
    text = console.export_text()
    assert max(console.measure(line).maximum for line in text.splitlines()) <= 80
    for name in ("digits-mlp/full", "digits-mlp/pruned", "digits-mlp/distilled"):
        assert name in text  # whole, not folded
    assert "% CI)" in text and "market per" in text  # headers wrapped, not cut at the edge
