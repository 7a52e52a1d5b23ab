"""Text made safe for a terminal: every control character shown as an escape, never obeyed.

A run name holding `\\x1b]0;…\\x07` (set the window title), `\\x1b[2J` (clear the screen),
an OSC-8 link or a C1 CSI (U+009B) would act on the reader's terminal if printed raw.
`visible` writes each such character as a Python-style escape (`\\x1b`, `\\x9b`,
`\\u202e`), so the text stays readable and nothing in it runs. rich strips only BEL,
BS, VT, FF and CR (rich.control.strip_control_codes) and passes ESC through, hence
this table.
"""

from __future__ import annotations

import re

#: C0 controls, DEL and C1 controls (ECMA-48 §5), and the Unicode bidirectional controls
#: that reorder what a terminal shows (Unicode UAX #9; CVE-2021-42574, "Trojan Source").
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match[0])
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str, *, keep: str = "") -> str:
    """`text` with every control character written as its escape; those in `keep` (e.g. "\\n")
    are left as they are. Text without control characters comes back unchanged."""
    if not keep:
        return _CONTROLS.sub(_escape, text)
    return _CONTROLS.sub(lambda m: m[0] if m[0] in keep else _escape(m), text)


def visible_lines(text: str) -> str:
    """A multi-line document (a Markdown, LaTeX or CSV report) for a terminal: line breaks and
    tabs kept, every other control character visible."""
    return visible(text, keep="\n\t")
