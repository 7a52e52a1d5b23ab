"""Reports of one or several runs: self-contained HTML with plots, Markdown, LaTeX, JSON, CSV.

    render(runs, "html")  ->  str

Every figure is printed with its provenance (counter / sampled / estimated / replayed)
and every factor with its source. The formats are those of the registry in
joulemeter.meter.formats that write a report; renderers are imported on use, so this is cheap.
"""

from __future__ import annotations

from collections.abc import Sequence

from joulemeter.meter.errors import ReportError
from joulemeter.meter.formats import REPORT, output_format
from joulemeter.meter.run import Run
from joulemeter.reports.factors import Factors
from joulemeter.reports.render._tables import frame_records

__all__ = ["frame_records", "render"]


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

    writer = output_format(fmt, REPORT).writer(REPORT)
    runs = [runs] if isinstance(runs, Run) else list(runs)
    if not runs:
        raise ReportError("nothing to report: give at least one run")
    return writer(build_report(runs, factors=factors, baseline=baseline, per=per, title=title))
