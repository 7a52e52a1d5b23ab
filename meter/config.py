"""Defaults from `joulemeter.toml`: country, region, PUE, price, ledger and market instruments.

The file is looked for in the working directory and each folder above it (the project's),
then in the user config directory ($XDG_CONFIG_HOME/joulemeter/, ~/Library/Application
Support/joulemeter/ or %APPDATA%\\joulemeter\\); a key in the project's file wins over the
user's. `$JOULEMETER_CONFIG` names one file instead of both. Format (every key optional):

    country = "DE"             # ISO code or name, as `--country` takes it
    region = "DE"              # a finer grid region where there is one (US-CA, CA-QC)
    pue = 1.2                  # a number ≥ 1 or a preset name ("hyperscale")
    price = 0.30               # per kWh
    currency = "EUR"
    ledger = "~/ledger.sqlite" # path or database URL

    [market]                   # Scope 2 market-based instruments (reports.scope2)
    supplier_factor_g_per_kwh = 120.0
    supplier = "Tariff X, supplier disclosure 2025"
    residual_mix_g_per_kwh = 550.0
    [[market.certificates]]
    name = "Guarantees of origin 2025"
    mwh = 10.0
    factor_g_per_kwh = 0.0
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from joulemeter.meter.errors import JoulemeterError

CONFIG_FILE_NAME = "joulemeter.toml"
CONFIG_ENV = "JOULEMETER_CONFIG"
_KEYS = {"country": str, "region": str, "pue": (int, float, str), "price": (int, float),
         "currency": str, "ledger": str, "market": dict}


class ConfigError(JoulemeterError):
    """A joulemeter.toml that cannot be read or holds a key of the wrong kind (says file and key)."""


@dataclass(frozen=True)
class Config:
    """The defaults a joulemeter.toml gave; None where it gave none. `files` were read, in order."""

    country: str | None = None
    region: str | None = None
    pue: float | str | None = None
    price: float | None = None
    currency: str | None = None
    ledger: str | None = None
    market: dict[str, Any] = field(default_factory=dict)
    files: tuple[Path, ...] = ()
    origin: dict[str, Path] = field(default_factory=dict)  # key -> the file that set it


def config_files(cwd: Path | None = None) -> list[Path]:
    """The config files that apply here, the user's first and the project's last (it wins)."""
    named = os.environ.get(CONFIG_ENV)
    if named:
        return [Path(named).expanduser()]
    found = []
    user = _user_config_dir() / "joulemeter" / CONFIG_FILE_NAME
    if user.is_file():
        found.append(user)
    here = (cwd or Path.cwd()).absolute()
    for folder in (here, *here.parents):
        candidate = folder / CONFIG_FILE_NAME
        if candidate.is_file():
            if candidate != user:
                found.append(candidate)
            break
    return found


def load_config(cwd: Path | None = None) -> Config:
    """The defaults of every config file that applies here (none: an empty Config)."""
    values: dict[str, Any] = {}
    origin: dict[str, Path] = {}
    files = config_files(cwd)
    for path in files:
        for key, value in _read(path).items():
            values[key] = value
            origin[key] = path
    return Config(**values, files=tuple(files), origin=origin)


def _read(path: Path) -> dict[str, Any]:
    """One file's keys, each checked for its kind."""
    toml = _toml_module(path)
    try:
        with path.open("rb") as f:
            data = toml.load(f)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except toml.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    for key, value in data.items():
        kinds = _KEYS.get(key)
        if kinds is None:
            raise ConfigError(f"{path}: unknown key {key!r}; the keys are {', '.join(_KEYS)}")
        if isinstance(value, bool) or not isinstance(value, kinds):
            raise ConfigError(f"{path}: {key} = {value!r} is not a {_kind_words(kinds)}")
    if "price" in data:
        data["price"] = float(data["price"])
    if isinstance(data.get("pue"), int):
        data["pue"] = float(data["pue"])
    return data


def _toml_module(path: Path) -> Any:
    """tomllib (Python 3.11+), else tomli where it is installed."""
    if sys.version_info >= (3, 11):
        import tomllib

        return tomllib
    try:
        import tomli
    except ModuleNotFoundError:
        raise ConfigError(
            f"{path} is a TOML file, and Python {'.'.join(map(str, sys.version_info[:2]))} "
            "reads TOML only with the tomli package: pip install tomli (or remove the file)"
        ) from None
    return tomli


def _kind_words(kinds: type | tuple[type, ...]) -> str:
    names = {int: "number", float: "number", str: "string", dict: "table"}
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    return " or ".join(dict.fromkeys(names[k] for k in kinds))


def _user_config_dir() -> Path:
    """XDG_CONFIG_HOME (or ~/.config) on Linux, the platform's own folder elsewhere."""
    home = Path.home()
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA") or home / "AppData" / "Roaming")
    if sys.platform == "darwin":
        return home / "Library" / "Application Support"
    return Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
