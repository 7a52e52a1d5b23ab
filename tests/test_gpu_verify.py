"""benchmarks/gpu_verify.py runs end to end against the faithful double and gives a verdict.

Its checks on work queued without sync need the meter's device sync (Source.synchronize).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_verify.py"
CHECKS = [
    "discovery: one gpu domain per visible GPU",
    "discovery: energy from the hardware counter",
    "probes: some power reading answers",
    "counter: update period measured",
    "step load: the counter sees the load",
    "window energy matches a direct counter read (within 2 %)",
    "windows shorter than the counter period, and only they, carry the note",
    "work queued without sync is counted at window end",
    "work queued without sync is counted at run stop",
    "selection by UUID prefix (GPU-5b2f0000)",
    "overhead: joulemeter slows the loop by under 5 %",
]


def _verify(tmp_path: Path, **env: str) -> tuple[int, dict]:
    out = tmp_path / "verify.json"
    environment = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--fake", "--quick", "--out", str(out)],
        env={**environment, **env}, capture_output=True, text=True, timeout=300,
    )
    assert out.exists(), done.stderr[-2000:]
    return done.returncode, json.loads(out.read_text())


def test_every_check_passes_against_the_double_and_the_json_says_so(tmp_path):
    status, report = _verify(tmp_path)
    assert report["failed"] == [] and status == 0, report["failed"]
    names = [c["name"] for c in report["checks"]]
    assert [n for n in CHECKS if n not in names] == []
    assert report["backend"] == "fake" and report["gpu"]["uuid"].startswith("GPU-")
    assert report["measured"]["counter_update_s"] > 0


def test_a_failed_check_makes_the_exit_status_non_zero(tmp_path):
    status, report = _verify(tmp_path, CUDA_VISIBLE_DEVICES="GPU-ffffffff")  # names no GPU
    assert status == 1
    assert "window vs counter" in report["failed"]  # no GPU to meter: the meter cannot start
