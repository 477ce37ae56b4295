"""Everything the LPAR tells the outside world, as frozen events on one bus.

Each event carries the virtual time `t` (nanoseconds since activation) and the CPU it concerns
(None for the LPAR as a whole). The UI, the journal, `dumplab run --json` and the tests learn
everything from here; docs/EVENTS.md documents every kind.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True)
class Event:
    """Base of all events."""

    kind: ClassVar[str] = "event"
    t: int
    cpu: int | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict with `kind` first."""
        data: dict[str, Any] = {"kind": self.kind}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            data[f.name] = list(value) if isinstance(value, tuple) else value
        return data


@dataclass(frozen=True)
class ConsoleEvent(Event):
    """A line of Operating System Messages (level: printk level, 0 emergency .. 7 debug)."""

    kind: ClassVar[str] = "console"
    text: str = ""
    level: int = 6
    priority: bool = False
    source: str = "os"  # "os" for guest output, "operator" for an echoed command


@dataclass(frozen=True)
class CpuStateEvent(Event):
    """A CPU changed state: stopped, operating, wait, disabled wait, check stop."""

    kind: ClassVar[str] = "cpu_state"
    state: str = ""
    psw_mask: int = 0
    psw_addr: int = 0


@dataclass(frozen=True)
class WaitEvent(Event):
    """A CPU loaded a wait PSW; `code` is the PSW address (the disabled-wait code)."""

    kind: ClassVar[str] = "wait"
    code: int = 0
    enabled: bool = False
    psw_mask: int = 0


@dataclass(frozen=True)
class StageEvent(Event):
    """A step of the workflow (DESIGN §1) started, finished or failed."""

    kind: ClassVar[str] = "stage"
    stage: str = ""
    status: str = ""  # running | done | failed
    detail: str = ""


@dataclass(frozen=True)
class CheckEvent(Event):
    """A checksum or digest check; the host recomputed `computed` itself."""

    kind: ClassVar[str] = "check"
    what: str = ""
    expected: str = ""
    computed: str = ""
    ok: bool = False
    guest_ok: bool | None = None
    guest_computed: str = ""


@dataclass(frozen=True)
class HmcEvent(Event):
    """An HMC operation was carried out; `message` is the plain acknowledgement."""

    kind: ClassVar[str] = "hmc"
    operation: str = ""
    message: str = ""


@dataclass(frozen=True)
class IplEvent(Event):
    """A program was loaded from a device (HMC Load or DIAG 308)."""

    kind: ClassVar[str] = "ipl"
    devno: int = 0
    program: str = ""
    clear: bool = False
    store_status: bool = False
    entry: int = 0


@dataclass(frozen=True)
class ProgramCheckEvent(Event):
    """A program interruption was delivered through the lowcore."""

    kind: ClassVar[str] = "program_check"
    code: int = 0
    address: int = 0
    ilen: int = 0


@dataclass(frozen=True)
class RestartEvent(Event):
    """A restart interruption was delivered (PSW restart or SIGP restart)."""

    kind: ClassVar[str] = "restart"
    old_psw_addr: int = 0
    source: str = "operator"


@dataclass(frozen=True)
class SigpEvent(Event):
    """A SIGNAL PROCESSOR order and its condition code."""

    kind: ClassVar[str] = "sigp"
    order: str = ""
    target: int = 0
    cc: int = 0
    status: int = 0


@dataclass(frozen=True)
class StoreStatusEvent(Event):
    """The status of a CPU was stored at an absolute address."""

    kind: ClassVar[str] = "store_status"
    address: int = 0x1200
    by: str = "operator"
    status: dict = field(default_factory=dict)  # what was stored: psw, gprs, crs, ...


@dataclass(frozen=True)
class HangEvent(Event):
    """The guest reported, just before it happened, that it is about to hang."""

    kind: ClassVar[str] = "hang"
    hang: str = ""
    lock: int = 0


@dataclass(frozen=True)
class PanicEvent(Event):
    """The guest kernel panicked."""

    kind: ClassVar[str] = "panic"
    message: str = ""


@dataclass(frozen=True)
class ShutdownActionEvent(Event):
    """The guest ran its on_panic / on_restart action."""

    kind: ClassVar[str] = "shutdown_action"
    trigger: str = ""
    action: str = ""


@dataclass(frozen=True)
class CpuOnlineEvent(Event):
    """The guest brought a CPU online with its own lowcore."""

    kind: ClassVar[str] = "cpu_online"
    prefix: int = 0
    stack: int = 0


@dataclass(frozen=True)
class TraceEvent(Event):
    """A guest trace hypercall with no more specific event type."""

    kind: ClassVar[str] = "trace"
    id: int = 0
    name: str = ""
    args: tuple[int, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class ErrorEvent(Event):
    """Something went wrong in the machine itself (not the guest), said in one line."""

    kind: ClassVar[str] = "error"
    message: str = ""


Subscriber = Callable[[Event], None]


class EventBus:
    """Delivers every published event, in order, to every subscriber."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Register; returns the function that unregisters."""
        self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)

        return unsubscribe

    def publish(self, event: Event) -> None:
        for subscriber in list(self._subscribers):
            subscriber(event)


class EventLog:
    """A subscriber that keeps every event (tests, `run --json`)."""

    def __init__(self, bus: EventBus) -> None:
        self.events: list[Event] = []
        self.close = bus.subscribe(self.events.append)

    def of_kind(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.kind == kind]


@dataclass(frozen=True)
class BreakpointEvent(Event):
    """A CPU reached an instruction address with a breakpoint and stopped in front of it."""

    kind: ClassVar[str] = "breakpoint"
    address: int = 0
    label: str = ""  # what the operator named (a symbol, or the address)
    symbol: str = ""  # where it is in the loaded program (name+offset), if known


@dataclass(frozen=True)
class FaultEvent(Event):
    """An instructor injected a fault (machine/faults.py)."""

    kind: ClassVar[str] = "fault"
    fault: str = ""
    detail: str = ""


@dataclass(frozen=True)
class KexecEvent(Event):
    """The kernel loaded (or unloaded) the kdump kernel into the crashkernel region."""

    kind: ClassVar[str] = "kexec"
    loaded: bool = False
    segments: int = 0
    entry: int = 0


@dataclass(frozen=True)
class PurgatoryEvent(Event):
    """The purgatory finished its checks (mode verify or load; result good or bad)."""

    kind: ClassVar[str] = "purgatory"
    mode: str = ""
    result: str = ""


@dataclass(frozen=True)
class NotesSavedEvent(Event):
    """The purgatory wrote one CPU's ELF notes (pr_pid, prefix, note address)."""

    kind: ClassVar[str] = "notes_saved"
    pid: int = 0
    prefix: int = 0
    address: int = 0
    size: int = 0


@dataclass(frozen=True)
class SegmentProgressEvent(Event):
    """The purgatory (verify) hashed `done` of the `total` bytes of segment `index` (its
    name from the crash image; it starts at `address`): reported every 16 KiB, at the start
    and at the end."""

    kind: ClassVar[str] = "segment_progress"
    index: int = 0
    name: str = ""
    done: int = 0
    total: int = 0
    address: int = 0


@dataclass(frozen=True)
class KdumpBootEvent(Event):
    """The kdump kernel reached a step (booted, header checked, ready, saved)."""

    kind: ClassVar[str] = "kdump_boot"
    step: str = ""
    detail: str = ""


@dataclass(frozen=True)
class DumpProgressEvent(Event):
    """A dump is being written: bytes done of total."""

    kind: ClassVar[str] = "dump_progress"
    done: int = 0
    total: int = 0


@dataclass(frozen=True)
class SwapProgressEvent(Event):
    """The kdump kernel's head is swapping [0, size) with the crashkernel region: bytes done
    of total, reported every MiB (the last report has done == total)."""

    kind: ClassVar[str] = "swap_progress"
    done: int = 0
    total: int = 0


@dataclass(frozen=True)
class DumpWrittenEvent(Event):
    """A dump file is complete (written atomically under path)."""

    kind: ClassVar[str] = "dump_written"
    path: str = ""
    format: str = ""
    bytes: int = 0
    seconds: float = 0.0
    pages_written: int = 0
    pages_skipped: int = 0


@dataclass(frozen=True)
class StageStopEvent(Event):
    """Stage stops are on for this stage and it began: the machine holds (the console shows
    the stage's card; running on continues exactly as without the stop)."""

    kind: ClassVar[str] = "stage_stop"
    stage: str = ""


@dataclass(frozen=True)
class CheckpointEvent(Event):
    """The operator saved a checkpoint of the whole machine (`checkpoint save NAME`)."""

    kind: ClassVar[str] = "checkpoint"
    name: str = ""
    action: str = "saved"
    events: int = 0  # machine events published before it


@dataclass(frozen=True)
class RewindEvent(Event):
    """The machine went back (checkpoint restore, rewind, step back): it is now as it was at
    time t, after its first `events` events; consumers forget the events after those."""

    kind: ClassVar[str] = "rewind"
    to: str = ""
    events: int = 0


@dataclass(frozen=True)
class IncidentEvent(Event):
    """An IPL after a dump (or a dump attempt) began a new incident."""

    kind: ClassVar[str] = "incident"
    number: int = 0
    cause: str = ""
