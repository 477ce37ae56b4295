"""The dump workflow as data, built from events only (DESIGN §1).

`Timeline` knows the stages of the story in order, and lights each one up from `stage`
events (running / done / failed) and from the operator's HMC operations; `check` events
attach to the stage that was running, with the guest's expected and the host's computed
value. Stage names it does not know are added at the end, in the order they appear, so new
stages of the machine show without a change here. `DumpProgress` turns `dump_progress` events
into a rate and a time left; `DumpRecord`s from `dump_written` events feed the size and time
chart. Pure Python: tests feed it synthetic events.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from machine.events import Event

PRODUCTION_PROGRAM = "kernel"
MAX_STAGE_EVENTS = 50


@dataclass(frozen=True)
class StageInfo:
    """A stage of the story: its event name, a title, and the storage regions it concerns
    (names of the storage map, console/tui/widgets/inspect/regions.py)."""

    name: str
    title: str
    regions: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()


STORY: tuple[StageInfo, ...] = (
    StageInfo("activate", "Activate the LPAR"),
    StageInfo("ipl", "Load (IPL) the production kernel", ("kernel", "lowcore")),
    StageInfo("boot", "Kernel boot", ("lowcore", "os_info", "vmcoreinfo", "kernel")),
    StageInfo("workload", "Workload on every CPU", ("kernel",)),
    StageInfo("zipl", "zipl -d: dump tool installed", ("kernel",)),
    StageInfo("kdump-load", "kdump loaded (kexec -p)", ("crashkernel", "purgatory", "os_info"),
              aliases=("kexec", "kdump-loaded", "kexec-load")),
    StageInfo("hang", "Hang", ("lowcore",)),
    StageInfo("panic", "Panic", ("lowcore",)),
    StageInfo("stop", "Operator: Stop all"),
    StageInfo("dump-load", "Operator: Load dump / PSW Restart", ("save area", "dumper")),
    StageInfo("crash-kexec", "Kernel crash_kexec: status stored", ("save area", "lowcore")),
    StageInfo("dumper", "Stand-alone dumper", ("dumper", "save area")),
    StageInfo("cpu-status", "Dumper: status of every CPU", ("lowcore", "save area")),
    StageInfo("checks", "Checks: os_info, purgatory", ("os_info", "purgatory")),
    # Path D (`zipl -k auto`): the stand-alone kdump's loader copies instead of kdump's swap.
    StageInfo("oldmem-copy", "Stand-alone kdump copies memory", ("crashkernel", "lowcore")),
    StageInfo("purgatory-verify", "Purgatory verify (SHA-256)", ("purgatory", "crashkernel")),
    # The dumper's `kdump` stage is its hand-over to the purgatory in load mode.
    StageInfo("purgatory-load", "Purgatory load", ("purgatory", "crashkernel"),
              aliases=("kdump",)),
    StageInfo("notes", "CPU registers into ELF notes", ("elf header", "crashkernel")),
    StageInfo("swap", "Swap low memory and crashkernel", ("crashkernel", "kernel")),
    StageInfo("kdump-boot", "kdump kernel boot", ("crashkernel", "elf header", "vmcoreinfo")),
    StageInfo("vmcore", "vmcore written (kdump)", ("crashkernel",)),
    StageInfo("full-dump", "Full dump written (s390 format)", ("dumper",)),
    StageInfo("reipl", "Re-IPL of the production system", ("kernel",)),
    StageInfo("zgetdump", "zgetdump: dump copied to a file", ("kernel",)),
)
_BY_NAME = {info.name: info for info in STORY}
_ALIASES = {alias: info.name for info in STORY for alias in info.aliases}
_ADDRESS = re.compile(r"\b0x([0-9a-f]{3,16})\b", re.IGNORECASE)


@dataclass(frozen=True)
class CheckRecord:
    """A checksum or digest check: the guest's value, the host's, and whether they agree."""

    what: str
    expected: str
    computed: str
    ok: bool
    guest_ok: bool | None
    t: int


@dataclass
class SegmentLine:
    """One segment the purgatory hashes: bytes done of total (`segment_progress` events),
    then the digests of its `check` event."""

    index: int
    name: str
    done: int
    total: int
    expected: str = ""
    computed: str = ""
    ok: bool | None = None  # None until the check came


_SEGMENT_CHECK = re.compile(r"segment (\d+) \(.*\) SHA-256")
PURGATORY_STAGES = ("purgatory-verify", "purgatory-load")


@dataclass
class StageRecord:
    """What happened in one stage (the latest status, and everything on the way)."""

    info: StageInfo
    status: str = "pending"  # pending | running | done | failed
    first_t: int | None = None
    last_t: int | None = None
    detail: str = ""
    history: list[tuple[int, str, str]] = field(default_factory=list)
    checks: list[CheckRecord] = field(default_factory=list)
    notes: list[tuple[int, str]] = field(default_factory=list)
    # Watchable detail (issue 13): the purgatory's hashing per segment, the swap's progress.
    segments: dict[int, SegmentLine] = field(default_factory=dict)
    swap: tuple[int, int] | None = None  # (done, total) bytes exchanged

    @property
    def name(self) -> str:
        return self.info.name

    def mark(self, t: int, status: str, detail: str) -> None:
        if status == "running" and self.status != "running":  # a new run: new progress
            self.segments, self.swap = {}, None
        self.status = status
        self.first_t = t if self.first_t is None else self.first_t
        self.last_t = t
        if detail:
            self.detail = detail
        self.history.append((t, status, detail))
        del self.history[:-MAX_STAGE_EVENTS]

    def note(self, t: int, text: str) -> None:
        self.notes.append((t, text))
        del self.notes[:-MAX_STAGE_EVENTS]

    def addresses(self, storage: int | None = None) -> list[int]:
        """Addresses named in this stage's details and notes, for go-to: numbers written as
        addresses (0x...), inside storage when its size is known. A bare run of digits is a
        date in a file name or a byte count, not an address."""
        texts = [self.detail, *(d for _, _, d in self.history), *(n for _, n in self.notes)]
        found = []
        for text in texts:
            for match in _ADDRESS.finditer(text):
                address = int(match.group(1), 16)
                if storage is None or address < storage:
                    found.append(address)
        return list(dict.fromkeys(found))


def field_of(event: Event, *names: str, default: Any = None) -> Any:
    """The first of several field names an event has (kinds still being defined may name
    the same thing differently)."""
    for name in names:
        if hasattr(event, name):
            return getattr(event, name)
    return default


class Timeline:
    """The stages of the story, lit up by events."""

    def __init__(self) -> None:
        self.stages: dict[str, StageRecord] = {}
        self.current: str | None = None
        self._last_ipl_program: str | None = None
        self._orphans: list[CheckRecord] = []
        self.reset()

    def reset(self) -> None:
        self.stages = {info.name: StageRecord(info) for info in STORY}
        self.current = None
        self._orphans = []

    def ordered(self) -> list[StageRecord]:
        return list(self.stages.values())

    def stage(self, name: str) -> StageRecord:
        """The record of a stage, created (at the end) for a name the story does not know."""
        name = _ALIASES.get(name, name)
        if name not in self.stages:
            self.stages[name] = StageRecord(StageInfo(name, name.replace("-", " ").capitalize()))
        return self.stages[name]

    def find(self, name: str) -> StageRecord | None:
        """The record of a stage by its name or alias, without creating one."""
        return self.stages.get(_ALIASES.get(name, name))

    def feed(self, events: Iterable[Event]) -> bool:
        """Take events in; True if anything shown changed."""
        changed = False
        for event in events:
            changed |= self._feed_one(event)
        return changed

    def _feed_one(self, event: Event) -> bool:
        handler = getattr(self, f"_on_{event.kind}", None)
        if handler is None:
            return False
        return handler(event) is not False

    # -- event handlers, one per kind ----------------------------------------------------

    def _on_stage(self, event: Event) -> None:
        name, detail = event.stage, event.detail  # type: ignore[attr-defined]
        if name == "ipl":
            name = self._ipl_stage(detail)
        self._mark(name, event.t, event.status, detail)  # type: ignore[attr-defined]
        if self._orphans:  # checks made just before the stage said what it was
            self.stage(name).checks.extend(self._orphans)
            self._orphans = []

    def _ipl_stage(self, detail: str) -> str:
        """Which step an IPL is: the production IPL, the Load of a dump program, or the
        production system's re-IPL after a dump (by DIAG 308, or the operator's Load before
        zgetdump)."""
        if self._last_ipl_program not in (None, PRODUCTION_PROGRAM):
            return "dump-load"
        if self._dump_taken():  # by DIAG 308 (dump_reipl, kdump) or the operator's Load
            return "reipl"
        return "ipl"

    def _on_check(self, event: Event) -> None:
        record = CheckRecord(event.what, str(event.expected), str(event.computed),  # type: ignore[attr-defined]
                             bool(event.ok), field_of(event, "guest_ok"), event.t)  # type: ignore[attr-defined]
        self._segment_verdict(record)
        if self.current is None:
            self._orphans.append(record)
            return
        target = self.stage(self.current)
        target.checks.append(record)
        if target.name != "checks" and self.stages["dumper"].status != "pending":
            self.stage("checks").checks.append(record)  # the dumper's checks, all in one place

    def _on_segment_progress(self, event: Event) -> None:
        record = self._purgatory_record()
        index = int(field_of(event, "index", default=0))
        line = record.segments.get(index)
        done, total = int(field_of(event, "done", default=0)), int(field_of(event, "total", default=0))
        if line is None or done < line.done:  # (again) from the start
            record.segments[index] = SegmentLine(index, str(field_of(event, "name", default="?")),
                                                 done, total)
        else:
            line.done, line.total = done, total

    def _on_swap_progress(self, event: Event) -> None:
        self.stage("swap").swap = (int(field_of(event, "done", default=0)),
                                   int(field_of(event, "total", default=0)))

    def _purgatory_record(self) -> StageRecord:
        """The purgatory run that hashes now (verify, or the load mode's own verify)."""
        return self.stage(self.current if self.current in PURGATORY_STAGES else "purgatory-verify")

    def _segment_verdict(self, record: CheckRecord) -> None:
        match = _SEGMENT_CHECK.fullmatch(record.what)
        line = self._purgatory_record().segments.get(int(match.group(1))) if match else None
        if line is not None:
            line.expected, line.computed, line.ok = record.expected, record.computed, record.ok

    def _on_hmc(self, event: Event) -> bool:
        operation = event.operation  # type: ignore[attr-defined]
        if operation == "activate":
            self.reset()
            self._mark("activate", event.t, "done", event.message)  # type: ignore[attr-defined]
        elif operation == "stop":
            self._mark("stop", event.t, "done", event.message)  # type: ignore[attr-defined]
        elif operation == "restart":
            self._mark("dump-load", event.t, "done", event.message)  # type: ignore[attr-defined]
        else:
            return False
        return True

    def _on_ipl(self, event: Event) -> bool:
        self._last_ipl_program = event.program  # type: ignore[attr-defined]
        return False

    def _on_wait(self, event: Event) -> None:
        code = event.code  # type: ignore[attr-defined]
        self._note_current(event.t, f"CPU {event.cpu} disabled wait, code {code:#x}")

    def _on_purgatory(self, event: Event) -> None:
        mode = str(field_of(event, "mode", default=""))
        name = "purgatory-load" if mode in ("1", "load") else "purgatory-verify"
        self.stage(name).note(event.t, f"purgatory {mode}: {field_of(event, 'result', default='')}")

    def _on_notes_saved(self, event: Event) -> None:
        # The event's CPU is the one running the purgatory; the note is of the CPU with
        # pr_pid (CPU address + 1) and that prefix.
        pid = int(field_of(event, "pid", default=0))
        prefix, address = field_of(event, "prefix", default=0), field_of(event, "address", default=0)
        self.stage("notes").note(event.t, f"CPU {pid - 1} (pr_pid {pid}, prefix {prefix:#x}): "
                                          f"registers saved in the note at {address:#x}")

    def _on_kdump_boot(self, event: Event) -> None:
        self.stage("kdump-boot").note(event.t, "kdump kernel started")

    def _on_dump_written(self, event: Event) -> None:
        fmt = str(field_of(event, "format", default=""))
        # A file zgetdump wrote (in either format) is that step's; otherwise kdump's vmcore,
        # or a full dump written straight to a file (journals from before zgetdump).
        if self.current == "zgetdump":
            name = "zgetdump"
        else:
            name = "vmcore" if fmt == "elf" else "full-dump"
        size = int(field_of(event, "bytes", default=0))
        path = Path(str(field_of(event, "path", default="")))
        self._mark(name, event.t, "done", f"{path.name}: {size / 2**20:.1f} MiB ({fmt})")

    def _on_error(self, event: Event) -> None:
        self._note_current(event.t, f"error: {event.message}")  # type: ignore[attr-defined]

    def _on_fault(self, event: Event) -> None:
        self._note_current(event.t, f"fault injected: {event.fault} {event.detail}")  # type: ignore[attr-defined]

    # -- helpers -------------------------------------------------------------------------

    def _mark(self, name: str, t: int, status: str, detail: str) -> None:
        record = self.stage(name)
        record.mark(t, status, detail)
        if status == "running":
            self.current = record.name
        elif self.current == record.name:
            self.current = None

    def _note_current(self, t: int, text: str) -> None:
        name = self.current or self._latest_touched()
        if name is not None:
            self.stage(name).note(t, text)

    def _latest_touched(self) -> str | None:
        return self.latest()

    def latest(self) -> str | None:
        """The stage that changed last (the later in the story on a tie)."""
        touched = [(r.last_t, index, r.name) for index, r in enumerate(self.stages.values())
                   if r.last_t is not None]
        return max(touched)[2] if touched else None

    def _dump_taken(self) -> bool:
        return any(self.stages[n].status == "done" for n in ("vmcore", "full-dump"))


@dataclass(frozen=True)
class ProgressState:
    """Long work in progress: bytes done of total, rate and time left in virtual time."""

    what: str
    done: int
    total: int
    rate: float | None  # bytes per second of `clock` time
    eta_s: float | None
    clock: str = "virtual"  # "virtual", or "host" when the work takes no virtual time

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0


class DumpProgress:
    """Follows `dump_progress` events; `state` is None when nothing is in progress.

    The rate is measured in virtual time when the work takes virtual time; work the host
    does in one virtual instant (writing a file) is measured in host time, as it arrives.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.state: ProgressState | None = None
        self._clock = clock
        self._start: tuple[int, float, int] | None = None  # (t, host time, done) at the start

    def feed(self, events: Iterable[Event]) -> bool:
        changed = False
        for event in events:
            if event.kind == "dump_progress":
                self._progress(event)
                changed = True
            elif event.kind == "dump_written" or _is_activate(event) or _work_ended(event):
                changed |= self.state is not None
                self.state, self._start = None, None
        return changed

    def _progress(self, event: Event) -> None:
        done = int(field_of(event, "done", "bytes_done", "bytes", default=0))
        total = int(field_of(event, "total", "bytes_total", default=0))
        what = str(field_of(event, "what", "stage", "format", default="dump"))
        now = self._clock()
        if self._start is None or done < self._start[2] or (
                self.state is not None and self.state.what != what):
            self._start = (event.t, now, done)
        start_t, start_host, start_done = self._start
        if event.t > start_t:
            elapsed, clock = (event.t - start_t) / 1e9, "virtual"
        else:
            elapsed, clock = now - start_host, "host"
        rate = (done - start_done) / elapsed if elapsed > 0 and done > start_done else None
        eta = (total - done) / rate if rate else None
        self.state = ProgressState(what, done, total, rate, eta, clock)
        if total and done >= total:
            self._start = None


def _work_ended(event: Event) -> bool:
    """A failed stage, or the full dump complete on the device (no file until zgetdump)."""
    status = getattr(event, "status", "")
    return event.kind == "stage" and (status == "failed" or (
        status == "done" and getattr(event, "stage", "") == "full-dump"))


def _is_activate(event: Event) -> bool:
    return event.kind == "hmc" and getattr(event, "operation", "") == "activate"


@dataclass(frozen=True)
class DumpRecord:
    """A dump written in this console run (a `dump_written` event)."""

    path: str
    format: str
    bytes: int
    seconds: float | None  # None: not shown (a recording leaves out host measures)
    t: int

    @property
    def label(self) -> str:
        return "kdump vmcore" if self.format == "elf" else "full dump"


def dump_record(event: Event) -> DumpRecord:
    return DumpRecord(str(field_of(event, "path", default="")),
                      str(field_of(event, "format", default="?")),
                      int(field_of(event, "bytes", default=0)),
                      _seconds(field_of(event, "seconds", default=0.0)), event.t)


def _seconds(value: Any) -> float | None:
    return None if value is None else float(value)
