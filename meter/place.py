"""Where a run runs, from what this process is told; never from a network lookup.

The country and region come from the first of: the API (`EnergyMeter(country="DE")`),
$JOULEMETER_COUNTRY / $JOULEMETER_REGION, a joulemeter.toml (meter.config). The cloud
provider and region come from the environment variables the clouds set, where present:

    AWS_REGION, AWS_DEFAULT_REGION   AWS (Lambda, ECS, SageMaker set AWS_REGION; the AWS CLI
                                     and SDKs read both: AWS CLI user guide, "Environment
                                     variables to configure the AWS CLI")
    FUNCTION_REGION                  Google Cloud Run functions, 1st gen (runtime variable)
    GOOGLE_CLOUD_REGION              Google Cloud, where a deployment sets it
    REGION_NAME                      Azure App Service and Functions; sometimes the long name
                                     ("West Europe"), shortened as Azure tools do (no spaces,
                                     lower case: AzureAD/microsoft-authentication-library-for-dotnet#2803)

The reports turn a cloud region into its country and grid (reports/data/cloud_regions.csv).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from joulemeter.meter.config import load_config
from joulemeter.meter.run import Location

COUNTRY_ENV = "JOULEMETER_COUNTRY"
REGION_ENV = "JOULEMETER_REGION"
#: (provider, variable) in the order they are read
CLOUD_REGION_ENVS = (
    ("aws", "AWS_REGION"),
    ("aws", "AWS_DEFAULT_REGION"),
    ("gcp", "FUNCTION_REGION"),
    ("gcp", "GOOGLE_CLOUD_REGION"),
    ("azure", "REGION_NAME"),
)


def resolve_location(
    country: str | None = None,
    region: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Location | None:
    """The run's Location from the API values, the environment and joulemeter.toml; None if
    nothing says where it runs (reports then use the world average, and say so)."""
    env = os.environ if environ is None else environ
    source = None
    if country or region:
        source = "api"
    elif env.get(COUNTRY_ENV) or env.get(REGION_ENV):
        country, region = env.get(COUNTRY_ENV) or None, env.get(REGION_ENV) or None
        source = "env " + " and ".join(n for n in (COUNTRY_ENV, REGION_ENV) if env.get(n))
    else:
        config = load_config(cwd)
        if config.country or config.region:
            country, region = config.country, config.region
            where = config.origin.get("country") or config.origin.get("region")
            source = f"config {where}"
    provider, cloud_region, variable = _cloud(env)
    if source is None and provider is None:
        return None
    if source is None:
        source = f"cloud {variable}"
    return Location(country=_clean(country), region=_clean(region), cloud_provider=provider,
                    cloud_region=cloud_region, source=source)


def _cloud(env: Mapping[str, str]) -> tuple[str | None, str | None, str | None]:
    """(provider, its region name, the variable read), or Nones outside a known cloud."""
    for provider, variable in CLOUD_REGION_ENVS:
        value = (env.get(variable) or "").strip()
        if value:
            if provider == "azure":
                value = value.replace(" ", "").lower()
            return provider, value, variable
    return None, None, None


def _clean(text: str | None) -> str | None:
    return text.strip() or None if text else None
