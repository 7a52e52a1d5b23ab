"""How the CLI writes figures: every magnitude readable, nothing rounded to zero."""

import pytest

from integrations.cli._common import format_duration, format_energy


@pytest.mark.parametrize(
    ("energy_j", "text"),
    [
        (None, "—"),
        (0.0, "0 J"),
        (2.5e-6, "2.5 µJ"),
        (0.00264, "2.64 mJ"),
        (15.513, "15.51 J"),
        (4200.0, "4.20 kJ (0.00117 kWh)"),
        (3.6e8, "360.00 MJ (100 kWh)"),
        (1.22e11, "122.00 GJ (33,889 kWh)"),
    ],
)
def test_energy_is_written_in_the_unit_that_keeps_its_digits(energy_j, text):
    assert format_energy(energy_j) == text


def test_durations_switch_to_minutes_and_hours():
    assert format_duration(3.04) == "3.0 s"
    assert format_duration(125) == "2 min 5 s"
    assert format_duration(7380) == "2 h 3 min"
