"""count() refuses amounts that would poison a run, at the call, and the run still closes."""

from __future__ import annotations

import math

import pytest

from joulemeter.meter import EnergyMeter, Status
from joulemeter.meter.errors import InvalidCountError
from joulemeter.meter.store import open_ledger
from tests.doubles import LinearCounterSource


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, -1, "3", None, [1, 2]])
def test_a_bad_amount_fails_at_the_call_and_the_run_completes_with_what_was_counted(tmp_path, bad):
    ledger = tmp_path / "ledger.sqlite"
    with EnergyMeter("run", ledger=str(ledger), sources=[LinearCounterSource()], interval_s=0.01) as m:
        with m.window("train"):
            m.count(32, "samples")
            with pytest.raises(InvalidCountError, match="finite number of at least 0"):
                m.count(bad, "samples")
            m.count(32, "samples")
    with open_ledger(str(ledger)) as stored:
        run = stored.get_run(m.run.id, samples=False)
    assert run.status is Status.COMPLETED
    assert run.units == {"samples": 64.0}
    assert run.windows[0].units == {"samples": 64.0}


@pytest.mark.parametrize("unit", ["", None, 3])
def test_a_count_without_a_unit_name_is_refused(unit):
    with EnergyMeter("run", store=False, sources=[LinearCounterSource()]) as m:
        with pytest.raises(InvalidCountError, match="needs a unit name"):
            m.count(1, unit)
    assert m.run.units == {}


def test_numpy_and_zero_dimensional_amounts_count_as_plain_floats():
    numpy = pytest.importorskip("numpy")
    with EnergyMeter("run", store=False, sources=[LinearCounterSource()]) as m:
        m.count(numpy.int64(3), "samples")
        m.count(numpy.float32(0.5), "samples")
    assert m.run.units == {"samples": 3.5}
    assert type(m.run.units["samples"]) is float


def test_an_invalid_count_is_also_a_value_error():
    assert issubclass(InvalidCountError, ValueError)
