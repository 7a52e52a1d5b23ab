"""A one-line status at the bottom of a terminal that a metered command's output scrolls past.

As apt does: the terminal's scrolling region (DECSTBM, "CSI top ; bottom r") is set to every
row but the last, so whatever the command prints scrolls above the status and no line of
it is ever overwritten or erased; the status is drawn on the last row between a cursor save
and restore (DECSC "ESC 7" / DECRC "ESC 8"), so the command's cursor, a half-written line or
a tqdm bar included, is where it left it. Each draw is one write(2), so it is not interleaved
with the command's own writes. (Sequences: ECMA-48 / xterm's ctlseqs, "VT100 Mode".)
"""

from __future__ import annotations

import os
import signal
from typing import Any

from joulemeter.reports.render.terminal import visible

_SAVE, _RESTORE = "\x1b7", "\x1b8"
_CLEAR_LINE = "\x1b[2K"
_RESET_REGION = "\x1b[r"
#: Fewer rows than this leave no room for the command: no status line then.
_MIN_ROWS = 4


class StatusLine:
    """The bottom row of the terminal on `fd`, kept for a status while a command runs."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.rows, self.columns = _size(fd)
        self.active = self.rows >= _MIN_ROWS and os.environ.get("TERM") != "dumb"
        self._text = ""
        self._previous_winch: Any = None
        if not self.active:
            return
        # A line feed first makes room (it scrolls when the cursor is on the last row); the
        # cursor then goes back up to where the command's output continues.
        self._write("\n" + _SAVE + self._region() + _RESTORE + "\x1b[1A")
        try:
            self._previous_winch = signal.signal(signal.SIGWINCH, self._resized)
        except ValueError:  # not the main thread: a resize is then picked up at the next draw
            self._previous_winch = None

    def show(self, text: str) -> None:
        """Draw `text` (cut to the width, control characters made visible) on the last row."""
        if not self.active:
            return
        self._text = visible(text)
        rows, columns = _size(self.fd)
        region = ""
        if (rows, columns) != (self.rows, self.columns):
            self.rows, self.columns = rows, columns
            region = self._region()
        self._write(_SAVE + region + self._draw() + _RESTORE)

    def close(self) -> None:
        """Give the whole screen back to the command's output and clear the status row."""
        if not self.active:
            return
        self.active = False
        if self._previous_winch is not None:
            signal.signal(signal.SIGWINCH, self._previous_winch)
        self._write(_SAVE + _RESET_REGION + f"\x1b[{self.rows};1H" + _CLEAR_LINE + _RESTORE)

    def _region(self) -> str:
        return f"\x1b[1;{self.rows - 1}r"

    def _draw(self) -> str:
        return f"\x1b[{self.rows};1H" + _CLEAR_LINE + "\x1b[7m" + self._text[: self.columns - 1] + "\x1b[0m"

    def _resized(self, signum: int, frame: Any) -> None:
        self.show(self._text)

    def _write(self, data: str) -> None:
        try:
            os.write(self.fd, data.encode("utf-8", errors="replace"))
        except OSError:  # the terminal went away: the command's own output is not ours to lose
            self.active = False


def _size(fd: int) -> tuple[int, int]:
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        return 0, 0
    return size.lines, size.columns
