"""CodeCarbon's host columns are read and written from one declared mapping."""

from __future__ import annotations

import io

from joulemeter.integrations.codecarbon import export_codecarbon_csv, read_codecarbon_csv
from joulemeter.meter.run import Domain, DomainEnergy, Provenance, Run, Status


def test_a_runs_host_facts_survive_export_to_codecarbon_and_import_back(tmp_path) -> None:
    host = {"os": "Linux-6.8-x86_64", "python": "3.11.7", "cpu_model": "AMD EPYC 9654",
            "logical_cpus": 192, "ram_gb": 1511.5, "gpus": ["NVIDIA H200"]}  # fmt: skip
    gpu = Domain("gpu:0", "gpu", "NVIDIA H200", Provenance.COUNTER, "NVML")
    run = Run(
        "0123456789abcdef0123456789abcdef", "job", status=Status.COMPLETED,
        started_at="2026-03-01T12:00:00+00:00", ended_at="2026-03-01T12:01:00+00:00",
        duration_s=60.0, host=host, domains=[gpu],
        energy={"gpu:0": DomainEnergy("gpu:0", 36_000.0, Provenance.COUNTER, 600.0, None)},
    )  # fmt: skip
    buffer = io.StringIO()
    export_codecarbon_csv([run], buffer)
    path = tmp_path / "emissions.csv"
    path.write_text(buffer.getvalue())
    (again,) = read_codecarbon_csv(path)
    assert again.host == {**host, "gpus": ["1 x NVIDIA H200"]}
