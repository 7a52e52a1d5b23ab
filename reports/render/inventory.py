"""An inventory (joulemeter.reports.inventory) as HTML, Markdown, LaTeX, JSON or CSV.

    render_inventory(inv, "md")  ->  str

The same formats as run reports (joulemeter.meter.formats), escaped by the same helpers; every
figure shows its range, market-based CO2e stands beside location-based (never added), and the
methodology lists every factor with its source.
"""

from __future__ import annotations

from collections.abc import Callable

from joulemeter.meter.export import csv_text, json_text
from joulemeter.meter.formats import REPORT, output_format
from joulemeter.reports.inventory import Amount, Inventory, Method, Totals, scope_text
from joulemeter.reports.render import formatting as fmt
from joulemeter.reports.render.html import document, escape_text
from joulemeter.reports.render.html import table as html_table
from joulemeter.reports.render.latex import latex_escape
from joulemeter.reports.render.markdown import md_escape

SCHEMA = "joulemeter-inventory/1"
_GAP = "not estimated"

#: The columns of the group and total tables: heading, Totals field, how one value is written.
_COLUMNS: tuple[tuple[str, str, Callable[[float | None], str]], ...] = (
    ("Device energy", "device_energy_j", fmt.energy),
    ("Facility energy", "facility_energy_kwh", fmt.kwh),
    ("CO2e, location-based", "location_kg_co2e", fmt.co2e),
    ("CO2e, market-based", "market_kg_co2e", fmt.co2e),
    ("Embodied CO2e", "embodied_kg_co2e", fmt.co2e),
    ("Water on-site", "onsite_water_l", fmt.litres),
    ("Water off-site", "offsite_water_l", fmt.litres),
)


def render_inventory(inv: Inventory, fmt_name: str) -> str:
    """The inventory in `fmt_name` (html, md, latex, json or csv), as text."""
    output_format(fmt_name, REPORT)  # an unknown name fails as it does for run reports
    return _WRITERS[fmt_name](inv)


# -- shared pieces --------------------------------------------------------------------------
def amount_text(amount: Amount, unit: Callable[[float | None], str]) -> str:
    """'12.3 kWh (range 11.0 kWh – 13.1 kWh)', the value alone where no range applies, or a gap."""
    if amount.value is None:
        return _GAP
    text = unit(amount.value)
    if amount.low is not None and amount.high is not None and (amount.low, amount.high) != (amount.value,) * 2:
        text += f" (range {unit(amount.low)} – {unit(amount.high)})"
    return text


def _cost(t: Totals, currency: str | None) -> str:
    return amount_text(t.cost, lambda v: fmt.money(v, currency))


def _share(t: Totals) -> str:
    share = t.measured_share
    return fmt.DASH if share is None else f"{share:.0%}"


def _row(key: str, t: Totals, currency: str | None) -> list[str]:
    return ([key, fmt.count(t.runs)] + [amount_text(getattr(t, name), unit) for _, name, unit in _COLUMNS]
            + [_cost(t, currency), _share(t)])


def _head(group_by: str) -> list[str]:
    return [group_by.capitalize(), "Runs"] + [c[0] for c in _COLUMNS] + ["Cost", "Measured"]


def _largest_rows(inv: Inventory) -> list[list[str]]:
    return [
        [line.name, line.id[:8], line.project, line.started_at[:10], line.hardware, line.provenance, line.grid,
         fmt.energy(line.device_energy_j), fmt.kwh(line.facility_energy_kwh), fmt.co2e(line.location_kg_co2e),
         fmt.co2e(line.market_kg_co2e), _GAP if line.embodied_kg_co2e is None else fmt.co2e(line.embodied_kg_co2e)]
        for line in inv.largest
    ]


_LARGEST_HEAD = ["Run", "Id", "Project", "Started", "Hardware", "Provenance", "Grid", "Device energy",
                 "Facility energy", "CO2e, location-based", "CO2e, market-based", "Embodied CO2e"]


def _provenance_rows(t: Totals) -> list[list[str]]:
    total = sum(t.energy_by_provenance_j.values())
    return [[name, fmt.energy(j), f"{j / total:.1%}" if total else fmt.DASH]
            for name, j in sorted(t.energy_by_provenance_j.items())]


def _source(method: Method) -> tuple[str, str | None]:
    if method.citation is None:
        return fmt.DASH, None
    return str(method.citation), method.citation.url


# -- HTML ----------------------------------------------------------------------------------
def render_html(inv: Inventory) -> str:
    def table(head: list[str], rows: list[list[str]]) -> str:
        cells = "".join("<tr>" + "".join(f"<td>{escape_text(c)}</td>" for c in row) + "</tr>" for row in rows)
        return html_table("<tr>" + "".join(f"<th>{escape_text(h)}</th>" for h in head) + f"</tr>{cells}")

    methods = []
    for m in inv.methodology:
        source, url = _source(m)
        link = f"<br><span class=\"meta\">{escape_text(url)}</span>" if url else ""
        methods.append(f"<tr><td>{escape_text(m.label)}</td><td>{escape_text(m.text)}</td>"
                       f"<td>{escape_text(source)}{link}</td></tr>")
    parts = [
        f"<header><h1>{escape_text(inv.title)}</h1>",
        f"<p class=\"sub\">Generated {escape_text(inv.generated_at)} by joulemeter · "
        + escape_text(" · ".join(scope_text(inv))) + "</p></header>",
        *(f"<p class=\"note\">{escape_text(n)}</p>" for n in inv.notes),
        "<section><h2>Totals</h2>",
        table(_head("Scope"), [_row("all runs", inv.totals, inv.currency)]),
        "<h3>Device energy by provenance</h3>",
        table(["Provenance", "Energy", "Share"], _provenance_rows(inv.totals)),
        "</section>",
        f"<section><h2>By {escape_text(inv.group_by)}</h2>",
        table(_head(inv.group_by), [_row(k, t, inv.currency) for k, t in inv.groups.items()]),
        "</section>",
        "<section><h2>Largest runs</h2>", table(_LARGEST_HEAD, _largest_rows(inv)), "</section>",
        "<footer><section><h2>Methodology and sources</h2>"
        + html_table("<tr><th>Factor</th><th>Value and method</th><th>Source</th></tr>" + "".join(methods))
        + "</section></footer>",
    ]
    return document(inv.title, parts)


# -- Markdown ------------------------------------------------------------------------------
def render_md(inv: Inventory) -> str:
    def table(head: list[str], rows: list[list[str]]) -> list[str]:
        out = ["| " + " | ".join(md_escape(h) for h in head) + " |", "|" + " --- |" * len(head)]
        out += ["| " + " | ".join(md_escape(c) for c in row) + " |" for row in rows]
        return out + [""]

    lines = [f"# {md_escape(inv.title)}", "",
             f"Generated {inv.generated_at} by joulemeter; " + md_escape("; ".join(scope_text(inv))) + ".", ""]
    lines += [f"> **Note:** {md_escape(n)}" for n in inv.notes] + [""]
    lines += ["## Totals", ""] + table(_head("Scope"), [_row("all runs", inv.totals, inv.currency)])
    lines += ["### Device energy by provenance", ""] + table(["Provenance", "Energy", "Share"],
                                                            _provenance_rows(inv.totals))
    lines += [f"## By {md_escape(inv.group_by)}", ""]
    lines += table(_head(inv.group_by), [_row(k, t, inv.currency) for k, t in inv.groups.items()])
    lines += ["## Largest runs", ""] + table(_LARGEST_HEAD, _largest_rows(inv))
    rows = []
    for m in inv.methodology:
        source, url = _source(m)
        rows.append([m.label, m.text, source + (f" {url}" if url else "")])
    lines += ["## Methodology and sources", ""] + table(["Factor", "Value and method", "Source"], rows)
    return "\n".join(lines) + "\n"


# -- LaTeX ---------------------------------------------------------------------------------
def render_latex(inv: Inventory) -> str:
    """A booktabs table of the groups and the total, and the methodology as a list."""
    head = _head(inv.group_by)
    rows = [_row(k, t, inv.currency) for k, t in inv.groups.items()] + [_row("Total", inv.totals, inv.currency)]
    body = [" & ".join(latex_escape(c) for c in row) + r" \\" for row in rows]
    lines = [
        "% Generated by joulemeter " + inv.generated_at + "; requires \\usepackage{booktabs}",
        r"\begin{table}[t]", r"\centering", r"\small",
        rf"\begin{{tabular}}{{l{'r' * (len(head) - 1)}}}", r"\toprule",
        " & ".join(latex_escape(h) for h in head) + r" \\", r"\midrule",
        *body[:-1], r"\midrule", body[-1], r"\bottomrule", r"\end{tabular}",
        rf"\caption{{{latex_escape(inv.title)}. Ranges in brackets; every factor's source is listed below.}}",
        r"\label{tab:joulemeter-inventory}", r"\end{table}", "",
        r"\begin{itemize}",
        *(rf"\item \textbf{{{latex_escape(m.label)}}}: {latex_escape(m.text)}"
          + (f" ({latex_escape(_source(m)[0])})" if m.citation else "") for m in inv.methodology),
        *(rf"\item \textbf{{Note}}: {latex_escape(n)}" for n in inv.notes),
        r"\end{itemize}",
    ]
    return "\n".join(lines) + "\n"


# -- JSON and CSV --------------------------------------------------------------------------
def render_json(inv: Inventory) -> str:
    return json_text({"schema": SCHEMA, **inv.to_dict()}, ensure_ascii=False) + "\n"


def render_csv(inv: Inventory) -> str:
    """One row per group and one for the total: each figure's value, low and high in SI-ish units
    (J, kWh, kg, L, currency), the measured share, and the scope."""
    import pandas

    rows = []
    for key, t in [*inv.groups.items(), ("total", inv.totals)]:
        row: dict[str, object] = {"group_by": inv.group_by, "group": key, "runs": t.runs,
                                  "gpu_device_hours": t.device_hours}
        for name in (*(c[1] for c in _COLUMNS), "cost"):
            amount = getattr(t, name)
            row |= {name: amount.value, f"{name}_low": amount.low, f"{name}_high": amount.high}
        row |= {"currency": inv.currency, "measured_share": t.measured_share,
                "since": inv.scope["since"], "until": inv.scope["until"],
                "project": inv.scope["project"], "tag": inv.scope["tag"]}
        rows.append(row)
    return csv_text(pandas.DataFrame(rows))


_WRITERS: dict[str, Callable[[Inventory], str]] = {
    "html": render_html, "md": render_md, "latex": render_latex, "json": render_json, "csv": render_csv,
}
