"""`python -m integrations.cli` runs the joulemeter command line."""

from integrations.cli import main

main()
