"""CodeCarbon interop: import its emissions.csv into the ledger, export runs in that format.

What an imported run can claim. CodeCarbon's CSV does not record how each figure was
obtained, so every domain gets the least direct provenance it may have:
- cpu: `estimated`. CodeCarbon reads RAPL where it can, else models TDP × load; the
  file does not say which.
- gpu: `sampled`. CodeCarbon reads NVML's energy counter where the GPU has one, but
  before mlco2/codecarbon#401 (2023) always, and since 3.3.2 on GPUs without the
  counter (mlco2/codecarbon#1319), it integrates power over time.
- ram: `estimated`. CodeCarbon always models memory power, it never measures it.
CodeCarbon multiplies every energy by the PUE it was given; the ledger keeps device
energy (reports apply PUE), so imported energies are divided by the file's `pue`.
CodeCarbon writes `timestamp` in local time without a zone (at the end of the run);
such timestamps are read as this machine's local time, the original kept in metadata.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NamedTuple

from joulemeter.meter.errors import ImportFormatError, InputLimitError
from joulemeter.meter.export import spreadsheet_safe, write_text
from joulemeter.meter.limits import NAME_MAX_CHARS, check_metadata
from joulemeter.meter.run import Domain, DomainEnergy, Location, Provenance, Run, Status
from joulemeter.meter.units import J_PER_KWH
from joulemeter.reports.accounting import footprint
from joulemeter.reports.factors import Factors, factors_for_run, region_in_country, resolve_factors

if TYPE_CHECKING:
    from joulemeter.meter.store import Ledger

log = logging.getLogger("joulemeter.codecarbon")

#: The header of CodeCarbon's emissions.csv: the field order of its EmissionsData
#: dataclass (codecarbon/output_methods/emissions_data.py, codecarbon 3.3.2), which
#: its FileOutput writes as the CSV header. tests/test_codecarbon.py checks it
#: against the installed codecarbon.
CODECARBON_COLUMNS: tuple[str, ...] = (
    "timestamp", "project_name", "run_id", "experiment_id", "duration", "emissions",
    "emissions_rate", "cpu_power", "gpu_power", "ram_power", "cpu_energy", "gpu_energy",
    "ram_energy", "energy_consumed", "water_consumed", "country_name", "country_iso_code",
    "region", "cloud_provider", "cloud_region", "os", "python_version", "codecarbon_version",
    "cpu_count", "cpu_model", "gpu_count", "gpu_model", "longitude", "latitude",
    "ram_total_size", "tracking_mode", "cpu_utilization_percent", "gpu_utilization_percent",
    "ram_utilization_percent", "ram_used_gb", "on_cloud", "pue", "wue",
)  # fmt: skip

#: Columns an import cannot do without; older CodeCarbon files lack some of the rest.
REQUIRED_COLUMNS: tuple[str, ...] = (
    "timestamp", "project_name", "run_id", "duration", "cpu_energy", "gpu_energy", "ram_energy",
)  # fmt: skip

#: CodeCarbon's timestamp format (`datetime.now().strftime(...)`, local time, no zone).
CODECARBON_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"

#: The most energy one row may claim, in kWh: the world's whole yearly electricity
#: generation, 29,471 TWh in 2023 (Ember, Global Electricity Review 2024,
#: https://ember-energy.org/latest-insights/global-electricity-review-2024/). Beyond it a
#: row is a unit error or a corrupted file, and would store infinite joules.
MAX_ROW_ENERGY_KWH = 2.9471e10
#: PUE is facility energy over IT energy, so at least 1 by definition (The Green Grid,
#: White Paper #49, "PUE: a comprehensive examination of the metric", 2012).
MIN_PUE = 1.0
#: Timestamps and run starts must fall between the Unix epoch and a day past this
#: machine's clock: earlier times predate any energy tracker, later ones are yet to come.
_EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)
_CLOCK_SLACK = timedelta(days=1)

_IMPORT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_OID, "joulemeter.codecarbon.import")  # ids of imported rows
_ENERGY_TOLERANCE = 1e-6  # relative: energy_consumed vs cpu + gpu + ram, as CodeCarbon prints floats


@dataclass(frozen=True)
class _Component:
    """One of CodeCarbon's three components (columns `<domain>_energy`, `<domain>_power`).

    On import it becomes the domain `domain`; on export it sums the domain kinds `kinds`.
    """

    domain: str  # joulemeter domain name and kind
    kinds: tuple[str, ...]
    provenance: Provenance
    method: str

    @property
    def energy_column(self) -> str:
        return f"{self.domain}_energy"

    @property
    def power_column(self) -> str:
        return f"{self.domain}_power"


_COMPONENTS = (
    _Component(
        "cpu", ("cpu", "psys"), Provenance.ESTIMATED,  # psys to cpu, as CodeCarbon's rapl_prefer_psys
        "imported from CodeCarbon: RAPL counter or TDP × load model (its CSV does not say which)",
    ),
    _Component(
        "gpu", ("gpu",), Provenance.SAMPLED,
        "imported from CodeCarbon: NVML energy counter, or power × time on GPUs without one "
        "(its CSV does not say which)",
    ),
    _Component(
        "ram", ("ram", "dram"), Provenance.ESTIMATED,
        "imported from CodeCarbon: memory power model, not a measurement",
    ),
)  # fmt: skip

#: Descriptive columns of an imported CodeCarbon row, written back as they were on
#: export (joulemeter's own values fill them for runs it metered).
_PASSTHROUGH_COLUMNS = (
    "experiment_id", "cloud_provider", "cloud_region", "os", "python_version",
    "codecarbon_version", "cpu_count", "cpu_model", "gpu_count", "gpu_model", "longitude",
    "latitude", "ram_total_size", "tracking_mode", "cpu_utilization_percent",
    "gpu_utilization_percent", "ram_utilization_percent", "ram_used_gb", "on_cloud",
)  # fmt: skip


# -- import ---------------------------------------------------------------------------
class ImportResult(NamedTuple):
    """What an import wrote, and the rows it skipped because an earlier import saved them."""

    imported: list[Run]
    already_in_ledger: list[Run]


def import_codecarbon_csv(path: str | os.PathLike[str], ledger: Ledger) -> ImportResult:
    """Save each row of a CodeCarbon emissions.csv as a completed run.

    Every row is checked before anything is written: a malformed file raises
    ImportFormatError naming the file, line and column; rows are saved in one transaction,
    so the ledger never holds part of a file. A row's run id is derived from the row
    (CodeCarbon's run_id, timestamp and duration), so importing a file again adds nothing twice.
    """
    runs = read_codecarbon_csv(path)
    present_ids = ledger.existing_ids(run.id for run in runs)
    present = [run for run in runs if run.id in present_ids]
    new = [run for run in runs if run.id not in present_ids]
    ledger.save_runs(new)  # one transaction: all new rows or none
    log.info("imported %d run(s) from %s; %d already in the ledger", len(new), path, len(present))
    return ImportResult(new, present)


def read_codecarbon_csv(path: str | os.PathLike[str]) -> list[Run]:
    """Parse and check a CodeCarbon emissions.csv into runs, without touching any ledger."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ImportFormatError(
            f"{path} is not a text CSV file (not UTF-8); give the emissions.csv CodeCarbon wrote"
        ) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = _read_header(path, reader)
        runs = [
            _row_to_run(path, reader.line_num, header, fields)
            for fields in reader
            if fields  # a blank line
        ]
    except csv.Error as exc:
        raise ImportFormatError(f"{path}, line {reader.line_num}: not a readable CSV ({exc})") from None
    if not runs:
        raise ImportFormatError(f"{path} has a header but no rows: there is nothing to import")
    return runs


def _read_header(path: Path, reader: Any) -> list[str]:
    header = next(reader, None)
    if not header or not any(h.strip() for h in header):
        raise ImportFormatError(f"{path} is empty: give the emissions.csv CodeCarbon wrote")
    header = [h.strip() for h in header]
    duplicated = sorted({h for h in header if header.count(h) > 1})
    if duplicated:
        raise ImportFormatError(f"{path}, line 1: column(s) {', '.join(duplicated)} appear twice")
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        hint = ""
        if len(header) == 1:
            for sep, name in ((";", "semicolons"), ("\t", "tabs")):
                if sep in header[0]:
                    hint = f"; it separates fields with {name}, CodeCarbon's emissions.csv uses commas"
        raise ImportFormatError(
            f"{path}, line 1: missing column(s) {', '.join(missing)}{hint}. "
            "Is this CodeCarbon's emissions.csv? Nothing was imported."
        )
    return header


class _Row:
    """One data row of the file, with checked accessors that name its line and column on error."""

    def __init__(self, path: Path, line: int, header: list[str], fields: list[str]) -> None:
        self.path, self.line = path, line
        if len(fields) != len(header):
            raise ImportFormatError(
                f"{path}, line {line}: {len(fields)} fields where the header has {len(header)}; "
                "the row is cut short or has extra commas. Nothing was imported."
            )
        self.values = dict(zip(header, (f.strip() for f in fields)))

    def text(self, column: str) -> str | None:
        return self.values.get(column) or None

    def number(self, column: str, *, required: bool = False, positive: bool = False) -> float | None:
        """A finite number ≥ 0 (> 0 if `positive`); None if the cell is empty and not required."""
        text = self.values.get(column, "")
        if text == "":
            if required:
                raise self.error(column, "is empty")
            return None
        try:
            value = float(text)
        except ValueError:
            raise self.error(column, f"{text!r} is not a number") from None
        if not math.isfinite(value):
            raise self.error(column, f"{text!r} is not a finite number")
        if value < 0 or (positive and value == 0):
            raise self.error(column, f"{text!r} must be {'> 0' if positive else '≥ 0'}")
        return value

    def end_time(self) -> datetime:
        """`timestamp` in UTC; one without a zone is read as local time, as CodeCarbon writes it.
        It must lie between 1970 and a day past this machine's clock."""
        text = self.values["timestamp"]
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise self.error("timestamp", f"{text!r} is not an ISO 8601 time") from None
        latest = datetime.now(timezone.utc) + _CLOCK_SLACK
        if not _EARLIEST.year <= moment.year <= latest.year:  # before astimezone, which overflows near year 1
            raise self.error("timestamp", f"{text!r} is not between 1970 and now")
        try:
            moment = moment.astimezone(timezone.utc)  # naive: astimezone assumes local time
        except (OverflowError, OSError, ValueError):
            raise self.error("timestamp", f"{text!r} cannot be read as a time on this machine") from None
        if not _EARLIEST <= moment <= latest:
            raise self.error("timestamp", f"{text!r} is not between 1970 and now")
        return moment

    def check_text(self, column: str, max_chars: int = NAME_MAX_CHARS) -> None:
        """The cell must fit the bound a run's names have (joulemeter.meter.limits)."""
        text = self.values.get(column) or ""
        if len(text) > max_chars:
            raise self.error(column, f"{len(text):,} characters, beyond the {max_chars:,} a name may have")

    def error(self, column: str, problem: str) -> ImportFormatError:
        return ImportFormatError(
            f"{self.path}, line {self.line}, column {column!r}: {problem}. "
            "Fix the file and import again; nothing was imported."
        )


def _row_to_run(path: Path, line: int, header: list[str], fields: list[str]) -> Run:
    """One CSV row as a completed Run, or ImportFormatError naming the bad column."""
    row = _Row(path, line, header, fields)
    duration_s = row.number("duration", required=True) or 0.0
    energy_kwh = {c.domain: row.number(c.energy_column, required=True) or 0.0 for c in _COMPONENTS}
    total_kwh = row.number("energy_consumed")
    if total_kwh is not None and not math.isclose(
        total_kwh, sum(energy_kwh.values()), rel_tol=_ENERGY_TOLERANCE, abs_tol=1e-15
    ):
        raise row.error(
            "energy_consumed",
            f"{total_kwh} kWh is not cpu + gpu + ram = {sum(energy_kwh.values())} kWh "
            "(are the row's columns shifted?)",
        )
    for column, value in [*((c.energy_column, energy_kwh[c.domain]) for c in _COMPONENTS), ("energy_consumed", total_kwh)]:
        if value is not None and value > MAX_ROW_ENERGY_KWH:
            raise row.error(column, f"{value:g} kWh is more than the world's yearly electricity "
                            f"({MAX_ROW_ENERGY_KWH:g} kWh); is the column in another unit?")
    pue = row.number("pue", positive=True) or 1.0
    if pue < MIN_PUE:
        raise row.error("pue", f"{pue:g} is below {MIN_PUE:g}, which no PUE can be (facility energy ÷ IT energy)")
    has_gpu = bool(row.number("gpu_count")) or energy_kwh["gpu"] > 0
    ended = row.end_time()
    if ended.timestamp() - duration_s < _EARLIEST.timestamp():
        raise row.error("duration", f"{duration_s:g} s would start the run before 1970")
    row.check_text("project_name")

    domains, energy = [], {}
    for component in _COMPONENTS:
        if component.domain == "gpu" and not has_gpu:
            continue
        kwh = energy_kwh[component.domain]
        domain = Domain(
            name=component.domain,
            kind=component.domain,
            device=_device_name(component.domain, row),
            provenance=component.provenance,
            method=component.method,
            note=(
                "CodeCarbon reported 0 kWh for a GPU it saw: it does so where the GPU lacks an energy counter"
                if component.domain == "gpu" and kwh == 0
                else None
            ),
        )
        energy_j = kwh * J_PER_KWH / pue
        avg_power_w = energy_j / duration_s if duration_s > 0 else None
        if avg_power_w is not None and not math.isfinite(avg_power_w):
            raise row.error("duration", f"{duration_s:g} s is too short for {kwh:g} kWh of {component.domain} energy")
        domains.append(domain)
        energy[domain.name] = DomainEnergy(
            domain=domain.name,
            energy_j=energy_j,
            provenance=component.provenance,
            avg_power_w=avg_power_w,
            peak_power_w=None,
        )
    project = row.text("project_name") or "default"
    identity = "\x1f".join(row.values.get(c, "") for c in ("run_id", "timestamp", "duration"))
    metadata = {
        "imported_from": "codecarbon",
        "source_file": str(path),
        "source_line": line,
        "codecarbon_run_id": row.text("run_id"),
        "country": row.text("country_iso_code"),
        "region": row.text("region"),
        "codecarbon": row.values,  # the row as written, for audit and faithful re-export
    }
    try:
        check_metadata(metadata)
    except InputLimitError as exc:
        raise row.error("(the whole row)", f"too long to keep: {exc}") from None
    return Run(
        id=uuid.uuid5(_IMPORT_NAMESPACE, identity).hex,  # the same row always gets the same id
        name=project,
        project=project,
        tags=["codecarbon"],
        status=Status.COMPLETED,
        started_at=_iso_utc(ended - timedelta(seconds=duration_s)),
        ended_at=_iso_utc(ended),
        duration_s=duration_s,
        host=_host(row),
        domains=domains,
        energy=energy,
        metadata=metadata,
        location=_location(row),
    )


def _location(row: _Row) -> Location | None:
    """Where CodeCarbon said the run ran: its country (ISO alpha-3), its region (a US state or
    Canadian province, as a grid code where one matches in that country) and its cloud."""
    country, region = row.text("country_iso_code"), row.text("region")
    provider, cloud_region = row.text("cloud_provider"), row.text("cloud_region")
    if not (country or region or provider or cloud_region):
        return None
    grid = region_in_country(region, country) if region and country else None
    return Location(country=country or None, region=grid or region or None, cloud_provider=provider or None,
                    cloud_region=cloud_region or None, source="codecarbon")


def _iso_utc(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds")


def _device_name(domain: str, row: _Row) -> str:
    if domain == "cpu":
        return row.text("cpu_model") or "CPU (model not recorded)"
    if domain == "gpu":
        return row.text("gpu_model") or "GPU (model not recorded)"
    size_gb = _optional_number(row, "ram_total_size")
    return f"{size_gb:.1f} GB RAM" if size_gb is not None else "RAM"


def _host(row: _Row) -> dict[str, Any]:
    """The host fields CodeCarbon records, under meter.hostinfo's key names; unknown is None."""
    gpu_model = row.text("gpu_model")
    host = {key: read(row, column) for key, column, read in _HOST_COLUMNS}
    return host | {"gpus": [gpu_model] if gpu_model else []}


def _optional_number(row: _Row, column: str) -> float | None:
    """A descriptive number (CPU count, RAM size): None when absent or unreadable, never an error."""
    try:
        return row.number(column)
    except ImportFormatError:
        return None


def _optional_count(row: _Row, column: str) -> int | None:
    """A descriptive whole number (CPU count): None when absent or unreadable."""
    number = _optional_number(row, column)
    return None if number is None else int(number)


#: The host facts CodeCarbon records, read on import and written on export alike: the key
#: in Run.host (meter.hostinfo's name), CodeCarbon's column, and how to read its cell.
_HOST_COLUMNS: tuple[tuple[str, str, Callable[[_Row, str], Any]], ...] = (
    ("os", "os", _Row.text),
    ("python", "python_version", _Row.text),
    ("cpu_model", "cpu_model", _Row.text),
    ("logical_cpus", "cpu_count", _optional_count),
    ("ram_gb", "ram_total_size", _optional_number),
)


# -- export ---------------------------------------------------------------------------
def export_codecarbon_csv(
    runs: Sequence[Run], dest: str | os.PathLike[str] | IO[str], *, factors: Factors | None = None
) -> None:
    """Write runs as CodeCarbon's emissions.csv (same columns and order, kWh, kg, W, s).

    Energies include the PUE, as CodeCarbon's do, and emissions use `factors`, else each
    run's country (metadata "country") if known, else the world average. Columns
    joulemeter has no figure for are left empty; rows of imported runs keep their own.
    """
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CODECARBON_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for run in runs:
        row = _codecarbon_row(run, factors)
        writer.writerow({k: "" if v is None else spreadsheet_safe(v) for k, v in row.items()})
    write_text(dest, buffer.getvalue())


def _codecarbon_row(run: Run, factors: Factors | None) -> dict[str, Any]:
    """One run as a CodeCarbon row; None where joulemeter does not know the value."""
    if factors is None:  # where the run ran; runs imported before ledger schema 2 kept it in metadata
        factors = factors_for_run(run) if run.location else resolve_factors(run.metadata.get("country"))
    by_kind = run.energy_by_kind_j()
    left_out = sorted(set(by_kind) - {k for c in _COMPONENTS for k in c.kinds})
    if left_out:
        log.warning("run %s: CodeCarbon has no column for %s energy; left out", run.id[:8], ", ".join(left_out))
    device_j = {c: sum(by_kind.get(k, 0.0) for k in c.kinds) for c in _COMPONENTS}
    facility_j = {c: j * factors.pue for c, j in device_j.items()}
    kg_co2e = footprint(sum(device_j.values()), factors).kg_co2e
    duration_s = run.duration_s

    def per_second(value: float) -> float | None:
        return value / duration_s if duration_s else None

    gpus = [d.device for d in run.domains if d.kind == "gpu"]
    row: dict[str, Any] = dict.fromkeys(CODECARBON_COLUMNS)
    row.update(
        timestamp=_codecarbon_timestamp(run),
        project_name=run.project,
        run_id=run.metadata.get("codecarbon_run_id") or _as_uuid(run.id),
        duration=duration_s,
        emissions=kg_co2e,
        emissions_rate=per_second(kg_co2e),
        **{c.power_column: per_second(j) for c, j in facility_j.items()},
        **{c.energy_column: j / J_PER_KWH for c, j in facility_j.items()},
        energy_consumed=sum(facility_j.values()) / J_PER_KWH,
        country_name=None if factors.intensity_is_default else factors.region_name,
        country_iso_code=None if factors.intensity_is_default else factors.region,
        region=run.location.region if run.location else run.metadata.get("region"),
        cloud_provider=run.location.cloud_provider if run.location else None,
        cloud_region=run.location.cloud_region if run.location else None,
        **{column: run.host.get(key) for key, column, _ in _HOST_COLUMNS},
        gpu_count=len(gpus),
        gpu_model=", ".join(f"{gpus.count(name)} x {name}" for name in dict.fromkeys(gpus)) or None,
        on_cloud="Y" if run.location and run.location.cloud_provider else "N",
        pue=factors.pue,
    )  # water_consumed and wue stay None: joulemeter does not account water
    imported = run.metadata.get("codecarbon") or {}
    row.update({column: imported[column] for column in _PASSTHROUGH_COLUMNS if imported.get(column)})
    return row


def _codecarbon_timestamp(run: Run) -> str | None:
    """The run's end in local time without a zone, as CodeCarbon writes it."""
    if run.ended_at:
        ended = datetime.fromisoformat(run.ended_at)
    elif run.started_at and run.duration_s is not None:
        ended = datetime.fromisoformat(run.started_at) + timedelta(seconds=run.duration_s)
    else:
        return None
    return ended.astimezone().strftime(CODECARBON_TIME_FORMAT)


def _as_uuid(run_id: str) -> str:
    """joulemeter's hex run id in CodeCarbon's dashed UUID form (unchanged if not a UUID)."""
    try:
        return str(uuid.UUID(hex=run_id))
    except ValueError:
        return run_id
