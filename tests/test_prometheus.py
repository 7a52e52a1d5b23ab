"""The Prometheus exporter: live power and energy of a running meter, scraped over loopback."""

from __future__ import annotations

import socket
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from joulemeter.integrations.prometheus import PrometheusExporter
from joulemeter.meter import EnergyMeter, Provenance
from joulemeter.meter.errors import ExporterError
from tests.doubles import LinearCounterSource

GPU_POWER_W = 50.0
CPU_POWER_W = 12.0


def make_meter() -> tuple[EnergyMeter, LinearCounterSource]:
    gpu = LinearCounterSource(GPU_POWER_W)
    cpu = LinearCounterSource(CPU_POWER_W, domain="cpu", kind="cpu", provenance=Provenance.ESTIMATED)
    meter = EnergyMeter("prom-test", project="exporting", store=False, interval_s=0.01, sources=[gpu, cpu])
    return meter, gpu


def wait_for_reads(source: LinearCounterSource, more: int, timeout_s: float = 5.0) -> None:
    """Spin until the sampler has read `source` `more` more times (a condition, not a guess)."""
    target = source.reads + more
    deadline = time.monotonic() + timeout_s
    while source.reads < target:
        assert time.monotonic() < deadline, "the sampler stopped reading"


def scrape(exporter: PrometheusExporter) -> dict[tuple[str, str], tuple[float, dict[str, str]]]:
    """{(sample name, domain): (value, labels)} of joulemeter's series at exporter.url."""
    with urllib.request.urlopen(exporter.url, timeout=5) as response:
        text = response.read().decode()
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("joulemeter_"):
                found[(sample.name, sample.labels["domain"])] = (sample.value, sample.labels)
    return found


def test_scrapes_serve_power_and_a_growing_energy_counter_per_domain_with_run_labels():
    meter, gpu = make_meter()
    with meter, PrometheusExporter(meter, port=0) as exporter:
        wait_for_reads(gpu, 3)
        first = scrape(exporter)
        elapsed_after_first_s = meter.elapsed_s()
        wait_for_reads(gpu, 3)
        second = scrape(exporter)
        run = meter.run

    assert first[("joulemeter_power_watts", "gpu:0")][0] == GPU_POWER_W
    assert first[("joulemeter_power_watts", "cpu")][0] == CPU_POWER_W
    for domain, power_w in (("gpu:0", GPU_POWER_W), ("cpu", CPU_POWER_W)):
        energy_1 = first[("joulemeter_energy_joules_total", domain)][0]
        energy_2 = second[("joulemeter_energy_joules_total", domain)][0]
        # energy is read from the counter up to the latest reading: never above power × time so far
        assert 0 < energy_1 <= power_w * elapsed_after_first_s * (1 + 1e-9)
        assert energy_2 > energy_1
    _, labels = second[("joulemeter_energy_joules_total", "cpu")]
    assert labels == {
        "run_id": run.id,
        "run_name": "prom-test",
        "project": "exporting",
        "domain": "cpu",
        "kind": "cpu",
        "provenance": "estimated",
    }
    assert second[("joulemeter_power_watts", "gpu:0")][1]["provenance"] == "counter"


def test_an_exporter_started_before_the_meter_serves_no_series_until_the_run_starts():
    meter, gpu = make_meter()
    with PrometheusExporter(meter, port=0) as exporter:
        assert scrape(exporter) == {}
        with meter:
            wait_for_reads(gpu, 2)
            assert ("joulemeter_energy_joules_total", "gpu:0") in scrape(exporter)


def test_after_the_run_stops_the_counter_holds_the_run_s_final_energy():
    meter, gpu = make_meter()
    with PrometheusExporter(meter, port=0) as exporter:
        with meter:
            wait_for_reads(gpu, 2)
        final = scrape(exporter)
    for domain, energy in meter.run.energy.items():
        assert final[("joulemeter_energy_joules_total", domain)][0] == pytest.approx(energy.energy_j)


def test_the_exporter_leaves_prometheus_client_s_global_registry_alone():
    from prometheus_client import REGISTRY, generate_latest

    meter, gpu = make_meter()
    with meter, PrometheusExporter(meter, port=0):
        wait_for_reads(gpu, 2)
        assert b"joulemeter_" not in generate_latest(REGISTRY)


def test_a_port_already_in_use_gives_an_exporter_error_naming_it():
    meter, _ = make_meter()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ExporterError, match=f"127.0.0.1:{port}"):
            PrometheusExporter(meter, port=port).start()


def test_stop_frees_the_port_and_is_safe_to_call_twice():
    meter, _ = make_meter()
    exporter = PrometheusExporter(meter, port=0)
    exporter.start()
    port = exporter.port
    exporter.stop()
    exporter.stop()
    with socket.socket() as again:
        again.bind(("127.0.0.1", port))
