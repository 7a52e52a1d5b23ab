"""What a ledger can store: plain JSON (no NaN or infinity) and text without NUL characters.

`problems` lists what a run holds that neither backend would take (the ledger refuses such
a run before writing anything); `make_storable` fixes those fields in place, so a measured
run still closes when a user put, say, a NaN accuracy or an object in its metadata.
"""

from __future__ import annotations

import json
import math
from typing import Any

from joulemeter.meter.run import Location, Run

_NUL = "\x00"
_REPLACEMENT = "\ufffd"  # U+FFFD, the Unicode character for one that cannot be kept


def problems(run: Run) -> list[str]:
    """Each field of `run` that cannot be stored, with why; empty when it all can."""
    found = [f"its {field} {why}" for field, value in _json_fields(run) if (why := _json_problem(value))]
    found += [f"its {field} contains a NUL character" for field, text in _text_fields(run) if _NUL in text]
    return found


def make_storable(run: Run) -> list[str]:
    """Fix in place what `problems` finds (NaN/inf -> None, other objects -> their repr,
    NUL -> U+FFFD) and return what was changed."""
    found = problems(run)
    if not found:
        return found
    run.host = _plain(run.host)
    run.units = _plain(run.units)
    run.metadata = _plain(run.metadata)
    for w in run.windows:
        w.units, w.energy_j = _plain(w.units), _plain(w.energy_j)
        w.name, w.path = w.name.replace(_NUL, _REPLACEMENT), w.path.replace(_NUL, _REPLACEMENT)
    run.name = run.name.replace(_NUL, _REPLACEMENT)
    run.project = run.project.replace(_NUL, _REPLACEMENT)
    run.tags = [t.replace(_NUL, _REPLACEMENT) for t in run.tags]
    if run.error is not None:
        run.error = run.error.replace(_NUL, _REPLACEMENT)
    if run.location is not None:
        run.location = Location(**{k: None if v is None else _clean_text(str(v)) for k, v in run.location.to_dict().items()})
    return found


def _json_fields(run: Run) -> list[tuple[str, Any]]:
    fields: list[tuple[str, Any]] = [("host", run.host), ("units", run.units), ("metadata", run.metadata)]
    fields += [(f"window {w.path!r}", {"energy_j": w.energy_j, "units": w.units}) for w in run.windows]
    return fields


def _text_fields(run: Run) -> list[tuple[str, str]]:
    texts = [("name", run.name), ("project", run.project), ("error", run.error or "")]
    texts += [("tag", t) for t in run.tags]
    texts += [("window name", w.path) for w in run.windows]
    if run.location is not None:
        texts += [(f"location {k}", v) for k, v in run.location.to_dict().items() if v is not None]
    return [(field, text) for field, text in texts if isinstance(text, str)]


def _json_problem(value: Any) -> str | None:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        return f"is not plain JSON ({exc})"
    return None


def _plain(value: Any) -> Any:
    """`value` as plain JSON: NaN and infinities become None (unknown), other objects their repr."""
    if isinstance(value, dict):
        return {_clean_text(str(k)): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, str):
        return _clean_text(value)
    return _clean_text(repr(value))


def _clean_text(text: str) -> str:
    return text.replace(_NUL, _REPLACEMENT)
