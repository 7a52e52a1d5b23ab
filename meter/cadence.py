"""When the timeline ticks next: often while power moves, rarely while it holds steady.

Energy comes from counters read at the edges, so a tick is only the picture (and the
integration of domains without a counter). While every domain's power stays within
`tolerance` of the power where the steady stretch began (or within `floor_w`, for domains
near zero), the interval doubles from `base_s` up to `max_s`; the first tick that moves
past it, or reads no power, brings the interval back to `base_s`. An idle run then costs a
tick every `max_s` instead of every `base_s`, and a plot still gets `base_s` detail where
the power changes (a change is seen at the next tick, at most `max_s` late).
"""

from __future__ import annotations

from collections.abc import Iterable

from joulemeter.meter.run import Sample

#: Power within this share of the steady stretch's start is "the same": about the
#: steady-state gain error of a board's power sensor, ±5 % (Yang et al., arXiv 2312.02741;
#: docs/measuring.md, "Accuracy"): a move smaller than what the sensor is accurate to.
DEFAULT_TOLERANCE = 0.05
#: ... or within this many watts, so that a domain idling near 0 W does not count noise.
DEFAULT_FLOOR_W = 0.5


class Cadence:
    """The timeline's next interval from each tick's samples (`after_tick`); fixed when
    `max_s` equals `base_s`."""

    def __init__(
        self,
        base_s: float,
        max_s: float | None = None,
        *,
        tolerance: float = DEFAULT_TOLERANCE,
        floor_w: float = DEFAULT_FLOOR_W,
    ) -> None:
        max_s = base_s if max_s is None else max_s
        if base_s <= 0 or max_s < base_s:
            raise ValueError(f"the timeline's interval must be positive and at most its maximum, got {base_s!r} and {max_s!r} s")
        self.base_s = base_s
        self.max_s = max_s
        self.tolerance = tolerance
        self.floor_w = floor_w
        self.interval_s = base_s
        self._steady_from: dict[str, float] | None = None  # power per domain where the stretch began

    @property
    def adaptive(self) -> bool:
        return self.max_s > self.base_s

    @property
    def backed_off(self) -> bool:
        """Whether the next tick comes later than `base_s` would have it."""
        return self.interval_s > self.base_s

    def after_tick(self, samples: Iterable[Sample]) -> float:
        """The interval until the next tick, given the tick just taken."""
        if not self.adaptive:
            return self.interval_s
        power = {s.domain: s.power_w for s in samples}
        if any(p is None for p in power.values()) or not power:
            self.reset()
        elif self._steady_from is None or not self._holds(power):  # type: ignore[arg-type]
            self.reset()
            self._steady_from = power  # type: ignore[assignment]
        else:
            self.interval_s = min(self.interval_s * 2, self.max_s)
        return self.interval_s

    def reset(self) -> None:
        """Back to `base_s` from the next tick on (power moved, or a reading failed)."""
        self.interval_s = self.base_s
        self._steady_from = None

    def _holds(self, power: dict[str, float]) -> bool:
        start = self._steady_from
        assert start is not None
        if power.keys() != start.keys():
            return False
        return all(abs(p - start[d]) <= max(self.tolerance * abs(start[d]), self.floor_w) for d, p in power.items())
