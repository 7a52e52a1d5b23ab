"""CodeCarbon interop: importing a real emissions.csv, refusing malformed ones whole, exporting its format."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import time
import warnings
from datetime import datetime, timedelta, timezone

import pytest
from typer.testing import CliRunner

from joulemeter.integrations.cli import app
from joulemeter.integrations.codecarbon import (
    CODECARBON_COLUMNS,
    export_codecarbon_csv,
    import_codecarbon_csv,
    read_codecarbon_csv,
)
from joulemeter.meter import EnergyMeter, Provenance
from joulemeter.meter.errors import ImportFormatError
from joulemeter.meter.store import open_ledger
from joulemeter.reports.factors import resolve_factors
from tests.doubles import LinearCounterSource

J_PER_KWH = 3.6e6  # 1 kWh = 3.6 MJ, by definition


@pytest.fixture(scope="module")
def codecarbon_csv(tmp_path_factory):
    """An emissions.csv written by the installed CodeCarbon around a short busy loop."""
    from codecarbon import OfflineEmissionsTracker

    out = tmp_path_factory.mktemp("codecarbon")
    with warnings.catch_warnings():  # 3.x deprecates save_to_file; 2.x lacks its replacement
        warnings.simplefilter("ignore", DeprecationWarning)
        tracker = OfflineEmissionsTracker(
            project_name="cc-busy",
            country_iso_code="FRA",
            output_dir=str(out),
            save_to_file=True,
            log_level="error",
            measure_power_secs=1,
            tracking_mode="process",
        )
    tracker.start()
    end = time.monotonic() + 1.2
    while time.monotonic() < end:
        pass
    tracker.stop()
    return out / "emissions.csv"


@pytest.fixture
def ledger(tmp_path, monkeypatch):
    monkeypatch.setenv("JOULEMETER_LEDGER", str(tmp_path / "default-ledger.sqlite"))
    with open_ledger(tmp_path / "ledger.sqlite") as book:
        yield book


def csv_rows(path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_rows(path, header: list[str], rows: list[dict[str, str]]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)


# -- import ---------------------------------------------------------------------------
def test_a_real_codecarbon_file_imports_its_energies_duration_and_place(codecarbon_csv, ledger):
    (row,) = csv_rows(codecarbon_csv)
    (run,) = import_codecarbon_csv(codecarbon_csv, ledger).imported

    stored = ledger.get_run(run.id)
    pue = float(row["pue"])
    for domain in ("cpu", "ram"):
        expected_j = float(row[f"{domain}_energy"]) * J_PER_KWH / pue
        assert stored.energy[domain].energy_j == pytest.approx(expected_j, rel=1e-12)
        assert stored.energy[domain].provenance is Provenance.ESTIMATED
    assert stored.total_energy_j == pytest.approx(float(row["energy_consumed"]) * J_PER_KWH / pue, rel=1e-9)
    assert "gpu" not in stored.energy  # this machine has no GPU: gpu_count is 0
    assert stored.duration_s == pytest.approx(float(row["duration"]))
    assert stored.project == "cc-busy"
    assert stored.metadata["imported_from"] == "codecarbon"
    assert stored.metadata["codecarbon_run_id"] == row["run_id"]
    assert stored.metadata["country"] == "FRA"
    ended = datetime.fromisoformat(row["timestamp"]).astimezone(timezone.utc)  # naive = local time
    assert datetime.fromisoformat(stored.ended_at) == ended
    started_expected = ended - timedelta(seconds=float(row["duration"]))
    assert abs(datetime.fromisoformat(stored.started_at) - started_expected) < timedelta(milliseconds=1)


def test_importing_the_same_file_twice_adds_each_row_once(codecarbon_csv, ledger):
    first = import_codecarbon_csv(codecarbon_csv, ledger)
    again = import_codecarbon_csv(codecarbon_csv, ledger)
    assert len(first.imported) == 1 and first.already_in_ledger == []
    assert again.imported == [] and [r.id for r in again.already_in_ledger] == [first.imported[0].id]
    assert [r.id for r in ledger.list_runs()] == [first.imported[0].id]


def test_energies_are_divided_by_the_pue_codecarbon_multiplied_them_by(codecarbon_csv, tmp_path):
    (row,) = csv_rows(codecarbon_csv)
    row.update(pue="1.5", cpu_energy="0.3", gpu_energy="0.6", ram_energy="0.15", energy_consumed="1.05", gpu_count="1")
    path = tmp_path / "pue.csv"
    write_rows(path, list(row), [row])

    (run,) = read_codecarbon_csv(path)

    assert run.energy["cpu"].energy_j == pytest.approx(0.3 * J_PER_KWH / 1.5)
    assert run.energy["gpu"].energy_j == pytest.approx(0.6 * J_PER_KWH / 1.5)
    assert run.energy["ram"].energy_j == pytest.approx(0.15 * J_PER_KWH / 1.5)
    assert run.energy["gpu"].provenance is Provenance.SAMPLED


def test_a_zone_less_timestamp_is_read_as_local_time_and_an_explicit_offset_is_kept(codecarbon_csv, tmp_path, monkeypatch):
    (row,) = csv_rows(codecarbon_csv)
    row.update(duration="60")
    local, offset = dict(row, timestamp="2024-03-01T12:00:00"), dict(row, timestamp="2024-03-01T12:00:00+02:00")
    path = tmp_path / "times.csv"
    write_rows(path, list(row), [local, offset])
    monkeypatch.setenv("TZ", "EST+05")  # 5 h behind UTC, no daylight saving
    time.tzset()
    try:
        local_run, offset_run = read_codecarbon_csv(path)
    finally:
        monkeypatch.undo()
        time.tzset()

    assert local_run.ended_at.startswith("2024-03-01T17:00:00")
    assert local_run.started_at.startswith("2024-03-01T16:59:00")
    assert offset_run.ended_at.startswith("2024-03-01T10:00:00")


def malformed_variants(row: dict[str, str]) -> dict[str, tuple[str, str, str]]:
    """Broken versions of a real file: {case: (file text, where the error is, column named)}."""
    header = list(row)
    values = list(row.values())

    def as_csv(columns, *rows):
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)
        return buffer.getvalue()

    def with_value(column, value, **others):
        changed = {column: value, **others}
        return [changed.get(c, row[c]) for c in header]

    without_cpu = [c for c in header if c != "cpu_energy"]
    shifted = values[:]
    shifted.insert(header.index("cpu_energy"), "10.0")
    return {
        "missing column": (as_csv(without_cpu, [row[c] for c in without_cpu]), "line 1", "cpu_energy"),
        "good row then non-numeric energy": (
            as_csv(header, values, with_value("gpu_energy", "n/a")), "line 3", "'gpu_energy'"
        ),
        "negative energy": (as_csv(header, with_value("ram_energy", "-0.001")), "line 2", "'ram_energy'"),
        "nan energy": (as_csv(header, with_value("cpu_energy", "nan")), "line 2", "'cpu_energy'"),
        "empty duration": (as_csv(header, with_value("duration", "")), "line 2", "'duration'"),
        "bad timestamp": (as_csv(header, with_value("timestamp", "yesterday")), "line 2", "'timestamp'"),
        "good row then an extra field": (as_csv(header, values, shifted), "line 3", "fields"),
        "energy_consumed disagrees": (
            as_csv(header, with_value("energy_consumed", "1.0")), "line 2", "'energy_consumed'"
        ),
        "pue below 1 (1e-320 made infinite joules)": (as_csv(header, with_value("pue", "1e-320")), "line 2", "'pue'"),
        "energy beyond the world's yearly electricity": (
            as_csv(header, with_value("cpu_energy", "1e300", energy_consumed="")), "line 2", "'cpu_energy'"
        ),
        "duration of 1e12 s": (as_csv(header, with_value("duration", "1e12")), "line 2", "'duration'"),
        "duration too short for its energy": (
            as_csv(header, with_value("duration", "1e-320", cpu_energy="1", energy_consumed="")), "line 2", "'duration'"
        ),
        "timestamp in year 1": (as_csv(header, with_value("timestamp", "0001-01-01T00:00:00")), "line 2", "'timestamp'"),
        "timestamp in year 9999": (as_csv(header, with_value("timestamp", "9999-12-31T23:59:59")), "line 2", "'timestamp'"),
        "project name past the name limit": (as_csv(header, with_value("project_name", "p" * 300)), "line 2", "'project_name'"),
        "empty file": ("", "empty", ""),
        "header only": (as_csv(header), "no rows", ""),
        "semicolons": (as_csv(header, values).replace(",", ";"), "line 1", "semicolons"),
    }


MALFORMED = (
    "missing column", "good row then non-numeric energy", "negative energy", "nan energy",
    "empty duration", "bad timestamp", "good row then an extra field", "energy_consumed disagrees",
    "empty file", "header only", "semicolons", "pue below 1 (1e-320 made infinite joules)",
    "energy beyond the world's yearly electricity", "duration of 1e12 s", "duration too short for its energy",
    "timestamp in year 1", "timestamp in year 9999", "project name past the name limit",
)  # fmt: skip


@pytest.mark.parametrize("case", MALFORMED)
def test_a_malformed_file_raises_import_format_error_naming_file_line_and_column_and_imports_nothing(
    case, codecarbon_csv, ledger, tmp_path
):
    (row,) = csv_rows(codecarbon_csv)
    text, where, column = malformed_variants(row)[case]
    path = tmp_path / "broken.csv"
    path.write_text(text)

    with pytest.raises(ImportFormatError) as caught:
        import_codecarbon_csv(path, ledger)

    message = str(caught.value)
    assert str(path) in message
    assert where in message
    assert column in message
    assert ledger.list_runs() == []


def test_a_binary_file_is_refused_as_not_a_text_csv(ledger, tmp_path):
    path = tmp_path / "emissions.csv"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe")
    with pytest.raises(ImportFormatError, match="not a text CSV"):
        import_codecarbon_csv(path, ledger)
    assert ledger.list_runs() == []


# -- export ---------------------------------------------------------------------------
def test_the_column_order_is_codecarbon_s_own(codecarbon_csv):
    from codecarbon.output_methods.emissions_data import EmissionsData

    assert list(CODECARBON_COLUMNS) == [f.name for f in dataclasses.fields(EmissionsData)]
    assert list(CODECARBON_COLUMNS) == list(csv_rows(codecarbon_csv)[0])


def test_an_imported_file_exported_again_keeps_its_energies_and_codecarbon_s_header(codecarbon_csv, ledger, tmp_path):
    (original,) = csv_rows(codecarbon_csv)
    runs = import_codecarbon_csv(codecarbon_csv, ledger).imported
    path = tmp_path / "exported.csv"
    export_codecarbon_csv(runs, path)

    with open(path, newline="") as f:
        assert next(csv.reader(f)) == list(CODECARBON_COLUMNS)
    (exported,) = csv_rows(path)
    for column in ("cpu_energy", "gpu_energy", "ram_energy", "energy_consumed", "duration"):
        assert float(exported[column]) == pytest.approx(float(original[column]), rel=1e-12, abs=1e-18)
    for column in ("run_id", "project_name", "country_iso_code", "timestamp"):
        assert exported[column] == original[column]
    (again,) = read_codecarbon_csv(path)
    for domain, energy in runs[0].energy.items():
        assert again.energy[domain].energy_j == pytest.approx(energy.energy_j, rel=1e-12)


def test_a_metered_run_exports_facility_kwh_and_emissions_that_reimport_to_its_device_energy(tmp_path):
    sources = [
        LinearCounterSource(200.0, domain="gpu:0", kind="gpu"),
        LinearCounterSource(40.0, domain="cpu:package-0", kind="cpu"),
        LinearCounterSource(8.0, domain="dram:0", kind="dram"),
    ]
    with EnergyMeter("export-me", project="p", store=False, interval_s=0.01, sources=sources) as m:
        end = time.monotonic() + 0.1
        while time.monotonic() < end:
            pass
    run = m.run
    factors = resolve_factors("FRA", pue=1.2)
    buffer = io.StringIO()
    export_codecarbon_csv([run], buffer, factors=factors)
    (row,) = csv.DictReader(io.StringIO(buffer.getvalue()))

    by_kind_kwh = {k: j * 1.2 / J_PER_KWH for k, j in run.energy_by_kind_j().items()}
    assert float(row["gpu_energy"]) == pytest.approx(by_kind_kwh["gpu"])
    assert float(row["cpu_energy"]) == pytest.approx(by_kind_kwh["cpu"])
    assert float(row["ram_energy"]) == pytest.approx(by_kind_kwh["dram"])
    assert float(row["emissions"]) == pytest.approx(
        float(row["energy_consumed"]) * factors.intensity_g_per_kwh / 1000
    )
    assert row["country_iso_code"] == "FRA" and row["pue"] == "1.2" and row["gpu_count"] == "1"
    path = tmp_path / "metered.csv"
    path.write_text(buffer.getvalue())
    (again,) = read_codecarbon_csv(path)
    assert again.energy["gpu"].energy_j == pytest.approx(run.energy["gpu:0"].energy_j)
    assert again.energy["cpu"].energy_j == pytest.approx(run.energy["cpu:package-0"].energy_j)
    assert again.energy["ram"].energy_j == pytest.approx(run.energy["dram:0"].energy_j)


# -- CLI --------------------------------------------------------------------------------
def test_cli_import_prints_the_new_run_ids_and_refuses_a_broken_file_with_exit_2(codecarbon_csv, tmp_path):
    ledger_path = tmp_path / "cli.sqlite"
    runner = CliRunner()

    result = runner.invoke(app, ["import", "codecarbon", str(codecarbon_csv), "--ledger", str(ledger_path), "--json"])
    assert result.exit_code == 0, result.output
    (imported,) = json.loads(result.stdout)
    with open_ledger(ledger_path) as book:
        assert [r.id for r in book.list_runs()] == [imported["id"]]

    broken = tmp_path / "broken.csv"
    broken.write_text("timestamp;duration\n2024-01-01T00:00:00;1\n")
    result = runner.invoke(app, ["import", "codecarbon", str(broken), "--ledger", str(ledger_path)])
    assert result.exit_code == 2
    assert "semicolons" in result.output
    with open_ledger(ledger_path) as book:
        assert len(book.list_runs()) == 1


def test_cli_import_of_a_poisoned_row_is_a_clear_error_and_runs_json_stays_valid(codecarbon_csv, tmp_path):
    from typer.testing import CliRunner

    from joulemeter.integrations.cli import app

    (row,) = csv_rows(codecarbon_csv)
    poisoned = tmp_path / "poisoned.csv"
    write_rows(poisoned, list(row), [row, dict(row, pue="1e-320")])
    ledger_path = str(tmp_path / "cli-ledger.sqlite")
    runner = CliRunner()
    result = runner.invoke(app, ["import", "codecarbon", str(poisoned), "--ledger", ledger_path])
    assert result.exit_code == 2 and "line 3, column 'pue'" in result.stderr
    assert "Traceback" not in result.output
    listed = runner.invoke(app, ["runs", "--json", "--ledger", ledger_path])
    assert json.loads(listed.stdout, parse_constant=lambda name: pytest.fail(f"{name} in JSON")) == []


def test_an_imported_run_keeps_codecarbons_place_as_its_location(codecarbon_csv, ledger, tmp_path):
    from joulemeter.reports.accounting import footprint

    (row,) = csv_rows(codecarbon_csv)
    placed = tmp_path / "placed.csv"
    write_rows(placed, list(row), [{**row, "country_iso_code": "USA", "region": "georgia",
                                    "cloud_provider": "gcp", "cloud_region": "us-east1"}])
    (run,) = import_codecarbon_csv(placed, ledger).imported
    location = ledger.get_run(run.id).location
    assert (location.country, location.region, location.source) == ("USA", "US-GA", "codecarbon")
    assert (location.cloud_provider, location.cloud_region) == ("gcp", "us-east1")
    assert footprint(ledger.get_run(run.id)).factors.region == "US-GA"  # the state, not the country Georgia
    (exported,) = csv_rows(_exported(ledger.get_run(run.id), tmp_path))
    assert (exported["region"], exported["cloud_region"]) == ("US-GA", "us-east1")


def _exported(run, tmp_path):
    from joulemeter.integrations.codecarbon import export_codecarbon_csv

    path = tmp_path / "out.csv"
    export_codecarbon_csv([run], path)
    return path
