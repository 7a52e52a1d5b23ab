"""The fake pynvml behaves like NVML where the source depends on it (tests/fakes/fake_pynvml.py)."""

from __future__ import annotations

import time

import pytest

from tests.fakes.fake_pynvml import FakeGpu, FakeNvml


def _module(*gpus: FakeGpu, **kwargs):
    fake = FakeNvml(list(gpus), **kwargs)
    fake.module.nvmlInit()
    return fake, fake.module


def test_the_energy_counter_moves_in_steps_of_its_update_period_not_on_every_call():
    fake, nvml = _module(FakeGpu(power_w=100.0, counter_period_s=0.1))
    gpu = fake.gpus[0]
    fake.clock.t_s = 0.05
    assert nvml.nvmlDeviceGetTotalEnergyConsumption(gpu) == 0
    fake.clock.t_s = 0.19
    assert nvml.nvmlDeviceGetTotalEnergyConsumption(gpu) == 10_000  # 100 W × 0.1 s, in mJ


def test_power_usage_is_a_one_second_average_on_hopper_and_instant_on_ga100():
    fake, nvml = _module(FakeGpu(name="NVIDIA H100 80GB HBM3", arch=9, power_w=100.0),
                         FakeGpu(name="NVIDIA A100-SXM4-40GB", arch=7, power_w=100.0))
    h100, a100 = fake.gpus
    fake.clock.t_s = 2.0
    fake.set_power(h100, 300.0)
    fake.set_power(a100, 300.0)
    fake.clock.t_s = 2.5
    assert nvml.nvmlDeviceGetPowerUsage(h100) == 200_000  # half a second at 100, half at 300
    assert nvml.nvmlDeviceGetPowerUsage(a100) == 300_000


def test_field_values_honour_scope_and_carry_their_own_return_code():
    fake, nvml = _module(FakeGpu(name="NVIDIA GH200 480GB", arch=9, gpu_scope=False, power_w=250.0))
    gpu_scope, module_scope = nvml.nvmlDeviceGetFieldValues(
        fake.gpus[0], [(nvml.NVML_FI_DEV_POWER_INSTANT, 0), (nvml.NVML_FI_DEV_POWER_INSTANT, 1)]
    )
    assert gpu_scope.nvmlReturn == nvml.NVML_ERROR_NOT_SUPPORTED
    assert module_scope.nvmlReturn == nvml.NVML_SUCCESS and module_scope.value.uiVal == 250_000


def test_a_field_can_fail_mid_run_while_the_call_succeeds():
    fake, nvml = _module(FakeGpu())
    fake.gpus[0].fail("field:186", "TIMEOUT", times=1)
    (failed,) = nvml.nvmlDeviceGetFieldValues(fake.gpus[0], [nvml.NVML_FI_DEV_POWER_INSTANT])
    (ok,) = nvml.nvmlDeviceGetFieldValues(fake.gpus[0], [nvml.NVML_FI_DEV_POWER_INSTANT])
    assert (failed.nvmlReturn, ok.nvmlReturn) == (nvml.NVML_ERROR_TIMEOUT, nvml.NVML_SUCCESS)


@pytest.mark.parametrize("error", ["GPU_IS_LOST", "RESET_REQUIRED"])
def test_a_gpu_fallen_off_the_bus_never_answers_again(error):
    fake, nvml = _module(FakeGpu())
    fake.gpus[0].fail("nvmlDeviceGetPowerUsage", error, times=1)
    with pytest.raises(nvml.NVMLError):
        nvml.nvmlDeviceGetPowerUsage(fake.gpus[0])
    for _ in range(3):  # any call, for good
        with pytest.raises(nvml.NVMLError) as err:
            nvml.nvmlDeviceGetTotalEnergyConsumption(fake.gpus[0])
        assert err.value.value == getattr(nvml, f"NVML_ERROR_{error}")


def test_errors_are_pynvml_style_subclasses_of_the_fakes_own_nvmlerror():
    import pynvml as installed

    _, nvml = _module(FakeGpu())
    err = nvml.NVMLError(nvml.NVML_ERROR_NO_PERMISSION)
    assert isinstance(err, nvml.NVMLError_NoPermission) and str(err) == "Insufficient Permissions"
    assert nvml.NVMLError is not installed.NVMLError
    assert not hasattr(nvml, "NVML_VALUE_TYPE_UNSIGNED_SHORT")  # as in nvidia-ml-py 12.535.77


def test_every_call_takes_time():
    fake, nvml = _module(FakeGpu(), call_s=0.002)
    start = time.monotonic()
    for _ in range(10):
        nvml.nvmlDeviceGetPowerUsage(fake.gpus[0])
    assert time.monotonic() - start >= 10 * 0.002
