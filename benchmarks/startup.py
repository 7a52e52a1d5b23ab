"""Import time of `joulemeter` and start-up of `joulemeter --help`, against CodeCarbon and Zeus.

Every figure comes from fresh subprocesses, interleaved round by round. Import times are
measured inside the child (perf_counter around the import statement), so interpreter
start-up is not in them; command times are wall time of the whole command.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks._stats import spread
from benchmarks.overhead import worker_python

REPO = Path(__file__).resolve().parent.parent
HEAVY_MODULES = ("torch", "pandas", "numpy", "matplotlib", "sqlalchemy")
# What a user writes to get each tool's meter.
IMPORTS = {
    "joulemeter": "from joulemeter import EnergyMeter",
    "codecarbon": "from codecarbon import OfflineEmissionsTracker",
    "zeus": "from zeus.monitor import ZeusMonitor",
}
_IMPORT_PROBE = (
    "import json, sys, time; t = time.perf_counter(); {statement}; "
    "dt = time.perf_counter() - t; "
    "print(json.dumps({{'import_s': dt, 'heavy': [m for m in {heavy!r} if m in sys.modules]}}))"
)


def _import_cmd(python: str, statement: str) -> list[str]:
    return [python, "-c", _IMPORT_PROBE.format(statement=statement, heavy=HEAVY_MODULES)]


def _timed(cmd: list[str]) -> tuple[float, str, int]:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    return time.perf_counter() - t0, done.stdout, done.returncode


def _console_script(name: str, python: str) -> str | None:
    """The `name` command: beside the peers' Python, beside this one (the project's venv,
    where its install put it, on PATH or not), else on PATH."""
    for folder in (Path(python).parent, Path(sys.executable).parent):
        found = shutil.which(name, path=str(folder))
        if found:
            return found
    return shutil.which(name)


def run(*, repeats: int, seed: int = 1) -> dict[str, Any]:
    python = worker_python()
    imports = {m: _import_cmd(python, statement) for m, statement in IMPORTS.items()}
    commands: dict[str, list[str]] = {"python -c pass": [python, "-c", "pass"]}
    errors: dict[str, str] = {}
    for name in ("joulemeter", "codecarbon"):
        path = _console_script(name, python)
        if path:
            commands[f"{name} --help"] = [path, "--help"]
        else:
            errors[f"{name} --help"] = "no such command beside the peers' Python or this one, nor on PATH"
    import_s: dict[str, list[float]] = {m: [] for m in imports}
    heavy: dict[str, list[str]] = {}
    wall_s: dict[str, list[float]] = {c: [] for c in commands}
    rng = random.Random(seed)
    jobs = [("import", m) for m in imports] + [("command", c) for c in commands]
    for _ in range(repeats):
        for kind, name in rng.sample(jobs, len(jobs)):
            if kind == "import":
                _, out, code = _timed(imports[name])
                if code != 0:
                    errors[name] = f"`{IMPORTS[name]}` failed (exit {code})"
                    continue
                probe = json.loads(out.strip().splitlines()[-1])
                import_s[name].append(probe["import_s"])
                heavy[name] = probe["heavy"]
            else:
                elapsed, _, code = _timed(commands[name])
                if code != 0:
                    errors[name] = f"`{name}` failed (exit {code})"
                    continue
                wall_s[name].append(elapsed)
    return {
        "python": python,
        "import_statements": IMPORTS,
        "import_ms": {m: spread([v * 1000 for v in vs]).to_dict() for m, vs in import_s.items() if vs},
        "heavy_modules_loaded": heavy,
        "command_ms": {c: spread([v * 1000 for v in vs]).to_dict() for c, vs in wall_s.items() if vs},
        "errors": errors,
    }
