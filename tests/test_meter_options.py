"""EnergyMeter's options are defined once: a misspelt one fails at the call that made it."""

from __future__ import annotations

import pytest

from joulemeter.meter import EnergyMeter, current_meter, metered
from tests.doubles import LinearCounterSource

torch = pytest.importorskip("torch")

from joulemeter.integrations.compression import benchmark_inference  # noqa: E402
from joulemeter.integrations.distributed import DistributedMeter  # noqa: E402
from joulemeter.integrations.pytorch import (  # noqa: E402
    TrainingMeter,
    current_training_meter,
    metered_training,
)


def test_a_misspelt_option_names_itself_and_the_option_meant():
    with pytest.raises(TypeError, match=r"EnergyMeter\(\) got an unknown meter option 'stor'; did you mean 'store'\?"):
        EnergyMeter("x", stor=False)


@pytest.mark.parametrize(
    "make",
    [
        lambda: metered("x", intervl_s=0.01),
        lambda: TrainingMeter("x", store=False, sources=[LinearCounterSource()], intervl_s=0.01),
        lambda: metered_training("x", intervl_s=0.01),
        lambda: benchmark_inference({}, torch.zeros(1, 2), intervl_s=0.01),
        lambda: DistributedMeter("x", store=False, intervl_s=0.01),
    ],
    ids=["metered", "TrainingMeter", "metered_training", "benchmark_inference", "DistributedMeter"],
)
def test_a_misspelt_option_fails_at_the_integration_call_not_when_metering_starts(make):
    with pytest.raises(TypeError, match="unknown meter option 'intervl_s'; did you mean 'interval_s'"):
        make()


@pytest.mark.parametrize("module, callback", [
    ("joulemeter.integrations.lightning", "JoulemeterCallback"),
    ("joulemeter.integrations.transformers", "JoulemeterTrainerCallback"),
])
def test_a_framework_callback_rejects_a_misspelt_option_when_made(module, callback):
    make = getattr(pytest.importorskip(module), callback)
    with pytest.raises(TypeError, match=f"{callback}\\(\\) got an unknown meter option 'ledgr'"):
        make(ledgr="x.db")


def test_the_training_meter_and_a_meter_inside_it_are_both_current():
    options = {"store": False, "interval_s": 0.01, "cuda_sync": False}
    with TrainingMeter("outer", sources=[LinearCounterSource()], **options) as tm:
        with EnergyMeter("inner", store=False, interval_s=0.01, sources=[LinearCounterSource()]) as inner:
            assert (current_training_meter(), current_meter()) == (tm, inner)
        assert current_meter() is tm.meter.meter
    assert (current_training_meter(), current_meter()) == (None, None)


def test_the_training_integrations_still_take_distributed_meters_gpus_option():
    tm = TrainingMeter("x", store=False, sources=[LinearCounterSource()], gpus=[0])
    assert tm.meter.gpus == [0]


def test_a_callers_sync_runs_before_the_integrations_own_and_neither_is_dropped():
    from joulemeter.meter.meter import extend_options

    calls: list[str] = []
    options = extend_options({"sync": lambda: calls.append("caller")}, sync=lambda: calls.append("cuda"))
    options["sync"]()
    assert calls == ["caller", "cuda"]
