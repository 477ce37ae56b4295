"""Virtual time. The TOD clock advances with executed instructions, never with host time, so
the same script gives the same clock values, the same interleaving and the same dumps."""

from __future__ import annotations

import datetime

# One emulated instruction takes one virtual nanosecond.
NS_PER_INSTRUCTION = 1
# TOD clock: bit 51 is one microsecond, so one second is 4_096_000_000 units.
TOD_PER_SECOND = 4_096_000_000
_EPOCH_1900 = datetime.datetime(1900, 1, 1, tzinfo=datetime.UTC)
# The virtual machine is activated at 2026-01-01 00:00:00 UTC, always.
ACTIVATION_TIME = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
TOD_AT_ACTIVATION = int((ACTIVATION_TIME - _EPOCH_1900).total_seconds()) * TOD_PER_SECOND


def tod_units(ns: int) -> int:
    """Nanoseconds as TOD-clock units."""
    return ns * 512 // 125


def ns_from_tod_units(units: int) -> int:
    """TOD-clock units as nanoseconds, rounded up."""
    return -(-units * 125 // 512)


class VirtualClock:
    """The LPAR's time: `now` in nanoseconds since activation."""

    def __init__(self) -> None:
        self.now = 0
        self._last_tod = 0

    def tod(self) -> int:
        return TOD_AT_ACTIVATION + tod_units(self.now)

    def store_clock(self) -> int:
        """A TOD value for STCK: the current time, but always greater than the last one handed
        out, as the architecture requires of STCK."""
        value = max(self.tod(), self._last_tod + 1)
        self._last_tod = value
        return value

    def ns_until_tod(self, tod: int) -> int:
        """Virtual nanoseconds from now until the clock reaches tod (0 if already there)."""
        return max(0, ns_from_tod_units(tod - self.tod()))
