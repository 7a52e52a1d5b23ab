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
_VOLUME_PREFIXES = ((1e6, "ML"), (1e3, "kL"), (1.0, "L"), (1e-3, "mL"), (1e-6, "µL"))  # of litres


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


def _scaled(value: float, units: list[tuple[float, str]], bounds: tuple[float, float] | None = None) -> str:
    """`value` in the largest of `units` ((scale, name), largest first) it reaches, three
    digits kept; below the smallest, in the smallest; zero as "0 <base unit>". With `bounds`,
    their range follows in the same unit: '2.30 MWh (range 1.24–2.53 MWh)'."""
    if value == 0:
        scale, name = next((scale, name) for scale, name in units if scale == 1.0)
    else:
        scale, name = next(((s, n) for s, n in units if abs(value) >= s * _ROUNDS_UP), units[-1])
    text = f"0 {name}" if value == 0 else f"{number(value / scale)} {name}"
    if bounds is not None:
        text += f" (range {number(bounds[0] / scale)}–{number(bounds[1] / scale)} {name})"
    return text


def energy_with_kwh(energy_j: float | None) -> str:
    """energy() with watt-hours beside it from 3.6 kJ (1 Wh) up, the unit bills and papers use."""
    text = energy(energy_j)
    if energy_j is not None and abs(energy_j) >= J_PER_WH:
        text += f" ({kwh(energy_j / J_PER_KWH)})"
    return text


def kwh(energy_kwh: float | None, bounds: tuple[float, float] | None = None) -> str:
    """Watt-hours scaled for a reader: '0.403 mWh', '1.17 Wh', '12.4 kWh', '33.9 MWh'; with
    `bounds` (kWh) their range in the same unit: '2.30 MWh (range 1.24–2.53 MWh)'."""
    if energy_kwh is None:
        return DASH
    wh_bounds = None if bounds is None else (bounds[0] * 1000, bounds[1] * 1000)
    return _scaled(energy_kwh * 1000, [(scale, f"{p}Wh") for scale, p in _PREFIXES], wh_bounds)


def co2e(kg: float | None, bounds: tuple[float, float] | None = None) -> str:
    """'4.03 µg CO2e', '613 mg CO2e', '312 g CO2e', '4.21 kg CO2e', '552 t CO2e'; with `bounds`
    (kg) their range in the same unit: '1.09 t CO2e (range 0.591–1.20 t CO2e)'."""
    if kg is None:
        return DASH
    g_bounds = None if bounds is None else (bounds[0] * G_PER_KG, bounds[1] * G_PER_KG)
    return _scaled(kg * G_PER_KG, [(scale, f"{name} CO2e") for scale, name in _MASS_PREFIXES], g_bounds)


def litres(volume_l: float | None) -> str:
    """'4.90 µL', '312 mL', '1.20 L', '5.40 ML': water, in the SI prefix a reader takes in."""
    return DASH if volume_l is None else _scaled(volume_l, list(_VOLUME_PREFIXES))


def money(amount: float | None, currency: str | None) -> str:
    """'1,230 EUR', '0.450 EUR', '0.000613 EUR', '6.13 × 10⁻¹⁰ EUR': three significant figures
    in the currency's own unit (a cost is energy × a price, never known to the cent; no
    "cents"), powers of ten below a ten-thousandth of it, never a longer row of zeros."""
    if amount is None:
        return DASH
    unit = f" {currency}" if currency else ""
    if amount == 0 or abs(amount) >= 1e-4 * _ROUNDS_UP:
        return f"{number(amount)}{unit}"
    return f"{power_of_ten(amount)}{unit}"


def power_of_ten(value: float, digits: int = 3) -> str:
    """`value` as a mantissa of `digits` significant figures times a power of ten:
    6.13e-10 -> '6.13 × 10⁻¹⁰', 5.09e11 -> '5.09 × 10¹¹', for figures too small or large to write out."""
    exponent = math.floor(math.log10(abs(value)))
    mantissa = value / 10**exponent
    if round(abs(mantissa), digits - 1) >= 10:  # 9.996 rounds up to the next power
        exponent, mantissa = exponent + 1, mantissa / 10
    return f"{mantissa:.{digits - 1}f} × 10{str(exponent).translate(_SUPERSCRIPTS)}"


_SUPERSCRIPTS = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def power(power_w: float | None) -> str:
    """'812 mW', '61.0 W', '1.52 kW', '3.29 MW': the prefix that keeps three digits."""
    return DASH if power_w is None else _scaled(power_w, [(scale, f"{p}W") for scale, p in _PREFIXES])


def percent(fraction: float | None) -> str:
    """A fraction as a percentage with three significant figures: 0.96389 -> '96.4 %',
    0.004963 -> '0.496 %' (a space before %, as in '95 % CI')."""
    return DASH if fraction is None else f"{number(fraction * 100)} %"


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


def shorten_middle(text: str, max_chars: int) -> str:
    """`text` cut to `max_chars` characters by an ellipsis in its middle: names that share a
    start ("digits-mlp/int8", "digits-mlp/full") keep the end that tells them apart."""
    if len(text) <= max_chars:
        return text
    kept = max_chars - 1
    head = (kept + 1) // 2
    return text[:head] + "…" + text[len(text) - (kept - head):]


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
    """'1,000,000', '30', or '2.5' (three significant figures) when not whole."""
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


#: labels of metadata keys whose plain words would mislead or repeat the unit
_METADATA_LABELS = {
    "nonzero_parameters": "non-zero parameters",
    "size_on_disk_bytes": "size on disk",
    "peak_memory_bytes": "peak memory",
    "peak_memory_method": "peak memory measured as",
    "latency_p50_s": "p50 latency",
    "latency_p95_s": "p95 latency",
    "latency_p99_s": "p99 latency",
    "throughput_per_s": "throughput",
    "energy_per_1000_inferences_j": "energy per 1,000 inferences, inference window only",
    "inference_window_energy_j": "energy of the inference window",
    "inference_window_s": "length of the inference window",
    "other_cpu_load": "other processes' CPU share",
    "trial_energy_spread": "trial energy spread (largest ÷ smallest)",
}
#: key suffixes that name a unit: dropped from the label, the cell carries the unit
_UNIT_SUFFIXES = ("_bytes", "_per_s", "_s", "_j", "_w", "_kwh")
#: keys whose value is a fraction, shown as a percentage
_FRACTION_KEYS = ("accuracy", "other_cpu_load")


def metadata_label(key: str) -> str:
    """A metadata key as a reader's label: "size_on_disk_bytes" -> "size on disk",
    "latency_p50_s" -> "p50 latency"; other keys lose their unit suffix (the value
    carries the unit, metadata_value) and their underscores."""
    if key in _METADATA_LABELS:
        return _METADATA_LABELS[key]
    for suffix in _UNIT_SUFFIXES:
        if key.endswith(suffix) and key != suffix:
            key = key.removesuffix(suffix)
            break
    return key.replace("_", " ")


def metadata_value(key: str, value: object) -> str:
    """A metadata value as a reader's text, scaled with its unit by what its key says:
    accuracy (a fraction) '96.4 %', …_bytes '343 kB', …_per_s '3,800,000/s', …_s '558 µs',
    …_j '11.5 mJ', …_w '61.0 W', …_kwh '2.30 MWh', …_spread '1.10×', whole numbers '85,002', other numbers three
    significant figures, booleans yes/no, lists item by item. The one formatter of metadata in every report and
    command, so a key reads the same everywhere; metadata_label(key) is its label."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):  # per trial: each value as the key without "_trials" says
        return ", ".join(metadata_value(key.removesuffix("_trials"), v) for v in value)
    if not isinstance(value, (int, float)):
        return str(value)
    return _number_by_key(key, value)


def _number_by_key(key: str, value: float) -> str:
    """A number in the unit its key's suffix names (metadata_value)."""
    if _is_fraction(key, value):
        return percent(value)
    if key.endswith("_bytes"):
        return size(value)
    if key.endswith("_per_s"):
        return f"{number(value)}/s"
    if key.endswith("_s"):
        return duration(value)
    if key.endswith("_j"):
        return energy(value)
    if key.endswith("_w"):
        return power(value)
    if key.endswith("_kwh"):
        return kwh(value)
    if key.endswith("_spread"):
        return f"{number(value)}×"
    return count(value)


def _is_fraction(key: str, value: float) -> bool:
    """Accuracy and CPU shares are fractions (0–1); a value outside that was logged in
    another scale and is shown as given."""
    return is_fraction_key(key) and 0 <= value <= 1


def is_fraction_key(key: str) -> bool:
    """Whether `key`'s values are fractions that metadata_value shows as percentages
    (accuracy, CPU shares), so that a plot's axis can say percent too."""
    return key in _FRACTION_KEYS or key.endswith("_accuracy")

