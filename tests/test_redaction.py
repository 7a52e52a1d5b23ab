"""Secrets on a metered command line (`--hf-token=…`, `--password …`, `HF_TOKEN=…`, a URL's
password) are redacted before the command is stored as the run's metadata or name, so no
report or export can print them."""

from __future__ import annotations

import sys

import pytest
from typer.testing import CliRunner

from joulemeter.integrations.cli import app
from joulemeter.meter.command import REDACTED, redacted, stored_command

runner = CliRunner()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--hf-token=hf_SECRET"], ["--hf-token=***"]),
        (["--token", "abc", "--lr", "3"], ["--token", "***", "--lr", "3"]),
        (["--api-key", "k", "--api_key=k", "--apikey", "k"], ["--api-key", "***", "--api_key=***", "--apikey", "***"]),
        (["--password", "hunter2", "--client-secret=s"], ["--password", "***", "--client-secret=***"]),
        (["HF_TOKEN=hf_x", "OPENAI_API_KEY=sk", "AWS_SECRET_ACCESS_KEY=a", "DB_PASSWORD=p"],
         ["HF_TOKEN=***", "OPENAI_API_KEY=***", "AWS_SECRET_ACCESS_KEY=***", "DB_PASSWORD=***"]),
        (["--db", "postgresql://me:pw@host/db"], ["--db", "postgresql://me:***@host/db"]),
        (["--use_auth_token", "--model", "gpt2"], ["--use_auth_token", "--model", "gpt2"]),  # a switch
    ],
    ids=["--flag=value", "--flag value", "api keys", "password and secret", "environment style", "url", "switch"],
)
def test_secret_values_are_redacted(argv, expected):
    assert redacted(argv) == expected


def test_ordinary_arguments_are_kept():
    argv = ["python", "train.py", "--max-new-tokens", "512", "--tokenizer", "t5", "lr=0.1",
            "TOKEN_FILE=~/.hf", "--epochs=3", "https://example.org/data"]
    assert redacted(argv) == argv


def test_a_stored_command_is_bounded_however_long_the_command_line():
    stored = stored_command(["python", "x" * 100_000, *["--flag"] * 10_000])
    assert sum(len(a) for a in stored) < 5_000
    assert stored[0] == "python" and stored[1].endswith("…") and "more argument(s) not kept" in stored[-1]


def test_joulemeter_run_never_stores_or_prints_a_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("JOULEMETER_LEDGER", str(tmp_path / "ledger.sqlite"))
    secrets = ["hf_SECRET", "hunter2", "sk-ENV"]
    command = [sys.executable, "-c", "pass", "--hf-token=hf_SECRET", "--password", "hunter2", "OPENAI_API_KEY=sk-ENV"]
    result = runner.invoke(app, ["run", "--device", "cpu", "--", *command])
    assert result.exit_code == 0, result.output
    for args in (["report", "last", "--format", "json", "--intensity", "400"], ["show", "last"],
                 ["runs", "--json"], ["export", "last", "-f", "json"], ["export", "last", "-f", "codecarbon"]):
        output = runner.invoke(app, args)
        assert output.exit_code == 0, (args, output.output)
        assert not any(secret in output.output for secret in secrets), args
    shown = runner.invoke(app, ["show", "last", "--json"]).stdout
    assert f"--hf-token={REDACTED}" in shown and "--password" in shown
