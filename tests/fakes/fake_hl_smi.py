"""A fake `hl-smi` on PATH, answering the CSV query as Intel's docs describe it.

Intel Gaudi docs, "System Management Interface Tool (hl-smi)": `-Q <fields>` selects the
fields (index, module_id, uuid, bus_id, name, power.draw, …) and `-f csv,noheader` prints
one CSV row per device, the power with its unit ("98 W"). The devices and their power
live in a JSON state file the test rewrites between reads; `exit_code` makes the tool fail
as it does without its driver, and a device left out of the state is a lost device; `raw` is printed as it is.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

SCRIPT = """#!{python}
import json, sys
state = json.load(open({state!r}))
if state.get("exit_code"):
    print(state.get("stderr", "hl-smi: no devices found"), file=sys.stderr)
    sys.exit(state["exit_code"])
args = sys.argv[1:]
fields = args[args.index("-Q") + 1].split(",")
assert args[args.index("-f") + 1] == "csv,noheader", args
if "raw" in state:
    print(state["raw"], end="")
    sys.exit(0)
for device in state["devices"]:
    print(", ".join(str(device[f]) for f in fields))
"""


def gaudi(index: int, power: str = "98 W", name: str = "HL-225") -> dict[str, str | int]:
    """One Gaudi 2 device as hl-smi lists it."""
    return {"index": index, "module_id": index, "uuid": f"01P0-HL2080A0-15-TNPS34-0{index}-04-03",
            "bus_id": f"0000:{0x19 + index:02x}:00.0", "name": name, "power.draw": power}


class FakeHlSmi:
    """The script in `folder` and its state; `path` is the executable."""

    def __init__(self, folder: Path, devices: list[dict]) -> None:
        self.state_file = folder / "hl-smi-state.json"
        self.path = folder / "hl-smi"
        self.state: dict = {"devices": devices}
        self.save()
        self.path.write_text(SCRIPT.format(python=sys.executable, state=str(self.state_file)))
        self.path.chmod(0o755)

    def save(self) -> None:
        self.state_file.write_text(json.dumps(self.state))
