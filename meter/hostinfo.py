"""What machine a run happened on: host, OS, CPU, memory and GPUs, read locally and cheaply.

Nothing here touches the network. On Linux the CPU model and topology come from
/proc/cpuinfo; elsewhere from `platform`, with unknown values left as None.
"""

from __future__ import annotations

import functools
import getpass
import platform
import socket
import sys
from pathlib import Path
from typing import Any

from joulemeter.meter.units import BYTES_PER_GB

_CPUINFO = Path("/proc/cpuinfo")


def host_info() -> dict[str, Any]:
    """Hostname, user, OS, Python, CPU model, logical CPUs, RAM (GB), VM or not, and GPU names."""
    import psutil

    return {
        "hostname": socket.gethostname(),
        "user": _user(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": cpu_model(),
        "logical_cpus": psutil.cpu_count(logical=True),
        "ram_gb": psutil.virtual_memory().total / BYTES_PER_GB,
        "virtual_machine": is_virtual_machine(),
        "gpus": _gpu_names(),
    }


def _user() -> str | None:
    """The login name running the process (an inventory groups by it), None if unknown."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry, e.g. a container with an arbitrary uid
        return None


def cpu_model() -> str | None:
    """The CPU's model name, e.g. "Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz"; None if unknown."""
    for block in _cpuinfo_blocks():
        if block.get("model name"):
            return block["model name"]
    return platform.processor() or None


def is_virtual_machine() -> bool | None:
    """True under a hypervisor (the `hypervisor` CPU flag), None where /proc/cpuinfo is absent."""
    blocks = _cpuinfo_blocks()
    if not blocks:
        return None
    return "hypervisor" in blocks[0].get("flags", "").split()


def threads_per_socket() -> int | None:
    """Logical CPUs per physical CPU package ("siblings"), None where it cannot be read."""
    for block in _cpuinfo_blocks():
        siblings = block.get("siblings", "")
        if siblings.isdigit() and int(siblings) > 0:
            return int(siblings)
    return None


@functools.lru_cache(maxsize=1)
def _cpuinfo_blocks() -> tuple[dict[str, str], ...]:
    """/proc/cpuinfo parsed into one dict per logical CPU; empty off Linux or if unreadable."""
    if not sys.platform.startswith("linux"):
        return ()
    try:
        text = _CPUINFO.read_text(errors="replace")
    except OSError:
        return ()
    blocks = []
    for chunk in text.split("\n\n"):
        fields = {}
        for line in chunk.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                fields[key.strip()] = value.strip()
        if fields:
            blocks.append(fields)
    return tuple(blocks)


def _gpu_names() -> list[str]:
    """Names of the GPUs NVML can read (as this process sees them), empty if none."""
    from joulemeter.meter.sources.nvml import NvmlSource

    status = NvmlSource().status()
    return [d.device for d in status.domains]
