"""The guest programs' trace hypercalls (DIAG 0x500 function TRACE, docs/GUEST_ABI.md) turned
into events: ids 1-9 come from the production kernel (here), 10-25 from the purgatory and the
kdump kernel (machine/kdump.py), 30-35 from the stand-alone dumper (machine/sadump.py), 36-39
from the stand-alone kdump loader (machine/zipl_kdump.py), 40-41 from the kernel's dump tools
(chshut, chreipl: assets/src/kernel/dumptools.c).

Each report is checked on the host where it carries a checksum: the event has the guest's
value and the host's own computation."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from machine import zipl_kdump
from machine.checksums import cksm
from machine.events import (
    CheckEvent,
    CpuOnlineEvent,
    HangEvent,
    PanicEvent,
    ShutdownActionEvent,
    StageEvent,
    TraceEvent,
)
from machine.kdump import OS_INFO_MAGIC
from machine.profile import SHUTDOWN_ACTIONS
from machine.storage import StorageError

if TYPE_CHECKING:
    from machine.cpu import Cpu
    from machine.lpar import Lpar

# The kernel's trace arguments, by number (assets/src/kernel).
BOOT_STAGES = {1: "parm area read", 2: "lowcores set up", 3: "os_info written",
               4: "CPUs started", 5: "workload running"}
HANG_KINDS = {1: "spin", 2: "wait", 3: "deadlock", 4: "loop"}
TRIGGERS = {1: "panic", 2: "restart"}
# The kernel numbers its shutdown actions 1, 2, 3 in the order the profile lists them.
ACTIONS = dict(enumerate(SHUTDOWN_ACTIONS, start=1))


def report_trace(lpar: Lpar, cpu: Cpu, event_id: int, args: tuple[int, ...]) -> None:
    """Publish what trace `event_id` from `cpu` means (a `trace` event if it is unknown)."""
    handler = _TRACE_HANDLERS.get(event_id)
    if handler is None:
        lpar.publish(TraceEvent(t=lpar.clock.now, cpu=cpu.address, id=event_id, name="unknown",
                                args=args))
    else:
        handler(lpar, cpu, args)


def _boot_stage(lpar: Lpar, cpu: Cpu, args: tuple[int, ...]) -> None:
    stage, cpus = args[0], args[1]
    now = lpar.clock.now
    if stage == 6:
        lpar.publish(StageEvent(t=now, cpu=cpu.address, stage="workload-filled", status="done",
                                detail=f"{args[2] >> 20} MB of recognisable data in place"))
    elif stage == 5:
        lpar.publish(StageEvent(t=now, cpu=cpu.address, stage="boot", status="done", detail="kernel up"))
        lpar.publish(StageEvent(t=now, cpu=cpu.address, stage="workload", status="done",
                                detail=f"workload running on {cpus} CPUs"))
    else:
        lpar.publish(StageEvent(t=now, cpu=cpu.address, stage="boot", status="running",
                                detail=BOOT_STAGES.get(stage, f"stage {stage}")))


def _cpu_online(lpar: Lpar, cpu: Cpu, args: tuple[int, ...]) -> None:
    # The CPU coming online sends it; args[0] is its logical number, not its address.
    lpar.publish(CpuOnlineEvent(t=lpar.clock.now, cpu=cpu.address, prefix=args[1], stack=args[2]))


def _os_info(lpar: Lpar, cpu: Cpu, args: tuple[int, ...]) -> None:
    """The guest wrote os_info: recompute its checksum on the host and report both."""
    address, guest_csum = args[0], args[1] & 0xFFFFFFFF
    try:
        page = lpar.storage.read(address, 4096)
    except StorageError:
        computed = "unreadable"
    else:
        computed = f"{cksm(page[0x0C:]):08x}"
        if int.from_bytes(page[:8], "big") != OS_INFO_MAGIC:
            computed += " (bad magic)"
    lpar.publish(CheckEvent(t=lpar.clock.now, cpu=cpu.address, what="os_info checksum",
                            expected=f"{guest_csum:08x}", computed=computed,
                            ok=computed == f"{guest_csum:08x}"))


def _hang(lpar: Lpar, cpu: Cpu, args: tuple[int, ...]) -> None:
    kind = HANG_KINDS.get(args[0], str(args[0]))
    lpar.publish(HangEvent(t=lpar.clock.now, cpu=args[1], hang=kind, lock=args[2]))
    lpar.publish(StageEvent(t=lpar.clock.now, cpu=args[1], stage="hang", status="done", detail=kind))


def _panic(lpar: Lpar, cpu: Cpu, args: tuple[int, ...]) -> None:
    try:
        message = lpar.storage.read(cpu.real_to_absolute(args[1]), min(args[2], 256)).decode("ascii", "replace")
    except StorageError:
        message = "?"
    lpar.publish(PanicEvent(t=lpar.clock.now, cpu=args[0], message=message))
    lpar.publish(StageEvent(t=lpar.clock.now, cpu=args[0], stage="panic", status="done", detail=message))


def _shutdown_action(lpar: Lpar, cpu: Cpu, args: tuple[int, ...]) -> None:
    lpar.publish(ShutdownActionEvent(t=lpar.clock.now, cpu=cpu.address,
                                     trigger=TRIGGERS.get(args[0], str(args[0])),
                                     action=ACTIONS.get(args[1], str(args[1]))))


def _generic(event_id: int, name: str) -> Callable[[Lpar, Cpu, tuple[int, ...]], None]:
    def handler(lpar: Lpar, cpu: Cpu, args: tuple[int, ...]) -> None:
        lpar.publish(TraceEvent(t=lpar.clock.now, cpu=cpu.address, id=event_id, name=name, args=args))
    return handler


def _kdump(method: str) -> Callable[[Lpar, Cpu, tuple[int, ...]], None]:
    def handler(lpar: Lpar, cpu: Cpu, args: tuple[int, ...]) -> None:
        getattr(lpar.kdump, method)(cpu, args)
    return handler


def _dumper(method: str) -> Callable[[Lpar, Cpu, tuple[int, ...]], None]:
    def handler(lpar: Lpar, cpu: Cpu, args: tuple[int, ...]) -> None:
        getattr(lpar.dumper, method)(cpu, args)
    return handler


_TRACE_HANDLERS: dict[int, Callable[[Lpar, Cpu, tuple[int, ...]], None]] = {
    1: _boot_stage,
    2: _cpu_online,
    3: _generic(3, "workload_start"),
    4: _os_info,
    5: _hang,
    6: _panic,
    7: _generic(7, "program_check_handled"),
    8: _shutdown_action,
    9: _generic(9, "restart_handler"),
    10: _kdump("purgatory_enter"),
    11: _kdump("purgatory_check"),
    12: _kdump("purgatory_result"),
    13: _kdump("notes_saved"),
    15: _kdump("enter_kdump"),
    16: _kdump("crash_kexec"),
    17: _kdump("status_stored"),
    18: _kdump("loaded"),
    20: _kdump("kdump_boot"),
    21: _kdump("kdump_check"),
    22: _kdump("segment_progress"),
    24: _kdump("swap"),
    25: _kdump("swap_progress"),
    30: _dumper("started"),
    31: _dumper("cpu_status"),
    32: _dumper("check"),
    33: _dumper("decision"),
    34: _dumper("progress"),
    35: _dumper("done"),
    36: zipl_kdump.started,
    37: zipl_kdump.check,
    38: zipl_kdump.copied,
    39: zipl_kdump.enter,
    40: _generic(40, "chshut"),
    41: _generic(41, "chreipl"),
}
