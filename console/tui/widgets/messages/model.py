"""Message logs as data: numbered lines with a severity, a bounded store and its filter.

Both logs of the console use it: Operating System Messages (the guest's console output and
the operator's echoed commands) and Hardware Messages (acknowledgements, refusals, machine
errors). Pure Python, so the filtering rules are tested without a terminal.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

# printk levels (0 emergency ... 7 debug) to the severity names the log styles use.
PRINTK_SEVERITY = {0: "emergency", 1: "emergency", 2: "emergency", 3: "error",
                   4: "warning", 5: "notice", 6: "info", 7: "debug"}
# Severities from most to least important; a level filter keeps a prefix of this list.
SEVERITY_RANK = {"emergency": 0, "error": 3, "refused": 3, "warning": 4, "notice": 5,
                 "operator": 5, "ok": 5, "info": 6, "output": 6, "debug": 7}
LEVEL_CHOICES = (("all", 7), ("info", 6), ("notice", 5), ("warning", 4), ("error", 3))
DEFAULT_LIMIT = 20_000


@dataclass(frozen=True)
class LogLine:
    """One numbered line of a log."""

    seq: int
    text: str
    severity: str = "info"
    t: int | None = None  # virtual ns, when the machine said it
    priority: bool = False
    cpu: int | None = None

    def stamp(self) -> str:
        """The time column: virtual seconds, as the kernel prints them."""
        return f"{self.t / 1e9:11.6f}" if self.t is not None else " " * 11

    def matches(self, needle: str, max_rank: int) -> bool:
        if SEVERITY_RANK.get(self.severity, 6) > max_rank:
            return False
        return not needle or needle in self.text.lower()


class LogStore:
    """The last `limit` lines of a log, numbered from 1, and the indexes a filter keeps."""

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self.lines: deque[LogLine] = deque(maxlen=limit)
        self._next_seq = 1
        self.needle = ""
        self.max_rank = 7

    def add(self, text: str, severity: str = "info", *, t: int | None = None,
            priority: bool = False, cpu: int | None = None) -> list[LogLine]:
        """Append text (one line per line of it); returns the new lines."""
        added = []
        for part in text.splitlines() or [""]:
            line = LogLine(self._next_seq, _printable(part), severity, t, priority, cpu)
            self._next_seq += 1
            self.lines.append(line)
            added.append(line)
        return added

    def set_filter(self, needle: str = "", max_rank: int = 7) -> None:
        """Keep lines containing needle (any case) of at least the severity max_rank."""
        self.needle = needle.strip().lower()
        self.max_rank = max_rank

    @property
    def filtering(self) -> bool:
        return bool(self.needle) or self.max_rank < 7

    def visible(self) -> list[LogLine]:
        """The lines the current filter keeps, oldest first."""
        return [line for line in self.lines if line.matches(self.needle, self.max_rank)]

    def keep(self, lines: Iterable[LogLine]) -> list[LogLine]:
        """Of some new lines, those the current filter keeps."""
        return [line for line in lines if line.matches(self.needle, self.max_rank)]


def _printable(text: str) -> str:
    # Guest output is bytes the guest chose: control characters must not reach the terminal.
    return "".join(ch if ch.isprintable() else "\ufffd" for ch in text.expandtabs())


def severity_of_console(level: int, source: str) -> str:
    """The severity of a console event: its printk level, or `operator` for echoed commands."""
    if source == "operator":
        return "operator"
    return PRINTK_SEVERITY.get(level, "info")
