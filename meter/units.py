"""Unit conversions, in one place: each exact by definition (SI, or the 1959 yard and pound agreement).

Read a name as "so many of the first unit in one of the second": `energy_j / J_PER_KWH` is kWh.
"""

from __future__ import annotations

S_PER_HOUR = 3600.0
MINUTES_PER_HOUR = 60.0
HOURS_PER_DAY = 24.0
HOURS_PER_YEAR = 365.25 * HOURS_PER_DAY  # a Julian year

J_PER_WH = S_PER_HOUR  # 1 W for 1 h
J_PER_KWH = 1000.0 * J_PER_WH  # 3.6 MJ
KWH_PER_MWH = 1000.0
L_PER_US_GALLON = 3.785411784  # exact: 231 cubic inches (1959 international yard)
J_PER_MILLIJOULE = 1e-3
J_PER_MICROJOULE = 1e-6
W_PER_MILLIWATT = 1e-3

G_PER_KG = 1000.0
G_PER_POUND = 453.59237

BYTES_PER_GB = 1e9  # decimal gigabyte, as Cloud Carbon Footprint's W per GB uses it
