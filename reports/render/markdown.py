"""A Markdown report (GitHub flavoured tables): the HTML report's figures without the plots.

User text is escaped so that a run named `<script>` or `a | b` cannot break a table or
inject HTML where the Markdown is rendered.
"""

from __future__ import annotations

import re
from collections.abc import Container

from joulemeter.reports.compare import per_unit_columns
from joulemeter.reports.render import formatting as fmt
from joulemeter.reports.render._report import Report, RunReport
from joulemeter.reports.render._tables import (
    domain_rows,
    frame_records,
    run_label,
    window_domains,
    window_groups,
)
from joulemeter.reports.render.terminal import visible
from joulemeter.reports.render.wording import verdict_words

_SPECIAL = re.compile(r"([\\`*_\[\]|~#>])")  # the punctuation that changes meaning mid-line
_ENTITY = re.compile(r"&(?=#?[0-9A-Za-z]+;)")  # an & that a renderer would read as an entity
_PLAIN_URL = re.compile(r"https?://[^\s<>]+")


def md_escape(text: object) -> str:
    """Text safe inside Markdown and its tables, escaped the Markdown way: '<' as &lt; (no
    HTML tag can open), an '&' only where it would start an entity ("&amp;" stays those
    five characters), Markdown punctuation backslash-escaped, line breaks as spaces, other
    control characters as their escapes (\\x1b), so the Markdown is safe in a terminal too.
    A plain '&' stays '&': "IEA Global Energy & CO2" reads as written, raw or rendered."""
    text = _ENTITY.sub("&amp;", str(text)).replace("<", "&lt;")
    text = visible(text.replace("\r", " ").replace("\n", " "))
    return _SPECIAL.sub(r"\\\1", text)


def render_md(report: Report) -> str:
    lines = [f"# {md_escape(report.title)}", ""]
    lines.append(
        f"Generated {report.generated_at} by joulemeter, factors for "
        f"{md_escape(report.factors.region_name)}; sources at the end."
    )
    for note in report.notes:  # a blank line between notes: one quote each, not one run-on paragraph
        lines += ["", f"> **Note:** {md_escape(note)}"]
    if report.comparison is not None:
        lines += _comparison(report)
    for rr in report.runs:
        lines += _run(rr)
    lines += _factors(report)
    return "\n".join(lines) + "\n"


def _table(head: list[str], rows: list[list[str]], right: Container[int] = ()) -> list[str]:
    """A GitHub-flavoured table; columns whose index is in `right` are right-aligned."""
    align = ["---:" if i in right else "---" for i in range(len(head))]
    out = ["| " + " | ".join(head) + " |", "| " + " | ".join(align) + " |"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return out + [""]


def _run(rr: RunReport) -> list[str]:
    run = rr.run
    lines = ["", f"## {md_escape(run.name)} ({run.id[:8]})", ""]
    lines.append(
        md_escape(f"project {run.project} · status {run.status.value} · started {run.started_at}")
    )
    lines.append("")
    lines += [f"> **Note:** {md_escape(note)}" for note in rr.notes]
    if rr.notes:
        lines.append("")
    lines += _table(
        ["Figure", "Value", "Provenance"],
        [[md_escape(f.label), md_escape(f.full_text), f.provenance] for f in rr.figures],
    )
    if rr.best is not None:
        lines += [
            f"≈ **{md_escape(rr.best.text)}** ({rr.footprint.provenance}; "
            f"{md_escape(str(rr.best.citation))})",
            "",
        ]
    lines += ["### Energy by domain", ""]
    lines += _table(
        ["Domain", "Device", "Measured by", "Provenance", "Energy", "Avg power", "Peak power"],
        [
            [md_escape(r["domain"]), md_escape(r["device"] or fmt.DASH),
             md_escape(r["method"] or fmt.DASH), r["provenance"], fmt.energy(r["energy_j"]),
             fmt.power(r["avg_power_w"]), fmt.power(r["peak_power_w"])]
            for r in domain_rows(run)
        ],
        right={4, 5, 6},
    )
    groups = window_groups(run)
    if groups:
        domains = window_domains(groups)
        provenance = {name: e.provenance.value for name, e in run.energy.items()}
        lines += ["### Energy by window", ""]
        lines += _table(
            ["Window", "Duration"]
            + [f"{md_escape(d)} ({provenance.get(d, 'unknown')})" for d in domains]
            + ["Total", "Units of work"],
            [
                [md_escape(g.label), fmt.duration(g.duration_s)]
                + [fmt.energy(g.energy_j.get(d)) for d in domains]
                + [fmt.energy(g.total_energy_j),
                   md_escape("; ".join(f"{fmt.count(c)} {u}" for u, c in g.units.items())
                             or fmt.DASH)]
                for g in groups
            ],
            right=set(range(1, len(domains) + 3)),
        )
    return lines


def _comparison(report: Report) -> list[str]:
    """The runs side by side, then their metadata with a row per key (a column per key
    would make a table 30 columns wide), then the ratios in words."""
    comparison = report.comparison
    assert comparison is not None
    per = comparison.per_column
    co2e_column, cost_column = per_unit_columns(per) if per else ("kg_co2e", "cost")
    per_label = f" {comparison.per_label}" if per else ""
    head = ["Run", "Provenance", "Energy"] + ([f"Energy{per_label}"] if per else [])
    head += ["vs baseline (95 % CI)", f"Emissions{per_label}", f"Cost{per_label}", "Duration"]
    records = frame_records(comparison.frame)
    rows = []
    for row in records:
        is_base = row["id"] == comparison.baseline_id
        verdict = "baseline" if is_base else verdict_words(row["ratio"], comparison.interval(row["id"]))
        rows.append(
            [md_escape(_run_name(row)), row["provenance"], fmt.energy(row["energy_j"])]
            + ([fmt.energy(row[per])] if per else [])
            + [verdict, fmt.co2e(row[co2e_column]), fmt.money(row[cost_column], row["currency"]),
               fmt.duration(row["duration_s"])]
        )
    lines = ["", "## Comparison", ""]
    lines += _table(head, rows, right=set(range(2, len(head))))
    lines += _metadata_rows(comparison.metadata_columns, records)
    lines += [f"- {md_escape(p)}" for p in comparison.phrases]
    lines += [f"- {md_escape(note)}" for note in comparison.notes]
    return lines


def _metadata_rows(keys: list[str], records: list[dict]) -> list[str]:
    """The compared runs' metadata: a row per key, a column per run."""
    if not keys:
        return []
    head = ["", *(md_escape(_run_name(row)) for row in records)]
    rows = [[md_escape(fmt.metadata_label(key)), *(md_escape(fmt.metadata_value(key, row[key])) for row in records)]
            for key in keys]
    return ["### Metadata", "", *_table(head, rows, right=set(range(1, len(head))))]


def _run_name(row: dict) -> str:
    return run_label(row["name"], row.get("variant"))


def _factors(report: Report) -> list[str]:
    lines = ["", "## Factors and sources", ""]
    lines += _table(
        ["Factor", "Value", "Source"],
        [
            [md_escape(f.label), md_escape(f.text),
             md_escape(f.source) + (f" <{f.url}>" if f.url and _PLAIN_URL.fullmatch(f.url) else "")]
            for f in report.factor_lines
        ],
    )
    lines.append(
        "Provenance: counter = hardware energy counter; sampled = power readings integrated "
        "over time; replayed = a recorded trace; estimated = a model, not a measurement. "
        "Facility electricity is device energy × PUE; emissions are facility electricity × "
        "grid intensity."
    )
    return lines
