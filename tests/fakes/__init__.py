"""Test doubles of the hardware interfaces the power sources read (NVML, powercap sysfs)."""
