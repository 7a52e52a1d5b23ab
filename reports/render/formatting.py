"""Numbers as people read them in reports: J/kJ/MJ, kWh, g/kg/t CO2e, money, durations.

Every function takes SI values (J, kg, s, W) and returns "—" for an unknown (None) value.
"""

from __future__ import annotations

import dataclasses
import math

from joulemeter.meter.run import Run
from joulemeter.meter.units import G_PER_KG, HOURS_PER_DAY, J_PER_KWH, J_PER_WH, S_PER_HOUR

DASH = "—"
_ROUNDS_UP = 0.9995  # a value that rounds to 1,000 of a unit is shown in the next unit up
_PREFIXES = ((1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""), (1e-3, "m"), (1e-6, "µ"))
_MASS_PREFIXES = ((1e6, "t"), (1e3, "kg"), (1.0, "g"), (1e-3, "mg"), (1e-6, "µg"))  # of grams
CENTS_PER_UNIT = 100  # the minor unit of the currencies priced (reports/data/prices.csv)


def format_number(value: float) -> str:
    """Three significant figures with thousands separators: 33.9, 2.68, 12,300, 0.000412."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    digits = 2 - math.floor(math.log10(abs(value)))
    rounded = round(value, digits)
    if math.floor(math.log10(abs(rounded))) > math.floor(math.log10(abs(value))):  # 0.9996 -> 1.00, not 1.000
        digits -= 1
        rounded = round(value, digits)
    return f"{rounded:,.{max(digits, 0)}f}"


def number(value: float | None) -> str:
    """format_number(value), or a dash for an unknown value."""
    return DASH if value is None else format_number(value)


def energy(energy_j: float | None) -> str:
    """'2.64 mJ', '812 J', '45.3 kJ', '1.27 MJ', '3.41 GJ': the prefix that keeps three digits."""
    return DASH if energy_j is None else _scaled(energy_j, [(scale, f"{p}J") for scale, p in _PREFIXES])


def _scaled(value: float, units: list[tuple[float, str]]) -> str:
    """`value` in the largest of `units` ((scale, name), largest first) it reaches, three
    digits kept; below the smallest, in the smallest; zero as "0 <base unit>"."""
    if value == 0:
        return f"0 {next(name for scale, name in units if scale == 1.0)}"
    for scale, name in units:
        if abs(value) >= scale * _ROUNDS_UP:
            return f"{number(value / scale)} {name}"
    scale, name = units[-1]
    return f"{number(value / scale)} {name}"


def energy_with_kwh(energy_j: float | None) -> str:
    """energy() with watt-hours beside it from 3.6 kJ (1 Wh) up, the unit bills and papers use."""
    text = energy(energy_j)
    if energy_j is not None and abs(energy_j) >= J_PER_WH:
        text += f" ({kwh(energy_j / J_PER_KWH)})"
    return text


def kwh(energy_kwh: float | None) -> str:
    """Watt-hours scaled for a reader: '0.403 mWh', '1.17 Wh', '12.4 kWh', '33.9 MWh'."""
    if energy_kwh is None:
        return DASH
    return _scaled(energy_kwh * 1000, [(scale, f"{p}Wh") for scale, p in _PREFIXES])


def co2e(kg: float | None) -> str:
    """'4.03 µg CO2e', '613 mg CO2e', '312 g CO2e', '4.21 kg CO2e', '552 t CO2e'."""
    if kg is None:
        return DASH
    return _scaled(kg * G_PER_KG, [(scale, f"{name} CO2e") for scale, name in _MASS_PREFIXES])


def money(amount: float | None, currency: str | None) -> str:
    """'1,234.56 EUR', '0.45 EUR', '6.13 EUR cents', '6.13 × 10⁻⁸ EUR': cents below a cent's
    worth, powers of ten below a thousandth of a cent, never a row of zeros."""
    if amount is None:
        return DASH
    unit = f" {currency}" if currency else ""
    if amount == 0 or abs(amount) >= 0.01:
        return f"{amount:,.2f}{unit}" if abs(amount) >= 1 else f"{number(amount)}{unit}"
    cents = amount * CENTS_PER_UNIT
    if abs(cents) >= 0.001:
        return f"{number(cents)}{unit} cents"
    exponent = math.floor(math.log10(abs(amount)))
    mantissa = amount / 10**exponent
    return f"{mantissa:.2f} × 10{str(exponent).translate(_SUPERSCRIPTS)}{unit}"


_SUPERSCRIPTS = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def power(power_w: float | None) -> str:
    if power_w is None:
        return DASH
    return f"{number(power_w / 1000)} kW" if abs(power_w) >= 1000 else f"{number(power_w)} W"


def duration(duration_s: float | None) -> str:
    """'37.1 µs', '812 ms', '42.0 s', '12 min 05 s', '3 h 04 min', '2.5 days'."""
    if duration_s is None:
        return DASH
    if 0 < duration_s < 1e-3 * _ROUNDS_UP:
        return f"{number(duration_s * 1e6)} µs"
    if 0 < duration_s < _ROUNDS_UP:
        return f"{number(duration_s * 1e3)} ms"
    if duration_s < 60:
        return f"{duration_s:.1f} s"
    if duration_s < S_PER_HOUR:
        minutes, seconds = divmod(round(duration_s), 60)
        return f"{minutes} min {seconds:02d} s"
    if duration_s < 48 * S_PER_HOUR:
        hours, minutes = divmod(round(duration_s / 60), 60)
        return f"{hours} h {minutes:02d} min"
    return f"{duration_s / (HOURS_PER_DAY * S_PER_HOUR):.1f} days"


def shorten(text: str, max_chars: int) -> str:
    """`text` cut to `max_chars` characters, ending in an ellipsis when cut: a name too long for
    its column (the full value is in `joulemeter show` and the JSON)."""
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"


def for_display(run: Run, max_chars: int) -> Run:
    """A copy of `run` whose user text (name, project, tags, window names, units, metadata keys
    and text values) is cut by `shorten` to `max_chars`: a ledger written before the size
    limits (joulemeter.meter.limits) may hold a 1 MB name, which no report should repeat."""

    def cut(text: str) -> str:
        return shorten(text, max_chars)

    return dataclasses.replace(
        run,
        name=cut(run.name),
        project=cut(run.project),
        tags=[cut(t) for t in run.tags],
        windows=[dataclasses.replace(w, name=cut(w.name), path=cut(w.path),
                                     units={cut(u): n for u, n in w.units.items()})
                 for w in run.windows],
        units={cut(u): n for u, n in run.units.items()},
        metadata={cut(k): cut(v) if isinstance(v, str) else v for k, v in run.metadata.items()},
        error=None if run.error is None else cut(run.error),
    )


def count(value: float) -> str:
    """'1,000,000', '30', or '2.5' when not whole."""
    return f"{value:,.0f}" if float(value).is_integer() else number(value)


def quantity(value: float | None, unit: str) -> str:
    """A number with its unit, e.g. '1.2 g CO2e/kWh'."""
    return DASH if value is None else f"{number(value)} {unit}"


def size(size_bytes: float | None) -> str:
    """'812 B', '44.7 MB', '1.20 GB' (SI prefixes, as disks are sold)."""
    if size_bytes is None:
        return DASH
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(size_bytes) >= scale * _ROUNDS_UP:
            return f"{number(size_bytes / scale)} {prefix}B"
    return f"{number(size_bytes)} B"


def metadata_value(key: str, value: object) -> str:
    """A metadata value formatted by what its key says it is (…_bytes, …_per_s, …_s, counts, scores)."""
    if value is None or (isinstance(value, float) and value != value):
        return DASH
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if key.endswith("_bytes"):
        return size(value)
    if key.endswith("_per_s"):
        return f"{number(value)}/s"
    if key.endswith("_s"):
        return duration(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.4g}"
