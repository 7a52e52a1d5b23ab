"""Every output format joulemeter writes, in one registry that the library and the CLI
both validate through: what each format produces, its file suffix, and its writer.

    output_format("md", REPORT).writer(REPORT)  ->  render_md

Writers are named "module:function" and imported on use, so this module imports no
other layer: a run export is written by joulemeter.meter.export (CodeCarbon's by
joulemeter.integrations.codecarbon), a report by joulemeter.reports.render.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from joulemeter.meter.errors import UnknownFormatError

Product = Literal["export", "report"]
EXPORT: Product = "export"  # runs written out whole or as one table: meter.export.export_runs
REPORT: Product = "report"  # a report of runs as text: reports.render.render

_EXPORTS = "joulemeter.meter.export"
_RENDER = "joulemeter.reports.render"


@dataclass(frozen=True)
class OutputFormat:
    """A format's name and file suffix, and per product it can write, its writer."""

    name: str
    suffix: str
    writers: Mapping[Product, str]  # product -> "module:function"
    binary: bool = False  # writes bytes: needs a file, never a text stream
    tabular: bool = False  # an export of one table (samples, windows or domains)

    def writer(self, product: Product) -> Callable[..., Any]:
        """The function that writes `product` in this format, imported now."""
        module, _, function = self.writers[product].partition(":")
        return getattr(importlib.import_module(module), function)


FORMATS: tuple[OutputFormat, ...] = (
    OutputFormat("html", ".html", {REPORT: f"{_RENDER}.html:render_html"}),
    OutputFormat("md", ".md", {REPORT: f"{_RENDER}.markdown:render_md"}),
    OutputFormat("latex", ".tex", {REPORT: f"{_RENDER}.latex:render_latex"}),
    OutputFormat(
        "json", ".json", {EXPORT: f"{_EXPORTS}:write_json", REPORT: f"{_RENDER}.json_csv:render_json"}
    ),
    OutputFormat(
        "csv",
        ".csv",
        {EXPORT: f"{_EXPORTS}:write_csv", REPORT: f"{_RENDER}.json_csv:render_csv"},
        tabular=True,
    ),
    OutputFormat(
        "parquet", ".parquet", {EXPORT: f"{_EXPORTS}:write_parquet"}, binary=True, tabular=True
    ),
    OutputFormat(
        "codecarbon", ".csv", {EXPORT: "joulemeter.integrations.codecarbon:export_codecarbon_csv"}
    ),
)


def format_names(product: Product) -> tuple[str, ...]:
    """The formats that can write `product`, in registry order."""
    return tuple(f.name for f in FORMATS if product in f.writers)


def output_format(name: str, product: Product) -> OutputFormat:
    """The format called `name` if it can write `product`, else UnknownFormatError listing those that can."""
    found = next((f for f in FORMATS if f.name == name and product in f.writers), None)
    if found is None:
        raise UnknownFormatError(name, product, format_names(product))
    return found
