"""The data-table loader: each cited CSV read once into frozen records, a bad row named by file, line and column."""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from joulemeter.meter.errors import FactorError
from joulemeter.meter.run import Provenance
from joulemeter.meter.sources.estimate import PowerModelFigure
from joulemeter.meter.tables import Citation, load_table, read_rows
from joulemeter.reports.accounting import UncertaintyBand
from joulemeter.reports.estimates import Hardware, PublishedRun
from joulemeter.reports.factors import EquivalenceFactor, EuMember, Price, PuePreset, RegionAlias, data_table

HEADER = "name,power_w,aliases,count,shipped,kind,source,year,url"
GOOD = "V100,300,V100 SXM2; Tesla V100,,yes,gpu,NVIDIA datasheet,2017,https://nvidia.com"


@dataclass(frozen=True)
class Board:
    name: str
    power_w: float
    aliases: tuple[str, ...]
    count: int | None
    shipped: bool
    kind: Literal["gpu", "tpu"]
    citation: Citation


@dataclass(frozen=True)
class Preset:
    name: str
    citation: Citation | None


@pytest.fixture
def write_table(tmp_path, monkeypatch):
    """Write a CSV into a throwaway package's data/ folder; returns (package, file name, path)."""
    package = f"jm_tables_{uuid.uuid4().hex}"
    (tmp_path / package / "data").mkdir(parents=True)
    (tmp_path / package / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(*lines: str) -> tuple[str, str, Path]:
        path = tmp_path / package / "data" / "boards.csv"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return package, "boards.csv", path

    return write


def _load_error(package: str, name: str, record: type = Board) -> str:
    with pytest.raises(FactorError) as caught:
        load_table(package, name, record)
    return str(caught.value)


def test_a_good_row_loads_into_a_frozen_record_with_typed_fields(write_table):
    package, name, _ = write_table(HEADER, GOOD, "TPU-v3,450,,512,no,tpu,Google,2021,")
    v100, tpu = load_table(package, name, Board)
    assert v100 == Board("V100", 300.0, ("V100 SXM2", "Tesla V100"), None, True, "gpu",
                         Citation("NVIDIA datasheet", 2017, "https://nvidia.com"))
    assert tpu.count == 512 and tpu.aliases == () and tpu.shipped is False and tpu.citation.url is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        v100.power_w = 1.0  # type: ignore[misc]


def test_a_non_numeric_value_names_the_file_the_line_and_the_column(write_table):
    package, name, path = write_table(HEADER, GOOD, GOOD.replace(",300,", ",about 300,"))
    message = _load_error(package, name)
    assert str(path) in message and "line 3" in message and "'power_w'" in message and "about 300" in message


def test_a_missing_column_is_named(write_table):
    package, name, path = write_table(HEADER.replace(",kind", ""), GOOD.replace(",gpu", ""))
    message = _load_error(package, name)
    assert str(path) in message and "'kind'" in message and "missing" in message


@pytest.mark.parametrize("column, row", [
    ("source", GOOD.replace("NVIDIA datasheet", "")),
    ("year", GOOD.replace("2017", "")),
])
def test_a_figure_without_its_source_or_year_is_refused_on_its_line(write_table, column, row):
    package, name, _ = write_table(HEADER, GOOD, GOOD, row)
    message = _load_error(package, name)
    assert "line 4" in message and f"'{column}'" in message


@pytest.mark.parametrize("column, row", [
    ("name", GOOD.replace("V100,300", ",300")),
    ("shipped", GOOD.replace(",yes,", ",maybe,")),
    ("kind", GOOD.replace(",gpu,", ",fpga,")),
    ("count", GOOD.replace("Tesla V100,,", "Tesla V100,2.5,")),
    ("power_w", GOOD.replace(",300,", ",nan,")),
    ("year", GOOD.replace("2017", "c. 2017")),
])
def test_an_empty_required_cell_or_a_value_outside_its_type_is_named(write_table, column, row):
    package, name, _ = write_table(HEADER, row)
    message = _load_error(package, name)
    assert "line 2" in message and f"'{column}'" in message


def test_a_row_with_more_cells_than_the_header_is_refused(write_table):
    package, name, _ = write_table(HEADER, GOOD + ",stray")
    assert "line 2" in _load_error(package, name)


def test_an_optional_citation_is_none_only_when_both_source_and_year_are_empty(write_table):
    package, name, _ = write_table("name,source,year", "device,,", "industry,Uptime,2024", "half,Uptime,")
    message = _load_error(package, name, Preset)
    assert "line 4" in message and "'year'" in message


def test_a_table_is_read_from_disk_once_however_often_it_is_asked_for(write_table):
    package, name, path = write_table(HEADER, GOOD)
    first = load_table(package, name, Board)
    assert read_rows(package, name)[0]["name"] == "V100"
    path.write_text(HEADER + "\n", encoding="utf-8")
    assert load_table(package, name, Board) is first
    assert len(read_rows(package, name)) == 1


@pytest.mark.parametrize("package, name, record", [
    ("joulemeter.reports", "equivalences.csv", EquivalenceFactor),
    ("joulemeter.reports", "eu_members.csv", EuMember),
    ("joulemeter.reports", "hardware.csv", Hardware),
    ("joulemeter.reports", "prices.csv", Price),
    ("joulemeter.reports", "published_runs.csv", PublishedRun),
    ("joulemeter.reports", "pue.csv", PuePreset),
    ("joulemeter.reports", "region_aliases.csv", RegionAlias),
    ("joulemeter.reports", "uncertainty.csv", UncertaintyBand),
    ("joulemeter.meter", "cpu_power_model.csv", PowerModelFigure),
])
def test_every_shipped_table_loads_whole_into_its_record(package, name, record):
    records = load_table(package, name, record)
    assert len(records) == len(read_rows(package, name)) > 0
    assert all(isinstance(r, record) for r in records)
    assert load_table(package, name, record) is records


def test_the_reports_tables_are_the_loader_s_records():
    assert data_table("hardware.csv", Hardware) is load_table("joulemeter.reports", "hardware.csv", Hardware)


def test_footprint_provenances_rank_after_every_domain_provenance():
    domain_kinds = (Provenance.COUNTER, Provenance.SAMPLED, Provenance.REPLAYED, Provenance.ESTIMATED)
    assert max(p.rank for p in domain_kinds) < Provenance.MIXED.rank < Provenance.PUBLISHED.rank
    assert Provenance.MIXED == "mixed" and Provenance.PUBLISHED == "published"
