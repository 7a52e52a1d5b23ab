"""What a user installs: one import name, `joulemeter`, that nothing else on the path shadows."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LAYERS = ("meter", "reports", "integrations")
PACKAGE_SOURCES = ("joulemeter", *LAYERS)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from a copy of the sources, so no stale build/ folder can leak into it."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    for name in PACKAGE_SOURCES:
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(out), str(source)],
        check=True, capture_output=True, text=True, timeout=300,
    )
    (built,) = out.glob("joulemeter-*.whl")
    return built


def _dist_info_file(names: list[str], wheel_zip: zipfile.ZipFile, filename: str) -> str:
    (path,) = [n for n in names if n.endswith(f".dist-info/{filename}")]
    return wheel_zip.read(path).decode()


@pytest.mark.slow
def test_the_wheel_installs_only_the_joulemeter_package_with_every_data_file(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as wheel_zip:
        names = wheel_zip.namelist()
        top_level = _dist_info_file(names, wheel_zip, "top_level.txt").split()
        entry_points = _dist_info_file(names, wheel_zip, "entry_points.txt")
    assert top_level == ["joulemeter"]
    outside = {n.split("/")[0] for n in names} - {"joulemeter"}
    assert all(top.endswith(".dist-info") for top in outside), outside
    modules = [p.relative_to(REPO) for layer in LAYERS for p in (REPO / layer).rglob("*.py")]
    for module in modules:  # every module of every subpackage, listed in pyproject or not
        assert f"joulemeter/{module.as_posix()}" in names, module
    data_files = [p.relative_to(REPO).as_posix() for p in REPO.glob("*/data/*") if p.is_file()]
    assert data_files, "the repository has data files"
    for data_file in data_files:
        assert f"joulemeter/{data_file}" in names
    assert "joulemeter = joulemeter.integrations.cli:main" in entry_points


@pytest.mark.slow
def test_the_installed_wheel_works_beside_packages_and_files_named_like_its_layers(
    wheel: Path, tmp_path: Path
) -> None:
    """PyPI has `reports`, `METER` and `integrations`; users have their own `reports.py`."""
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        check=True, capture_output=True, text=True, timeout=300,
    )
    for name in ("reports", "meter", "integrations"):  # someone else's packages, same site dir
        (target / name).mkdir()
        (target / name / "__init__.py").write_text(f"OWNER = 'pypi {name}'\n")
    project = tmp_path / "project"
    project.mkdir()
    (project / "reports.py").write_text("OWNER = 'the user'\n")  # wins over the site's `reports`
    check = textwrap.dedent(
        """
        import meter, integrations, reports
        assert (meter.OWNER, integrations.OWNER, reports.OWNER) == (
            "pypi meter", "pypi integrations", "the user"), "their modules are theirs"
        import joulemeter
        from joulemeter import EnergyMeter, footprint, resolve_factors
        from joulemeter.meter.sources.estimate import CpuEstimate
        assert joulemeter.__file__.startswith(sys.argv[1]), joulemeter.__file__
        factors = resolve_factors(country="DE")  # cited CSVs load through importlib.resources
        assert factors.intensity_g_per_kwh > 0
        CpuEstimate().open()
        from joulemeter.reports.render import render
        print("ok")
        """
    )
    # -S: no site-packages processing, so the repository's editable install is not seen;
    # the test environment's site-packages come last, for the dependencies only.
    dependencies = sysconfig.get_paths()["purelib"]
    env = {"PYTHONPATH": f"{target}:{dependencies}", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-S", "-c", "import sys\n" + check, str(target)],
        cwd=project, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
    cli = subprocess.run(
        [sys.executable, "-S", "-m", "joulemeter", "factors", "--country", "FR"],
        cwd=project, env=env, capture_output=True, text=True, timeout=120,
    )
    assert cli.returncode == 0, cli.stderr
    assert "FR" in cli.stdout or "France" in cli.stdout


def test_no_module_imports_a_layer_under_its_bare_name() -> None:
    """A bare `import meter` would load a second copy of every module it touches."""
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--select", "TID251", "--no-cache", str(REPO)],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_name_the_facade_lists_resolves_to_its_layers_object() -> None:
    import importlib

    import joulemeter

    assert sorted(joulemeter.__all__) == sorted(joulemeter._EXPORTS)
    for name in joulemeter.__all__:
        module = importlib.import_module(joulemeter._EXPORTS[name])
        assert getattr(joulemeter, name) is getattr(module, name)
