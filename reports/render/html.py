"""A self-contained HTML report: one file, plots inline as SVG, no script, no URL
fetched (a Content-Security-Policy forbids it), every piece of user text escaped."""

from __future__ import annotations

import html

from joulemeter.meter.run import Provenance
from joulemeter.reports.compare import per_unit_columns
from joulemeter.reports.render import formatting as fmt
from joulemeter.reports.render import plots
from joulemeter.reports.render._report import Report, RunReport
from joulemeter.reports.render._tables import (
    domain_rows,
    frame_records,
    run_label,
    window_domains,
    window_groups,
)
from joulemeter.reports.render.wording import machine_load_note, verdict_words

_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; "
    "base-uri 'none'; form-action 'none'"
)
_PROVENANCE_HELP = {
    Provenance.COUNTER: "read from a hardware energy counter (NVML total energy, RAPL)",
    Provenance.SAMPLED: "power readings integrated over time",
    Provenance.REPLAYED: "a recorded power trace played back",
    Provenance.ESTIMATED: "a model (e.g. board power × utilisation), not a measurement",
    Provenance.MIXED: "domains measured in different ways; see the domain table",
}
_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
 margin:0;background:#f6f7f9;color:#1d2330;line-height:1.45}
main{max-width:1080px;margin:0 auto;padding:24px 28px 48px}
h1{font-size:1.7rem;margin:0 0 4px}h2{font-size:1.3rem;margin:28px 0 8px}
h3{font-size:1.05rem;margin:22px 0 6px;color:#394150}
.sub,.meta{color:#5b6472;font-size:.9rem;margin:2px 0}
section{background:#fff;border:1px solid #e1e4ea;border-radius:10px;padding:4px 22px 18px;
 margin:18px 0}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(220px,1fr));gap:10px;
 margin:12px 0}
.card{border:1px solid #e1e4ea;border-radius:8px;padding:8px 12px;background:#fbfcfd}
.card .label{font-size:.8rem;color:#5b6472}.card .detail{font-size:.78rem;color:#5b6472}.card .value{font-size:1.15rem;font-weight:600}
.prov{display:inline-block;font-size:.72rem;padding:0 6px;border-radius:9px;
 background:#e9ecf1;color:#394150;white-space:nowrap;font-weight:500}
.prov-counter{background:#dff3e4;color:#1b6b35}.prov-sampled{background:#dde9fb;color:#1d4f91}
.prov-replayed{background:#ece2f7;color:#5b2d8e}.prov-estimated{background:#fdebd3;color:#8a4b00}
.prov-mixed{background:#f1e4e4;color:#7a2e2e}
.equiv{font-size:1.05rem;background:#f0f6ff;border-left:4px solid #4a7fd1;padding:8px 12px;
 margin:10px 0}
.note{background:#fff6e0;border-left:4px solid #e0a400;padding:6px 12px;margin:6px 0;
 font-size:.92rem}
table{border-collapse:collapse;width:100%;font-size:.88rem;margin:6px 0 10px}
th,td{border-bottom:1px solid #e6e8ee;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#f2f4f7;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.baseline td{background:#f7f7f7;font-style:italic}
figure.plot{margin:6px 0;overflow-x:auto}
figure.plot svg{width:100%;min-width:560px;height:auto;display:block}
td.name{white-space:nowrap}
ul.phrases li{margin:3px 0}.scroll{overflow-x:auto}td.num{white-space:nowrap}
td.words{white-space:normal;min-width:9em}
footer{font-size:.85rem;color:#394150}footer td{overflow-wrap:anywhere}
details summary{cursor:pointer;font-weight:600;margin:10px 0}
dl{display:grid;grid-template-columns:fit-content(45%) minmax(0,1fr);gap:2px 14px;font-size:.88rem}
dt{color:#5b6472}dd{margin:0}dt,dd{overflow-wrap:anywhere}
"""


def render_html(report: Report) -> str:
    """The whole report as one HTML document."""
    body = [f"<header><h1>{escape_text(report.title)}</h1>", header_line(report), "</header>"]
    body += [f"<p class=\"note\">{escape_text(note)}</p>" for note in report.notes]
    if report.comparison is not None:
        body.append(comparison_section(report))
        for run_report in report.runs:
            body.append(run_section(run_report, collapsed=True))
    else:
        body.append(run_section(report.runs[0], collapsed=False))
    body.append(factors_footer(report))
    return document(report.title, body)


def document(title: str, parts: list[str], extra_css: str = "") -> str:
    """A self-contained page: the CSP that forbids scripts and remote fetches, our CSS, `parts`."""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"{_CSP}\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        "<meta name=\"generator\" content=\"joulemeter\">\n"
        f"<title>{escape_text(title)}</title>\n<style>{_CSS}{extra_css}</style></head>\n"
        "<body><main>\n" + "\n".join(part for part in parts if part) + "\n</main></body></html>\n"
    )


def header_line(report: Report) -> str:
    factors = report.factors
    return (
        f"<p class=\"sub\">Generated {escape_text(report.generated_at)} by joulemeter · factors for "
        f"{escape_text(factors.region_name)} ({escape_text(factors.region)}) · sources at the bottom</p>"
    )


# -- one run ---------------------------------------------------------------------------


def run_section(rr: RunReport, *, collapsed: bool) -> str:
    run = rr.run
    parts = [f"<h2>{escape_text(run.name)} <span class=\"meta\">{escape_text(run.id[:8])}</span></h2>", _run_meta(rr)]
    parts += [f"<p class=\"note\">{escape_text(note)}</p>" for note in rr.notes]
    cards = "".join(
        f"<div class=\"card\"><div class=\"label\">{escape_text(f.label)}</div>"
        f"<div class=\"value\">{escape_text(f.text)}</div>"
        + (f"<div class=\"detail\">{escape_text(f.detail)}</div>" if f.detail else "")
        + f"{badge(f.provenance)}</div>"
        for f in rr.figures
    )
    parts.append(f"<div class=\"cards\">{cards}</div>")
    if rr.best is not None:
        parts.append(
            f"<p class=\"equiv\">≈ {escape_text(rr.best.text)} {badge(rr.footprint.provenance)} "
            "<span class=\"meta\">(source at the bottom)</span></p>"
        )
    details = []
    if not collapsed:
        details.append(image(plots.power_over_time(run), "Power of each domain over time"))
    details.append(_domain_table(rr))
    if run.windows:
        if not collapsed:
            details.append(
                image(plots.energy_by_window(run), "Energy of each window split by domain")
            )
        details.append(_window_table(rr))
    details.append(_metadata(rr))
    if collapsed:
        parts.append(f"<details><summary>Domains, windows and metadata</summary>{''.join(details)}</details>")
    else:
        parts += details
    return "<section class=\"run\">" + "\n".join(parts) + "</section>"


def _run_meta(rr: RunReport) -> str:
    run = rr.run
    bits = [f"project {run.project}", f"status {run.status.value}"]
    if run.started_at:
        bits.append(f"started {run.started_at}")
    if run.metadata.get("variant"):
        bits.append(f"variant {run.metadata['variant']}")
    if run.host.get("hostname"):
        bits.append(f"host {run.host['hostname']}")
    if run.tags:
        bits.append("tags " + ", ".join(map(str, run.tags)))
    return f"<p class=\"meta\">{escape_text(' · '.join(bits))}</p>"


def _domain_table(rr: RunReport) -> str:
    run = rr.run
    total = run.total_energy_j
    rows = []
    for row in domain_rows(run):
        share = f"{row['energy_j'] / total:.0%}" if total else fmt.DASH
        rows.append(
            "<tr>"
            f"<td>{escape_text(row['domain'])}</td><td>{escape_text(row['device'] or fmt.DASH)}</td>"
            f"<td>{escape_text(row['method'] or fmt.DASH)}</td><td>{badge(row['provenance'])}</td>"
            f"<td class=\"num\">{escape_text(fmt.energy(row['energy_j']))}</td><td class=\"num\">{share}</td>"
            f"<td class=\"num\">{escape_text(fmt.power(row['avg_power_w']))}</td>"
            f"<td class=\"num\">{escape_text(fmt.power(row['peak_power_w']))}</td>"
            f"<td class=\"num\">{escape_text(fmt.power(row['idle_power_w']))}</td></tr>"
        )
    head = (
        "<tr><th>Domain</th><th>Device</th><th>Measured by</th><th>Provenance</th>"
        "<th>Energy</th><th>Share</th><th>Avg power</th><th>Peak power</th><th>Idle power</th></tr>"
    )
    return f"<h3>Energy by domain</h3>{table(head + ''.join(rows))}"


def _window_table(rr: RunReport) -> str:
    groups = window_groups(rr.run)
    domains = window_domains(groups)
    provenance = {name: e.provenance.value for name, e in rr.run.energy.items()}
    head = "<tr><th>Window</th><th>Duration</th>" + "".join(
        f"<th>{escape_text(d)} {badge(provenance.get(d))}</th>" for d in domains
    ) + "<th>Total</th><th>Units of work</th></tr>"
    rows = []
    for g in groups:
        cells = "".join(
            f"<td class=\"num\">{escape_text(fmt.energy(g.energy_j.get(d)))}</td>" for d in domains
        )
        units = "; ".join(
            f"{fmt.count(count)} {unit} ({fmt.energy(g.energy_per_unit_j(unit))}/"
            f"{unit.removesuffix('s')})"
            for unit, count in g.units.items()
        )
        rows.append(
            f"<tr><td>{escape_text(g.label)}</td><td class=\"num\">{escape_text(fmt.duration(g.duration_s))}</td>"
            f"{cells}<td class=\"num\">{escape_text(fmt.energy(g.total_energy_j))}</td>"
            f"<td>{escape_text(units or fmt.DASH)}</td></tr>"
        )
    return f"<h3>Energy by window</h3>{table(head + ''.join(rows))}"


def _metadata(rr: RunReport) -> str:
    items = [(k, v) for k, v in rr.run.metadata.items() if not isinstance(v, (dict, list))]
    if not items:
        return ""
    entries = "".join(
        f"<dt>{escape_text(fmt.metadata_label(k))}</dt><dd>{escape_text(fmt.metadata_value(k, v))}</dd>"
        for k, v in items
    )
    return f"<h3>Metadata</h3><dl>{entries}</dl>"


# -- several runs ---------------------------------------------------------------------


def comparison_section(report: Report) -> str:
    comparison = report.comparison
    assert comparison is not None
    records = frame_records(comparison.frame)
    per = comparison.per_column
    co2e_column, cost_column = per_unit_columns(per) if per else ("kg_co2e", "cost")
    per_label = f" {escape_text(comparison.per_label)}" if per else ""
    head = (
        "<tr><th>Run</th><th>Energy</th>"
        + (f"<th>Energy{per_label}</th>" if per else "")
        + f"<th>vs baseline (95 % CI)</th><th>Emissions{per_label}</th><th>Cost{per_label}</th>"
        + "<th>Duration</th></tr>"
    )
    rows = []
    for row in records:  # provenance rides with the name; average power is on each run's card
        is_base = row["id"] == comparison.baseline_id
        verdict = verdict_words(row["ratio"], comparison.interval(row["id"]))
        rows.append(
            f"<tr class=\"{'baseline' if is_base else 'other'}\"><td>{escape_text(_run_name(row))} "
            f"{badge(row['provenance'])}</td>"
            f"<td class=\"num\">{escape_text(fmt.energy(row['energy_j']))}</td>"
            + (f"<td class=\"num\">{escape_text(fmt.energy(row[per]))}</td>" if per else "")
            + f"<td class=\"num words\">{'baseline' if is_base else escape_text(verdict)}</td>"
            f"<td class=\"num\">{escape_text(fmt.co2e(row[co2e_column]))}</td>"
            f"<td class=\"num\">{escape_text(fmt.money(row[cost_column], row['currency']))}</td>"
            f"<td class=\"num\">{escape_text(fmt.duration(row['duration_s']))}</td></tr>"
        )
    phrases = "".join(f"<li>{escape_text(p)}</li>" for p in [*comparison.phrases, *comparison.notes])
    load = machine_load_note(comparison.intervals.values())
    parts = [
        "<section class=\"comparison\"><h2>Comparison</h2>",
        table(head + "".join(rows)),
        f"<ul class=\"phrases\">{phrases}</ul>",
        f"<p class=\"note\">{escape_text(load)}</p>" if load else "",
        _models_table(comparison.metadata_columns, records),
        image(plots.comparison_bars(comparison), "Each run's energy and its ratio to the baseline"),
        image(plots.pareto_scatter(comparison), "Accuracy against energy, Pareto frontier drawn"),
        "</section>",
    ]
    return "\n".join(parts)


def _models_table(columns: list[str], records: list[dict]) -> str:
    """Run metadata side by side (accuracy, parameters, size on disk, latency, …)."""
    if not columns:
        return ""
    head = "<tr><th>Run</th>" + "".join(f"<th>{escape_text(fmt.metadata_label(c))}</th>" for c in columns) + "</tr>"
    rows = "".join(
        f"<tr><td>{escape_text(_run_name(row))}</td>"
        + "".join(f"<td class=\"num\">{escape_text(fmt.metadata_value(c, row[c]))}</td>" for c in columns)
        + "</tr>"
        for row in records
    )
    return f"<h3>Models</h3>{table(head + rows)}"


def _run_name(row: dict) -> str:
    return run_label(row["name"], row.get("variant"))


def factors_footer(report: Report) -> str:
    rows = "".join(
        f"<tr><td>{escape_text(line.label)}</td><td>{escape_text(line.text)}</td><td>{escape_text(line.source)}"
        + (f"<br><span class=\"meta\">{escape_text(line.url)}</span>" if line.url else "")
        + "</td></tr>"
        for line in report.factor_lines
    )
    legend = "".join(
        f"<li>{badge(name)} {escape_text(text)}</li>" for name, text in _PROVENANCE_HELP.items()
    )
    return (
        "<footer><section><h2>Factors and sources</h2>"
        + table(f"<tr><th>Factor</th><th>Value</th><th>Source</th></tr>{rows}")
        + f"<h3>Provenance</h3><ul>{legend}</ul>"
        "<p class=\"meta\">Facility electricity is device energy × PUE; emissions are facility "
        "electricity × grid intensity; ranges show the uncertainty of sampled and estimated "
        "figures.</p></section></footer>"
    )


# -- small pieces -----------------------------------------------------------------------


def escape_text(text: object) -> str:
    """Any value as HTML-escaped text (quotes too, for attributes)."""
    return html.escape(str(text), quote=True)


def badge(provenance: object) -> str:
    name = str(provenance) if provenance is not None else "unknown"
    css = "".join(ch for ch in name if ch.isalnum())
    title = _PROVENANCE_HELP.get(name, name)
    return f"<span class=\"prov prov-{css}\" title=\"{escape_text(title)}\">{escape_text(name)}</span>"


def table(rows: str) -> str:
    """A table (its <tr> rows, head first) that scrolls inside its own box when it is wider
    than the page, so the page never scrolls sideways (a phone is 390 px wide)."""
    return f"<div class=\"scroll\"><table>{rows}</table></div>"


def image(svg: str | None, alt: str) -> str:
    """A plot inline, described for screen readers; '' without a plot."""
    if svg is None:
        return ""
    return f"<figure class=\"plot\" role=\"img\" aria-label=\"{escape_text(alt)}\">{svg}</figure>"
