"""Where a run ran: the API, then the environment, then joulemeter.toml, then cloud variables,
each recorded with where it came from; a bad config file gets an error naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from joulemeter.meter.config import ConfigError, load_config
from joulemeter.meter.meter import EnergyMeter
from joulemeter.meter.place import resolve_location
from joulemeter.meter.run import Location
from joulemeter.meter.store.location import default_location
from tests.doubles import LinearCounterSource


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """No user config and no location variables but those a test sets; cwd is a project folder."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "user-config"))
    for name in ("JOULEMETER_CONFIG", "JOULEMETER_COUNTRY", "JOULEMETER_REGION", "JOULEMETER_LEDGER",
                 "AWS_REGION", "AWS_DEFAULT_REGION", "FUNCTION_REGION", "GOOGLE_CLOUD_REGION", "REGION_NAME"):
        monkeypatch.delenv(name, raising=False)
    project = tmp_path / "project" / "src"
    project.mkdir(parents=True)
    monkeypatch.chdir(project)
    return tmp_path


def test_nothing_known_records_no_location(home):
    assert resolve_location() is None


def test_the_api_wins_over_environment_and_config(home, monkeypatch):
    (home / "project" / "joulemeter.toml").write_text('country = "FR"\n')
    monkeypatch.setenv("JOULEMETER_COUNTRY", "SE")
    assert resolve_location("DE") == Location(country="DE", source="api")


def test_the_environment_wins_over_config(home, monkeypatch):
    (home / "project" / "joulemeter.toml").write_text('country = "FR"\n')
    monkeypatch.setenv("JOULEMETER_REGION", "CA-QC")
    assert resolve_location() == Location(region="CA-QC", source="env JOULEMETER_REGION")


def test_a_project_config_above_the_working_folder_is_found_and_named(home):
    config = home / "project" / "joulemeter.toml"
    config.write_text('country = "FR"\nregion = "FR"\n')
    assert resolve_location() == Location(country="FR", region="FR", source=f"config {config}")


def test_the_project_config_wins_key_by_key_over_the_users(home):
    user = home / "user-config" / "joulemeter"
    user.mkdir(parents=True)
    (user / "joulemeter.toml").write_text('country = "NO"\npue = "hyperscale"\n')
    (home / "project" / "joulemeter.toml").write_text('country = "FR"\n')
    config = load_config()
    assert (config.country, config.pue) == ("FR", "hyperscale")
    assert config.origin["pue"] == user / "joulemeter.toml"


def test_cloud_variables_give_provider_and_region(home, monkeypatch):
    monkeypatch.setenv("REGION_NAME", "West Europe")
    assert resolve_location() == Location(cloud_provider="azure", cloud_region="westeurope",
                                          source="cloud REGION_NAME")
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    location = resolve_location("DE")
    assert (location.country, location.cloud_provider, location.cloud_region) == ("DE", "aws", "eu-central-1")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("country = 49\n", "country = 49 is not a string"),
        ("contry = 'DE'\n", "unknown key 'contry'"),
        ("country = \n", "not valid TOML"),
        ("pue = true\n", "pue = True is not a number or string"),
    ],
)
def test_a_bad_config_file_is_refused_naming_file_and_key(home, text, words):
    config = home / "project" / "joulemeter.toml"
    config.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config()
    assert str(config) in str(caught.value) and words in str(caught.value)


def test_a_config_ledger_is_the_default_ledger_relative_to_its_file(home):
    (home / "project" / "joulemeter.toml").write_text('ledger = "runs/ledger.sqlite"\n')
    assert default_location() == str(home / "project" / "runs" / "ledger.sqlite")


def test_a_metered_run_records_its_location(home, tmp_path):
    with EnergyMeter("located", country="DE", store=False, interval_s=0.01, sources=[LinearCounterSource()]) as meter:
        pass
    assert meter.run.location == Location(country="DE", source="api")


def test_on_python_3_10_without_tomli_a_config_file_gets_a_clear_message(home, monkeypatch):
    import sys

    (home / "project" / "joulemeter.toml").write_text('country = "FR"\n')
    monkeypatch.setattr(sys, "version_info", (3, 10, 14, "final", 0))
    monkeypatch.setitem(sys.modules, "tomli", None)  # import tomli raises ModuleNotFoundError
    with pytest.raises(ConfigError, match="pip install tomli"):
        load_config()
