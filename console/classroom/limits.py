"""What one trainee may cost the class machine: the limits of `dumplab serve`.

Every number here has a flag (console/classroom/serve.py) and is documented in
docs/CLASSROOM.md. The defaults come from the host where that makes sense (cores, free memory).
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path

MIB = 1 << 20
# What a console costs beyond its LPAR's storage: Python, Textual, the engine and its
# translation buffer (capped at 32 MiB, machine/engine.py). Measured: an idle console without
# an LPAR is ~65 MiB; a booted 128M LPAR's console ~200 MiB.
SESSION_OVERHEAD = 150 * MIB
SESSIONS_PER_CORE = 8  # an idle LPAR costs <2 % of a core; a trainee is mostly idle
# The console's address space is much larger than what it uses (thread stacks, allocator
# arenas, the engine's reservations): the RLIMIT_AS ceiling is storage + this.
ADDRESS_SPACE_OVERHEAD = 2048 * MIB
MAX_LPAR_MEMORY = 1024 * MIB  # a console's LPAR storage, whatever the profile says
MAX_WIDTH, MAX_HEIGHT = 300, 100  # terminal cells: a bigger screen costs memory and bandwidth
MIN_WIDTH, MIN_HEIGHT = 20, 5
STDIN_MAX_CHARS = 4096  # one ["stdin", ...] message: a key, a mouse event, a short paste
STDIN_RATE = 8192  # characters per second a browser may send, sustained ...
STDIN_BURST = 32768  # ... and at once
IDLE_TIMEOUT_MINUTES = 60.0


def mem_available(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """MemAvailable in bytes (Linux), or None where there is no /proc/meminfo."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def session_budget(lpar_memory: int) -> int:
    """The memory one session is planned to use: its LPAR's storage and the console."""
    return lpar_memory + SESSION_OVERHEAD


def default_max_sessions(lpar_memory: int, cores: int | None = None,
                         available: int | None = None) -> int:
    """min(cores x 8, MemAvailable / per-session budget), at least 1."""
    cores = cores or os.cpu_count() or 1
    by_cpu = cores * SESSIONS_PER_CORE
    available = mem_available() if available is None else available
    by_memory = by_cpu if available is None else available // session_budget(lpar_memory)
    return max(1, min(by_cpu, by_memory))


def address_space_limit(lpar_memory: int) -> int:
    """RLIMIT_AS of one console: its LPAR's storage counted, plus the process's own."""
    return lpar_memory + ADDRESS_SPACE_OVERHEAD


def limit_address_space(limit: int) -> None:
    """In the console process (before exec): cap its address space. A console that grows
    past it gets MemoryError or a failed mmap, not the class machine's OOM killer."""
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def clamp_size(width: object, height: object) -> tuple[int, int]:
    """A terminal size from a browser, as integers within the class's bounds."""
    return (_clamp(width, 80, MIN_WIDTH, MAX_WIDTH), _clamp(height, 24, MIN_HEIGHT, MAX_HEIGHT))


def _clamp(value: object, default: int, low: int, high: int) -> int:
    try:
        number = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError):
        number = default
    return max(low, min(high, number))


@dataclass
class InputBudget:
    """A token bucket for one browser's keyboard: STDIN_RATE characters per second, at
    most STDIN_BURST at once. Keys that do not fit are dropped, not queued: a flood of input
    must not pin a core or grow the console."""

    rate: float = STDIN_RATE
    burst: float = STDIN_BURST
    tokens: float = STDIN_BURST
    stamp: float = 0.0
    dropped: int = 0

    def take(self, size: int, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        if self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if size > STDIN_MAX_CHARS or size > self.tokens:
            self.dropped += size
            return False
        self.tokens -= size
        return True
