"""An HTML report of runs with hostile names, tags and metadata, loaded in headless Chromium.

Every text a user controls (run name, project, tags, metadata keys and values, window
names, units, device descriptions, errors, gap reasons) carries payloads that would run
script if they reached the page unescaped. The page is loaded in Chromium twice: as
rendered, and with its Content-Security-Policy removed, so that escaping alone is
checked and the CSP cannot hide a failure. A control page proves the check sees script
that does run. Needs /usr/bin/chromium (Debian package `chromium`).
"""

from __future__ import annotations

import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from joulemeter.meter.energy import summarise
from joulemeter.meter.run import Domain, Gap, Provenance, Run, Sample, Status, Window
from joulemeter.reports.factors import resolve_factors
from joulemeter.reports.render import render

CHROMIUM = Path("/usr/bin/chromium")
PWNED = "pwned"  # what every payload sets document.title to, if it runs

PAYLOADS = [
    f"<script>document.title='{PWNED}'</script>",
    f"\"><img src=x onerror=\"document.title='{PWNED}'\">",
    f"'><svg onload=\"document.title='{PWNED}'\">",
    f"</style><script>document.title='{PWNED}'</script>",
    f"</title><script>document.title='{PWNED}'</script>",
    f"<!--<script>document.title='{PWNED}'</script>-->",
    f"javascript:document.title='{PWNED}'",
]
HOSTILE = " ".join(PAYLOADS)

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs headless Chromium at /usr/bin/chromium (apt-get install chromium)"
)


def hostile_run(run_id: str, energy_scale: float) -> Run:
    """A completed run whose every free-text field is hostile; energy is a 2-domain counter."""
    domains = [
        Domain("gpu:0", "gpu", HOSTILE, Provenance.COUNTER, HOSTILE, note=HOSTILE),
        Domain("cpu", "cpu", HOSTILE, Provenance.ESTIMATED, HOSTILE),
    ]
    samples = [
        Sample(float(t), d.name, power_w, power_w * t)
        for t in range(11)
        for d, power_w in zip(domains, (300.0 * energy_scale, 40.0 * energy_scale))
    ]
    run = Run(
        id=run_id,
        name=HOSTILE,
        project=HOSTILE,
        tags=PAYLOADS,
        status=Status.FAILED,
        started_at="2026-01-01T00:00:00.000+00:00",
        ended_at="2026-01-01T00:00:10.000+00:00",
        duration_s=10.0,
        domains=domains,
        windows=[Window(HOSTILE, f"{HOSTILE}/{HOSTILE}", 0.0, 5.0, {"gpu:0": 1500.0}, {HOSTILE: 3.0})],
        units={HOSTILE: 3.0, "samples": 100.0},
        samples=samples,
        gaps=[Gap("gpu:0", 6.0, 7.0, HOSTILE)],
        metadata={HOSTILE: HOSTILE, "variant": HOSTILE, "accuracy": 0.9},
        error=HOSTILE,
    )
    run.energy = summarise(domains, samples, run.duration_s)
    return run


@pytest.fixture(scope="module")
def hostile_html() -> str:
    factors = resolve_factors("FR")
    runs = [hostile_run("a" * 32, 1.0), hostile_run("b" * 32, 0.5)]
    return render(runs, "html", factors=factors, title=HOSTILE)


class _Elements(HTMLParser):
    """Every start tag with its attributes, and the document title."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.title = ""
        self.text = ""
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_title = tag == "title"

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False

    def handle_data(self, data: str) -> None:
        self.text += data
        if self._in_title:
            self.title += data


def dom_after_load(html: str, tmp_path: Path, name: str) -> _Elements:
    """Load the page from a file in headless Chromium, let scripts run, parse the live DOM."""
    page = tmp_path / f"{name}.html"
    page.write_text(html, encoding="utf-8")
    done = subprocess.run(
        [
            str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-extensions", f"--user-data-dir={tmp_path / f'profile-{name}'}",
            "--virtual-time-budget=2000", "--dump-dom", page.as_uri(),
        ],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0 and "<html" in done.stdout, done.stderr[-2000:]
    parsed = _Elements()
    parsed.feed(done.stdout)
    return parsed


def injected(dom: _Elements) -> list[str]:
    """Elements or attributes that script could ride on, found in the live DOM. The plots'
    own <svg> elements (one per <figure class="plot">) are ours; any other <svg> is not."""
    found = []
    plots = sum(1 for tag, attrs in dom.tags if tag == "figure" and attrs.get("class") == "plot")
    svgs = sum(1 for tag, _ in dom.tags if tag == "svg")
    if svgs != plots:
        found.append(f"<svg> ×{svgs - plots} outside the plots")
    for tag, attrs in dom.tags:
        if tag in {"script", "iframe", "object", "embed", "base", "foreignobject"}:
            found.append(f"<{tag}>")
        for attr, value in attrs.items():
            if attr.startswith("on"):
                found.append(f"<{tag} {attr}=…>")
            if attr in {"src", "href", "xlink:href"} and value and not value.startswith("#"):
                found.append(f"<{tag} {attr}={value[:40]!r}>")
    return found


def without_csp(html: str) -> str:
    stripped, count = re.subn(r"<meta[^>]*Content-Security-Policy[^>]*>", "", html, flags=re.I)
    assert count == 1, "expected exactly one CSP meta tag in the report"
    return stripped


def test_the_chromium_check_sees_script_that_runs(tmp_path):
    control = (
        "<!doctype html><html><head><title>report</title></head><body>"
        f"<img src=x onerror=\"document.title='{PWNED}'\"></body></html>"
    )
    dom = dom_after_load(control, tmp_path, "control")
    assert dom.title == PWNED
    assert sorted(injected(dom)) == ["<img onerror=…>", "<img src='x'>"]


def test_hostile_text_is_escaped_in_the_html_source(hostile_html):
    for payload in PAYLOADS:
        if "<" in payload:
            assert payload not in hostile_html
    assert "&lt;script&gt;document.title=" in hostile_html
    assert "onerror=\"document" not in hostile_html


@pytest.mark.parametrize("csp", [True, False], ids=["as-rendered", "csp-removed"])
def test_nothing_in_a_hostile_report_executes_in_chromium(hostile_html, tmp_path, csp):
    html = hostile_html if csp else without_csp(hostile_html)
    dom = dom_after_load(html, tmp_path, "report")
    assert dom.title != PWNED
    assert injected(dom) == []
    for payload in PAYLOADS:  # still there, as text a reader sees
        assert payload in dom.text
