"""Rows of the hardware table added for Blackwell: found by the names NVML and users give them."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from joulemeter.integrations.cli import app
from joulemeter.reports.embodied import hardware_for_device
from joulemeter.reports.estimates import estimate, find_hardware

runner = CliRunner()


def test_a_b200_is_found_by_the_name_nvml_reports_and_draws_1000_w():
    assert hardware_for_device("NVIDIA B200") == "B200"
    assert find_hardware("b200-sxm-180gb").name == "B200"
    assert find_hardware("B200").power_w == 1000.0  # HGX B200, per GPU (hardware.csv cites it)


def test_an_hgx_b200_board_for_an_hour_is_eight_kilowatt_hours_at_board_power():
    found = estimate("B200", count=8, hours=1.0)
    assert found.energy_j == pytest.approx(8 * 1000.0 * 3600)
    assert "DGX B200" in found.power_citation.source


def test_estimate_on_the_command_line_takes_b200():
    result = runner.invoke(app, ["estimate", "--hardware", "B200", "--count", "8", "--hours", "1", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["estimate"]["hardware"] == "B200"
