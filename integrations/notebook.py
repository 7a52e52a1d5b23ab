"""IPython/Jupyter: the `%%joulemeter` cell magic meters a cell and shows its footprint.

    %load_ext joulemeter      (the long name: joulemeter.integrations.notebook)

    %%joulemeter --name finetune --country FR
    trainer.train()

The cell runs as usual (output, errors and its value are shown as always), then a
small table shows the energy (J and kWh, with provenance), kg CO2e, cost when a price
is known, the energy per device and an everyday equivalence, with the factors' sources.
The run goes to the ledger (unless --no-store) and is kept in `_joulemeter_run`.
Options are checked before the cell runs: a bad one runs nothing.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

from IPython.core.magic import Magics, cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from joulemeter.meter.meter import EnergyMeter
from joulemeter.meter.run import Run, Status
from joulemeter.reports.accounting import Footprint, footprint
from joulemeter.reports.factors import Factors, resolve_factors
from joulemeter.reports.render import formatting as fmt

#: Name under which the latest cell's run is kept in the user namespace.
RUN_VARIABLE = "_joulemeter_run"


@dataclass(frozen=True)
class CellFootprint:
    """What the magic displays: a run's footprint, rendered as HTML or plain text."""

    run: Run
    footprint: Footprint

    def rows(self) -> list[tuple[str, str]]:
        """(label, value) lines shared by the HTML and text renderings."""
        fp, run = self.footprint, self.run
        energy = f"{fmt.energy(fp.energy_j)} ({fp.provenance})"
        facility = fmt.kwh(fp.energy_kwh)
        if fp.energy_kwh_range:
            facility += f" (range {fmt.kwh(fp.energy_kwh_range[0])} – {fmt.kwh(fp.energy_kwh_range[1])})"
        rows = [
            ("Run", f"{run.name} ({run.id[:8]}, {run.status.value})"),
            ("Duration", fmt.duration(run.duration_s)),
            ("Energy at the devices", energy),
            (f"Facility energy (PUE {fmt.number(fp.factors.pue)})", facility),
            ("Emissions", f"{fmt.co2e(fp.kg_co2e)} at {_intensity(fp.factors)}"),
        ]
        if fp.cost is not None:
            rows.append(("Cost", fmt.money(fp.cost, fp.currency)))
        for name, e in run.energy.items():
            rows.append((f"  {name}", f"{fmt.energy(e.energy_j)} ({e.provenance.value}), avg {fmt.power(e.avg_power_w)}"))
        best = fp.best_equivalence()
        if best is not None:
            rows.append(("Equivalent to", f"{best.text} [{best.citation}]"))
        return rows

    def sources(self) -> list[str]:
        """The sources of the factors used, in words."""
        f = self.footprint.factors
        lines = [f"Grid intensity: {f.intensity_citation}"]
        if f.pue_citation is not None:
            lines.append(f"PUE: {f.pue_citation}")
        if f.price_citation is not None:
            lines.append(f"Price: {f.price_citation}")
        return lines

    def __str__(self) -> str:
        width = max(len(label) for label, _ in self.rows())
        lines = [f"{label:<{width}}  {value}" for label, value in self.rows()]
        return "\n".join(lines + [f"Sources: {'; '.join(self.sources())}"])

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))

    def _repr_html_(self) -> str:
        cells = "".join(
            f"<tr><th style='text-align:left'>{html.escape(label)}</th><td style='text-align:left'>"
            f"{html.escape(value)}</td></tr>"
            for label, value in self.rows()
        )
        sources = html.escape("; ".join(self.sources()))
        return f"<table class='joulemeter'>{cells}</table><small>Sources: {sources}</small>"


def _intensity(factors: Factors) -> str:
    text = f"{fmt.number(factors.intensity_g_per_kwh)} g CO2e/kWh ({factors.region_name})"
    return text + (", world average: pass --country" if factors.intensity_is_default else "")


@magics_class
class JoulemeterMagics(Magics):
    """The `%%joulemeter` cell magic."""

    last: CellFootprint | None = None

    @magic_arguments()
    @argument("--name", "-n", default="notebook-cell", help="run name")
    @argument("--country", "-c", default=None, help="country or region for grid intensity, e.g. FR, US-CA")
    @argument("--pue", default=None, help="PUE: a number or a data-centre type from the PUE table")
    @argument("--project", default="default", help="ledger project")
    @argument("--ledger", default=None, help="ledger path or URL (default: $JOULEMETER_LEDGER)")
    @argument("--no-store", action="store_true", help="keep the run in memory only")
    @argument("--replay", default=None, help="play a recorded power trace (CSV) instead of the hardware")
    @cell_magic
    def joulemeter(self, line: str, cell: str) -> None:
        """Meter this cell and show its energy, CO2e and cost."""
        from IPython.display import display

        options = parse_argstring(self.joulemeter, line)
        pue = _number_or_name(options.pue)
        factors = resolve_factors(options.country, pue=pue)  # bad input fails before the cell runs
        meter = EnergyMeter(
            options.name,
            project=options.project,
            ledger=options.ledger,
            store=not options.no_store,
            replay=options.replay,
            metadata={"source": "notebook cell"},
        )
        meter.start()
        result = None
        try:
            result = self.shell.run_cell(cell)
        finally:
            status, error = _status_of(result)
            run = meter.stop(status, error)
        self.shell.user_ns[RUN_VARIABLE] = run
        self.last = CellFootprint(run, footprint(run, factors))
        display(self.last)


def _number_or_name(value: str | None) -> float | str | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return value


def _status_of(result: Any) -> tuple[Status, str | None]:
    """The run's status from IPython's ExecutionResult (None: the cell never finished)."""
    if result is None:
        return Status.INTERRUPTED, "the cell did not finish"
    error = result.error_before_exec or result.error_in_exec
    if error is None:
        return Status.COMPLETED, None
    status = Status.INTERRUPTED if isinstance(error, (KeyboardInterrupt, SystemExit)) else Status.FAILED
    return status, f"{type(error).__name__}: {error}"


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext joulemeter` (or joulemeter.integrations.notebook) registers the magic."""
    ipython.register_magics(JoulemeterMagics)
