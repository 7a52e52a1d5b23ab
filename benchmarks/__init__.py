"""Benchmarks of joulemeter against its peers: `python3 benchmarks/run_all.py [--quick]`."""
