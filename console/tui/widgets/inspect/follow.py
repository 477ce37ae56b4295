"""Following (`w` in Storage) the ELF note being filled while the purgatory saves every CPU's registers (the
`notes` stage), from events only: `notes_saved` says which note was just written (address,
size, pr_pid), and the next CPU's note starts right after it.

What the stage changed is shown against the ELF core header as the purgatory verified it:
its `segment_progress` events give the header's place (segment `elfcorehdr`), and its
SHA-256 proves the bytes there are kexec's until the first note is written. So storage read
there after such an event and before any `notes_saved` is the notes stage's starting point,
however fast the stage then runs (it often begins and ends within one run slice). Pure
Python: tests feed it synthetic events.
"""

from __future__ import annotations

from collections.abc import Iterable

from machine.events import Event

HEADER_SEGMENT = "elfcorehdr"
BASELINE_MAX = 64 << 10


class NoteFollow:
    """Where the note being filled is, and where the header to compare with lies."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.last: tuple[int, int, int] | None = None  # (pid, address, size) of the last written
        self.running = False
        self.header: tuple[int, int] | None = None  # (address, size) of the ELF core header
        self.header_as_verified = False  # no note written since the purgatory hashed it

    def feed(self, events: Iterable[Event]) -> bool:
        """Take events in; True if the note to show (or the header) changed."""
        changed = False
        for event in events:
            changed |= self._feed_one(event)
        return changed

    def _feed_one(self, event: Event) -> bool:
        kind = event.kind
        if kind == "segment_progress" and event.name == HEADER_SEGMENT:  # type: ignore[attr-defined]
            self.header = (int(event.address), int(event.total))  # type: ignore[attr-defined]
            self.header_as_verified = True
        elif kind == "stage" and event.stage == "notes":  # type: ignore[attr-defined]
            if event.status == "running" and not self.running:  # type: ignore[attr-defined]
                self.last = None
            self.running = event.status == "running"  # type: ignore[attr-defined]
        elif kind == "notes_saved":
            self.last = (int(event.pid), int(event.address), int(event.size))  # type: ignore[attr-defined]
            self.header_as_verified = False
        elif kind == "hmc" and event.operation == "activate":  # type: ignore[attr-defined]
            self.reset()
        else:
            return False
        return True

    def target(self, cpus: int) -> tuple[int, str] | None:
        """(address, what it is): while the stage runs and CPUs are left, the next CPU's note,
        which the purgatory fills now; else the last note written."""
        if self.last is None:
            return None
        pid, address, size = self.last
        if self.running and pid < cpus:
            return address + size, f"note of CPU {pid} (pr_pid {pid + 1}) being filled"
        return address, f"note of CPU {pid - 1} (pr_pid {pid}), written"

    def baseline_window(self) -> tuple[int, int] | None:
        """The header to read as the stage's starting point, while it is still as verified."""
        if self.header is None or not self.header_as_verified:
            return None
        return self.header[0], min(BASELINE_MAX, self.header[1])
