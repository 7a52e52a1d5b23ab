"""Temporary sysfs trees laid out as the Linux drivers lay them out, for the GPU and Jetson sources.

- Intel: /sys/class/drm/cardN/device/hwmon/hwmonM/{name, energyK_input, energyK_label}, as the
  i915 and xe drivers create them (Documentation/ABI/testing/sysfs-driver-intel-{i915,xe}-hwmon);
  values in µJ (hwmon sysfs ABI). Connector entries (card0-DP-1) sit beside the cards.
- Jetson: /sys/bus/i2c/drivers/ina3221/<bus-addr>/hwmon/hwmonM/{inK_label, inK_input (mV),
  currK_input (mA)} (Documentation/hwmon/ina3221.rst, JetPack 5 and later), and the older
  ina3221x driver's /sys/bus/i2c/drivers/ina3221x/<bus-addr>/iio:deviceN/{rail_name_K,
  in_powerK_input (mW)} (L4T 32 "Jetson ... Power Monitoring").
"""

from __future__ import annotations

from pathlib import Path


def intel_card(root: Path, card: int, driver: str = "xe", channels: dict[str, int] | None = None,
               pci_device: str = "0x0bd5") -> Path:
    """Card `card` with a hwmon of `driver`; `channels` maps label -> µJ (i915: {"": uj}, no label file)."""
    device = root / f"card{card}" / "device"
    hwmon = device / "hwmon" / f"hwmon{card + 3}"
    hwmon.mkdir(parents=True)
    (device / "vendor").write_text("0x8086\n")
    (device / "device").write_text(pci_device + "\n")
    (hwmon / "name").write_text(driver + "\n")
    for k, (label, uj) in enumerate((channels or {"card": 0, "pkg": 0}).items(), start=1):
        if label:
            (hwmon / f"energy{k}_label").write_text(label + "\n")
        (hwmon / f"energy{k}_input").write_text(f"{uj}\n")
    (root / f"card{card}-DP-1").mkdir()
    return hwmon


def set_value(path: Path, value: int | float) -> None:
    """Set one attribute, as the hardware would."""
    path.write_text(f"{value}\n")


def jetson_hwmon(root: Path, rails: dict[str, tuple[int, int]], address: str = "1-0040") -> Path:
    """An INA3221 under the hwmon driver: rail label -> (mV, mA) on channels 1, 2, 3."""
    hwmon = root / "ina3221" / address / "hwmon" / "hwmon1"
    hwmon.mkdir(parents=True)
    for k, (label, (mv, ma)) in enumerate(rails.items(), start=1):
        (hwmon / f"in{k}_label").write_text(label + "\n")
        (hwmon / f"in{k}_input").write_text(f"{mv}\n")
        (hwmon / f"curr{k}_input").write_text(f"{ma}\n")
    return hwmon


def jetson_iio(root: Path, rails: dict[str, int], address: str = "6-0040") -> Path:
    """An INA3221 under the older ina3221x IIO driver: rail name -> mW on channels 0, 1, 2."""
    iio = root / "ina3221x" / address / "iio:device0"
    iio.mkdir(parents=True)
    for k, (name, mw) in enumerate(rails.items()):
        (iio / f"rail_name_{k}").write_text(name + "\n")
        (iio / f"in_power{k}_input").write_text(f"{mw}\n")
    return iio
