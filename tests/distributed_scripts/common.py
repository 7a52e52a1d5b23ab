"""What the torchrun test scripts share."""

from __future__ import annotations

import os
import sys


def exit_without_teardown() -> None:
    """Leave the process at once, skipping torch.distributed's teardown.

    With torch 2.13 on gloo, a rank sometimes aborts at exit ("terminate called without
    an active exception", SIGABRT) — about 1 run in 10 here with two ranks, with or
    without joulemeter (a plain DDP script reproduces it). The merged run is already in
    the ledger when this is called; the abort would only make torchrun report a failure.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
