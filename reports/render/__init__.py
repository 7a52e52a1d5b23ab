"""Reports of one or several runs: self-contained HTML with plots, Markdown, LaTeX, JSON, CSV.

    render(runs, "html")  ->  str

Every figure is printed with its provenance (counter / sampled / estimated / replayed)
and every factor with its source. Renderers are imported on use, so this is cheap.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from joulemeter.meter.errors import ReportError
from joulemeter.meter.run import Run
from joulemeter.reports.factors import Factors

__all__ = ["FORMATS", "render"]

# format -> module in this package that defines render_<format>(report) -> str
FORMATS = {"html": "html", "md": "markdown", "latex": "latex", "json": "json_csv", "csv": "json_csv"}


def render(
    runs: Run | Sequence[Run],
    fmt: str,
    *,
    factors: Factors | None = None,
    baseline: Run | str | None = None,
    per: str | None = None,
    title: str | None = None,
) -> str:
    """A report of `runs` in `fmt` (html, md, latex, json or csv), as text."""
    from joulemeter.reports.render._report import build_report

    if fmt not in FORMATS:
        raise ReportError(f"unknown report format {fmt!r}; choose one of {', '.join(FORMATS)}")
    runs = [runs] if isinstance(runs, Run) else list(runs)
    if not runs:
        raise ReportError("nothing to report: give at least one run")
    report = build_report(runs, factors=factors, baseline=baseline, per=per, title=title)
    module = importlib.import_module(f"{__name__}.{FORMATS[fmt]}")
    return getattr(module, f"render_{fmt}")(report)
