"""Serve a running meter's live power and energy for Prometheus to scrape.

    with EnergyMeter("train") as m, PrometheusExporter(m, port=9464):
        ...

Two metric families, one series per domain, labelled with the run and how the domain
is measured (run_id, run_name, project, domain, kind, provenance):
- `joulemeter_power_watts` (gauge): the latest power reading; absent where none.
- `joulemeter_energy_joules_total` (counter): energy since the run started, read from
  the meter at scrape time, so it never runs ahead of or behind the meter's own figure.
The exporter uses its own registry, never prometheus_client's global one, and listens
on 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from joulemeter.meter.errors import ExporterError, MeterStateError

if TYPE_CHECKING:
    from prometheus_client.core import Metric

    from joulemeter.meter import EnergyMeter

log = logging.getLogger("joulemeter.prometheus")

LABELS = ("run_id", "run_name", "project", "domain", "kind", "provenance")


class MeterCollector:
    """A prometheus_client collector reading one EnergyMeter at each scrape."""

    def __init__(self, meter: EnergyMeter) -> None:
        self.meter = meter

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        try:
            run = self.meter.run
        except MeterStateError:  # not started yet: nothing to report
            return
        power = GaugeMetricFamily(
            "joulemeter_power_watts", "Latest power reading per domain (W).", labels=LABELS
        )
        energy = CounterMetricFamily(
            "joulemeter_energy_joules", "Energy per domain since the run started (J).", labels=LABELS
        )
        power_w = self.meter.power_now_w()
        energy_j = self.meter.energy_so_far_j()
        for domain in run.domains:
            labels = [run.id, run.name, run.project, domain.name, domain.kind, domain.provenance.value]
            if power_w.get(domain.name) is not None:
                power.add_metric(labels, power_w[domain.name])
            if domain.name in energy_j:
                energy.add_metric(labels, energy_j[domain.name])
        yield power
        yield energy


class PrometheusExporter:
    """An HTTP endpoint (`/metrics`) serving a meter's live power and energy.

    Create it before or after the meter starts; series appear once the meter runs and
    keep their final values after it stops, until the exporter stops. `port=0` picks a
    free port, readable from `port` after start().
    """

    def __init__(self, meter: EnergyMeter, port: int, addr: str = "127.0.0.1") -> None:
        self.meter = meter
        self.port = port
        self.addr = addr
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Where Prometheus should scrape."""
        return f"http://{self.addr}:{self.port}/metrics"

    def start(self) -> None:
        """Listen on addr:port in a daemon thread; ExporterError if the port cannot be bound."""
        from prometheus_client import CollectorRegistry, start_http_server

        if self._server is not None:
            return
        registry = CollectorRegistry(auto_describe=False)
        registry.register(MeterCollector(self.meter))
        try:
            self._server, self._thread = start_http_server(self.port, addr=self.addr, registry=registry)
        except OSError as exc:
            raise ExporterError(
                f"cannot serve Prometheus metrics on {self.addr}:{self.port} ({exc.strerror or exc}); "
                "stop what is listening there or choose another port",
                parameter="port",
            ) from None
        self.port = self._server.server_port
        log.info("serving Prometheus metrics at %s", self.url)

    def stop(self) -> None:
        """Stop serving and free the port. Safe to call twice."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> PrometheusExporter:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
