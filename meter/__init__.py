"""joulemeter's measuring layer: meter the energy of any code and keep every run in a ledger.

    from joulemeter.meter import EnergyMeter
    with EnergyMeter("train") as m:
        ...
    print(m.run.total_energy_j)
"""

import logging

from joulemeter.meter.errors import JoulemeterError
from joulemeter.meter.meter import EnergyMeter, MeterOptions, current_meter, metered
from joulemeter.meter.run import (
    Domain,
    DomainEnergy,
    Gap,
    Provenance,
    Run,
    Sample,
    Status,
    Window,
)

# A library logs, it does not print: without the application's own logging set-up,
# nothing from the "joulemeter" logger reaches the terminal.
logging.getLogger("joulemeter").addHandler(logging.NullHandler())

__all__ = [
    "Domain",
    "DomainEnergy",
    "EnergyMeter",
    "Gap",
    "JoulemeterError",
    "MeterOptions",
    "Provenance",
    "Run",
    "Sample",
    "Status",
    "Window",
    "current_meter",
    "metered",
]
