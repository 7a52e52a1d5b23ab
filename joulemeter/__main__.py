"""`python -m joulemeter` runs the joulemeter command line."""

from joulemeter.integrations.cli import main

main()
