"""The data model's records: one definition of each field, for dicts, JSON, ledger rows and copies.

Records are generated from their own field types, so a field added to a dataclass is
covered by these round trips without touching this file.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import types
import typing
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from joulemeter.meter.run import Domain, DomainEnergy, Gap, Provenance, Run, Sample, Window, from_fields
from joulemeter.meter.store import open_ledger, schema

# "/" stays out of generated text so that a "node0/" prefix never collides with a name;
# NUL stays out because PostgreSQL refuses it in text.
text = st.text(st.characters(blacklist_characters="/\x00", codec="utf-8"), max_size=12)
finite = st.floats(allow_nan=False, allow_infinity=False)
json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | finite | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)


def values(hint: Any) -> st.SearchStrategy[Any]:
    """Any value of a field type of the model, as plain as JSON allows."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*(values(a) for a in args))
    if origin is list:
        return st.lists(values(args[0]), max_size=3)
    if origin is dict:
        return st.dictionaries(text, values(args[1]), max_size=3)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return st.sampled_from(list(hint))
    if dataclasses.is_dataclass(hint):
        return records(hint)
    strategies = {type(None): st.none(), float: finite, str: text, int: st.integers(), Any: json_value}
    return strategies[hint]


def records(cls: type) -> st.SearchStrategy[Any]:
    """Instances of a record with every field, defaulted ones included, drawn from its type."""
    hints = typing.get_type_hints(cls)
    return st.builds(cls, **{f.name: values(hints[f.name]) for f in dataclasses.fields(cls)})


RECORDS = [Domain, Sample, Gap, Window, DomainEnergy, Run]


@pytest.mark.parametrize("cls", RECORDS, ids=lambda c: c.__name__)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_every_record_reads_back_from_its_json_dict_equal_in_every_field(cls: type, data: st.DataObject) -> None:
    record = data.draw(records(cls))
    plain = json.loads(json.dumps(record.to_dict()))
    assert cls.from_dict(plain) == record


@settings(max_examples=30, deadline=None)
@given(records(Run))
def test_run_to_dict_keeps_its_derived_figures_and_from_dict_recomputes_them(run: Run) -> None:
    d = run.to_dict()
    assert d["total_energy_j"] == run.total_energy_j
    assert d["peak_power_w"] == run.peak_power_w
    assert d["total_provenance"] == (run.provenance.value if run.provenance else None)
    listed = run.to_dict(samples=False)
    assert listed["samples"] is None
    assert Run.from_dict(listed) == dataclasses.replace(run, samples=[])


def test_a_record_is_built_by_field_name_whatever_the_order_and_extra_keys() -> None:
    row = {"position": 3, "run_id": "r", "reason": "GPU lost", "end_s": None, "start_s": 1.5, "domain": "gpu:0"}
    assert from_fields(Gap, row) == Gap(domain="gpu:0", start_s=1.5, end_s=None, reason="GPU lost")


def test_a_record_that_gains_a_field_with_a_default_reads_old_dicts_and_round_trips_new_ones() -> None:
    rated = dataclasses.make_dataclass(
        "RatedDomain",
        [("rated_power_w", float | None, dataclasses.field(default=None))],
        bases=(Domain,),
        frozen=True,
    )
    old = Domain("gpu:0", "gpu", "H100", Provenance.COUNTER, "NVML").to_dict()
    assert rated.from_dict(old).rated_power_w is None
    new = rated.from_dict({**old, "rated_power_w": 700.0})
    assert new.rated_power_w == 700.0 and rated.from_dict(new.to_dict()) == new


# -- ledger rows ------------------------------------------------------------------------
STORED = {schema.domains: Domain, schema.energy: DomainEnergy, schema.windows: Window,
          schema.gaps: Gap, schema.samples: Sample}  # fmt: skip
BOOKKEEPING = {"id", "run_id", "position"}


@pytest.mark.parametrize("table", list(STORED), ids=lambda t: t.name)
def test_each_ledger_table_has_exactly_one_column_per_field_of_its_record(table) -> None:
    fields = {f.name for f in dataclasses.fields(STORED[table])}
    assert {c.name for c in table.c} - BOOKKEEPING == fields


def test_every_field_of_a_run_is_a_column_of_runs_or_a_table_of_its_own() -> None:
    homeless = [
        f.name for f in dataclasses.fields(Run)
        if f.name not in schema.runs.c and f.name not in schema.tables.tables
    ]  # fmt: skip
    assert homeless == []


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(run=records(Run))
def test_any_run_reads_back_from_the_ledger_equal_in_every_field(ledger_location: str, run: Run) -> None:
    run.id = uuid.uuid4().hex  # one ledger serves every example
    run.energy = {e.domain: e for e in run.energy.values()}  # the ledger keys energy by domain
    with open_ledger(ledger_location) as ledger:
        ledger.save_run(run)
        assert ledger.get_run(run.id) == run


# -- relabelled and shifted copies ------------------------------------------------------
def domain_names(run: Run) -> set[str]:
    """Every domain name a run mentions, wherever it appears."""
    return (
        {d.name for d in run.domains} | {e.domain for e in run.energy.values()} | set(run.energy)
        | {s.domain for s in run.samples} | {g.domain for g in run.gaps}
        | {name for w in run.windows for name in w.energy_j}
    )  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(records(Run))
def test_relabelling_renames_a_domain_everywhere_and_renaming_back_restores_the_run(run: Run) -> None:
    before = run.to_dict()
    names = {n: f"node0/{n}" for n in sorted(domain_names(run))[::2]}  # half of them
    moved = run.relabelled(names)
    assert domain_names(moved) == {names.get(n, n) for n in domain_names(run)}
    assert moved.total_energy_j == run.total_energy_j
    assert moved.relabelled({new: old for old, new in names.items()}) == run
    assert run.to_dict() == before  # the original is untouched


@settings(max_examples=60, deadline=None)
@given(records(Run), finite)
def test_shifting_moves_every_time_inside_the_run_and_nothing_else(run: Run, offset_s: float) -> None:
    before = run.to_dict()
    moved = run.shifted(offset_s)

    def later(t: float | None) -> float | None:
        return None if t is None else t + offset_s

    assert [s.t_s for s in moved.samples] == [s.t_s + offset_s for s in run.samples]
    assert [(g.start_s, g.end_s) for g in moved.gaps] == [(later(g.start_s), later(g.end_s)) for g in run.gaps]
    assert [(w.start_s, w.end_s) for w in moved.windows] == [
        (later(w.start_s), later(w.end_s)) for w in run.windows
    ]
    unmoved = dataclasses.replace(moved, samples=run.samples, gaps=run.gaps, windows=run.windows)
    assert unmoved == run
    assert [w.energy_j for w in moved.windows] == [w.energy_j for w in run.windows]
    assert run.to_dict() == before


def test_a_relabelled_shifted_window_shares_no_dict_with_the_original() -> None:
    run = Run("r", "job", windows=[Window("w", "w", 1.0, 2.0, {"gpu:0": 5.0}, {"steps": 1.0})])
    moved = run.relabelled({"gpu:0": "node0/rank0/gpu:0"}).shifted(0.5)
    moved.windows[0].energy_j["node0/rank0/gpu:0"] += 1.0
    moved.windows[0].units["steps"] += 1.0
    assert run.windows[0] == Window("w", "w", 1.0, 2.0, {"gpu:0": 5.0}, {"steps": 1.0})
    shifted = run.shifted(0.5)
    shifted.windows[0].units["steps"] += 1.0
    assert run.windows[0].units == {"steps": 1.0}


# -- frames -------------------------------------------------------------------------------
def test_windows_frame_has_a_column_per_window_field_with_energy_per_domain_and_units_spread() -> None:
    import pandas

    run = Run("r", "job", windows=[
        Window("train", "train", 0.0, 2.0, {"gpu:0": 5.0, "cpu": 1.0}, {"steps": 4.0}, note="n"),
        Window("eval", "eval", 2.0, None),
    ])  # fmt: skip
    frame = run.windows_frame()
    plain = {f.name for f in dataclasses.fields(Window)} - {"energy_j", "units"}
    assert plain | {"duration_s", "domain", "energy_j", "units_steps"} == set(frame.columns)
    assert frame["domain"].tolist()[:2] == ["gpu:0", "cpu"] and frame["energy_j"].tolist()[:2] == [5.0, 1.0]
    assert frame.loc[0, "duration_s"] == 2.0 and frame.loc[0, "note"] == "n"
    assert pandas.isna(frame.loc[2, "domain"]) and frame.loc[2, "name"] == "eval"
