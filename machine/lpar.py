"""The LPAR: CPUs, storage and devices, the scheduler that runs the CPUs, and the operations the
HMC offers (activate, load, stop/start, PSW restart, reset, store status, OS messages).

All CPUs share one unicorn engine; each has a saved context. The scheduler runs them
round-robin, each for a fixed number of instructions per round, and one round is one slice of
virtual time. That makes every run deterministic: the same commands give the same events and
the same storage, byte for byte (DESIGN.md §3).
"""

from __future__ import annotations

import collections
import gc
import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from unicorn import UC_HOOK_INTR, UC_PROT_ALL, Uc, UcError
from unicorn.s390x_const import UC_S390X_REG_PC

from machine import interrupts
from machine.breakpoints import Breakpoints, resolve_symbol
from machine.clock import VirtualClock, tod_units
from machine.cpu import ARS, CRS, FPRS, GPRS, Cpu, CpuState
from machine.devices import BLOCK_SIZE, Device, DeviceError
from machine.dumptools import DumpTools
from machine.engine import flush_tlb, new_engine, raw_fields
from machine.events import (
    BreakpointEvent,
    ConsoleEvent,
    CpuStateEvent,
    ErrorEvent,
    Event,
    EventBus,
    HmcEvent,
    IplEvent,
    ProgramCheckEvent,
    RestartEvent,
    StageEvent,
    StoreStatusEvent,
    WaitEvent,
)
from machine.hypercalls import Hypercalls
from machine.icount import InstructionCounter
from machine.images import Image, ImageError, built_programs, image_hook_addresses
from machine.ipl import IplControl
from machine.kdump import KdumpHost
from machine.paths import program_path
from machine.profile import Profile, format_size
from machine.sadump import DumperHost, prepare_dump_device
from machine.status import SAVE_AREA_ADDRESS
from machine.storage import Storage, StorageError
from machine.store_status import store_status
from machine.system import SystemInstructions, short_psw_to_long
from machine.traces import report_trace
from machine.workdir import WorkdirError, claim_workdir

# Instructions each CPU runs per round; one round is this many virtual nanoseconds.
SLICE_INSTRUCTIONS = 20_000
# Interruptions one CPU may take in one slice before the slice ends early: a program-check
# loop (a bad new PSW) must never keep the host inside unicorn.
MAX_INTERRUPTIONS_PER_SLICE = 16
MAX_PROGRAM_CHECK_EVENTS_PER_SLICE = 4
# Free-running mode (explicit, for interactive use): each CPU runs this long in host time per
# round, with no instruction budget, which is several times faster on tight loops but makes the
# interleaving of CPUs depend on the host.
FREE_SLICE_US = 2_000
# Emulated instructions (exits) one CPU may execute in one slice: the budget restarts after
# each exit, so this bounds a slice of a CPU that polls the clock in a loop.
MAX_EXITS_PER_SLICE = 256
MAX_QUEUED_OS_COMMANDS = 64
MAX_OS_COMMAND_LENGTH = 240
_UNREACHABLE = 0xFFFF_FFFF_FFFF_FFFE

class HmcError(Exception):
    """An HMC operation refused in the current state; str() is the one-line reason."""


@dataclass(frozen=True)
class CpuSnapshot:
    address: int
    state: str
    psw_mask: int
    psw_addr: int
    gprs: tuple[int, ...]
    crs: tuple[int, ...]
    ars: tuple[int, ...]
    fprs: tuple[int, ...]
    fpc: int
    prefix: int
    cpu_timer: int
    clock_comparator: int
    wait_code: int | None


@dataclass(frozen=True)
class Snapshot:
    """What the LPAR looks like between two run slices; immutable, safe to hand to a UI."""

    t: int
    status: str
    cpus: tuple[CpuSnapshot, ...]
    heartbeats: tuple[int, ...] | None
    program: str | None


class Lpar:
    """One logical partition, driven through HMC operations."""

    def __init__(self, profile: Profile, workdir: Path, bus: EventBus | None = None,
                 free_running: bool = False) -> None:
        self.profile = profile
        # Deterministic by default; free running trades reproducibility for speed.
        self.free_running = free_running
        self.workdir = Path(workdir)
        self.bus = bus or EventBus()
        self.clock = VirtualClock()
        self.activated = False
        self.cpus: list[Cpu] = []
        self.devices: dict[int, Device] = {}
        self.storage: Storage | None = None  # type: ignore[assignment]
        self.uc: Uc | None = None
        self.current: Cpu | None = None
        self.program: Image | None = None
        self.ipl_devno: int | None = None
        self.reschedule = False
        self.system = SystemInstructions(self)
        self.hypercalls = Hypercalls(self)
        self.kdump = KdumpHost(self)
        self.dumper = DumperHost(self)
        self.dump_tools = DumpTools(self)
        self.ipl_control = IplControl(self)
        self._program_exits: set[int] = set()
        self._kexec_exits: set[int] = set()
        self._exit_set: frozenset[int] = frozenset()
        self.breakpoints = Breakpoints(on_change=self._breakpoints_changed)
        self._deferred: list[Callable[[], None]] = []
        self._os_commands: collections.deque[tuple[str, bool]] = collections.deque()
        self._service_signal = False
        self._slice_interruptions = 0
        self._last_program_check: dict[int, tuple[int, int, int]] = {}
        self._looping: set[int] = set()
        self._interrupt_request = threading.Event()
        self._console_partial: dict[int, str] = {}
        # Teaching mode (machine/checkpoint.py): every event published has an index; a replay
        # publishes none below `_mute_below`; `_stop` ends a run at an exact point (an event,
        # an instruction count), leaving `_aborted` set; `_hold` ends it after the round.
        self.events_published = 0
        self._mute_below: int | None = None
        self._stop = None
        self._aborted = False
        self._hold: str | None = None
        self.checkpoints = None
        self._icount: InstructionCounter | None = None

    # ------------------------------------------------------------------------------------
    # events
    def publish(self, event: Event) -> None:
        index = self.events_published
        self.events_published += 1
        if self._mute_below is None or index >= self._mute_below:
            self.bus.publish(event)
        if self.checkpoints is not None:
            self.checkpoints.observe(event, index)

    def publish_aside(self, event: Event) -> None:
        """Publish an event about the session rather than the machine's history (a rewind):
        it takes no index, so the machine's own events keep theirs."""
        self.bus.publish(event)

    def _ack(self, operation: str, message: str) -> str:
        self.publish(HmcEvent(t=self.clock.now, cpu=None, operation=operation, message=message))
        return message

    # ------------------------------------------------------------------------------------
    # state queries
    @property
    def status(self) -> str:
        """The LPAR status as the HMC shows it."""
        if not self.activated:
            return "not activated"
        states = {cpu.state for cpu in self.cpus}
        if states == {CpuState.STOPPED}:
            return "not operating"
        if states <= {CpuState.OPERATING, CpuState.WAIT}:
            return "operating"
        return "exceptions"

    def all_stopped(self) -> bool:
        """True when no CPU can run again without the operator: stopped or in disabled wait."""
        return all(c.state in (CpuState.STOPPED, CpuState.DISABLED_WAIT, CpuState.CHECK_STOP)
                   for c in self.cpus)

    def cpu_by_address(self, address: int) -> Cpu | None:
        return next((cpu for cpu in self.cpus if cpu.address == address), None)

    def symbol(self, name: str) -> int | None:
        """Address of a symbol of the loaded program."""
        return self.program.symbols.get(name) if self.program else None

    def current_pc(self, uc: Uc) -> int:
        return uc.reg_read(UC_S390X_REG_PC)

    def read(self, address: int, length: int) -> bytes:
        """Absolute storage bytes (HmcError when out of range or not activated)."""
        self._require_active("display storage")
        try:
            return self.storage.read(address, length)
        except StorageError as exc:
            raise HmcError(str(exc)) from None

    def storage_hash(self) -> str:
        """SHA-256 of all of storage (determinism checks)."""
        self._require_active("hash storage")
        return hashlib.sha256(self.storage.view).hexdigest()

    def heartbeats(self) -> tuple[int, ...] | None:
        """The per-CPU heartbeat counters of the production kernel, if it is loaded."""
        address = self.symbol("heartbeat")
        if address is None or not self.activated:
            return None
        data = self.storage.read(address, 8 * len(self.cpus))
        return tuple(int.from_bytes(data[i:i + 8], "big") for i in range(0, len(data), 8))

    def snapshot(self) -> Snapshot:
        """An immutable picture of every CPU (call between run slices)."""
        cpus = tuple(self._cpu_snapshot(cpu) for cpu in self.cpus)
        return Snapshot(self.clock.now, self.status, cpus, self.heartbeats(),
                        self.program.name if self.program else None)

    @staticmethod
    def _cpu_snapshot(cpu: Cpu) -> CpuSnapshot:
        mask, address = cpu.psw
        return CpuSnapshot(
            address=cpu.address, state=str(cpu.state), psw_mask=mask, psw_addr=address,
            gprs=tuple(cpu.regs(GPRS)), crs=tuple(cpu.regs(CRS)),
            ars=tuple(v & 0xFFFFFFFF for v in cpu.regs(ARS)), fprs=tuple(cpu.regs(FPRS)),
            fpc=cpu.fpc, prefix=cpu.prefix, cpu_timer=cpu.cpu_timer & (1 << 64) - 1,
            clock_comparator=cpu.clock_comparator, wait_code=cpu.wait_code,
        )

    # ------------------------------------------------------------------------------------
    # HMC operations
    def _require_active(self, operation: str) -> None:
        if not self.activated:
            raise HmcError(f"cannot {operation}: the LPAR is not activated (Activate it first)")

    def _target_cpus(self, cpu: int | None, operation: str) -> list[Cpu]:
        if cpu is None:
            return list(self.cpus)
        target = self.cpu_by_address(cpu)
        if target is None:
            raise HmcError(f"cannot {operation}: no CPU {cpu} (this LPAR has CPUs "
                           f"{self.cpu_list()})")
        return [target]

    def cpu_list(self) -> str:
        """"0-3" for contiguous addresses, else "0, 1, 4, 5"."""
        addresses = [c.address for c in self.cpus]
        if addresses == list(range(len(addresses))):
            return f"0-{len(addresses) - 1}"
        return ", ".join(map(str, addresses))

    def activate(self) -> str:
        """Create storage, CPUs and devices from the profile; every CPU stopped."""
        if self.activated:
            raise HmcError(f"the LPAR is already activated (status: {self.status}); deactivate it first")
        try:
            # Locked while active: two runs sharing a device image corrupt each other's dumps.
            claim = claim_workdir(self.workdir)
        except WorkdirError as exc:
            raise HmcError(f"cannot activate: {exc}") from None
        try:
            devices = self._create_devices()
            self.storage = Storage(self.profile.memory)
        except (OSError, DeviceError, ImageError, StorageError) as exc:
            claim.release()
            raise HmcError(f"cannot activate: {exc}") from None
        self._workdir_claim = claim
        self.uc = new_engine()
        self.uc.mem_map_ptr(0, self.storage.size, UC_PROT_ALL, self.storage.address)
        self.uc.hook_add(UC_HOOK_INTR, self._on_interrupt)
        self.uc.ctl_exits_enabled(True)
        self._program_exits, self._kexec_exits = set(), set()
        self.kdump = KdumpHost(self)
        self.dumper = DumperHost(self)
        self.dump_tools = DumpTools(self)
        self._set_exits()
        fields = raw_fields()
        self.cpus = [Cpu(address, self.uc, fields) for address in self.profile.addresses]
        for cpu in self.cpus:
            cpu.clear_reset()
        self.devices = devices
        self.clock = VirtualClock()
        self.activated = True
        self._icount = InstructionCounter(self.uc)
        from machine.checkpoint import Checkpoints  # it builds on this module
        self.checkpoints = Checkpoints(self)
        p = self.profile
        return self._ack("activate", f"LPAR activated with profile {p.name}: {p.cpus} CPUs, "
                                     f"{format_size(p.memory)} storage, devices "
                                     + ", ".join(d.label for d in devices.values()))

    def _create_devices(self) -> dict[int, Device]:
        p = self.profile
        kernel = program_path("kernel")
        boot = Device(p.boot_devno, "disk", self.workdir / f"dev-{p.boot_devno:04x}.img",
                      max(8 << 20, -(-kernel.stat().st_size // 4096 + 2) * 4096))
        boot.install_boot_program("kernel", kernel.read_bytes())
        dump = Device(p.dump_devno, "dump", self.workdir / f"dev-{p.dump_devno:04x}.img",
                      p.dump_device_size)
        # The default profile still prepares the dump device (zipl -d, or zipl -d -k auto for
        # dump_tool = "kdump") so that the console and the scenarios work at once; a profile
        # with dump_device_prepared = false, as the labs use, leaves that to the operator.
        if p.dump_device_prepared:
            prepare_dump_device(dump, kind=p.dump_tool)
        else:  # a device image kept from an earlier activation: no dump tool on it either
            dump.write_blocks(0, bytes(BLOCK_SIZE))
        return {boot.devno: boot, dump.devno: dump}

    def deactivate(self) -> str:
        self._require_active("deactivate")
        self.close()
        return self._ack("deactivate", "LPAR deactivated")

    def close(self) -> None:
        """Release the engine and storage."""
        if not self.activated:
            return
        self.activated = False
        if self.checkpoints is not None:
            self.checkpoints.close()
            self.checkpoints = None
        self.cpus = []
        self.uc = None
        self._icount = None
        self.program = None
        storage, self.storage = self.storage, None
        gc.collect()  # the engine must be gone before its storage is unmapped
        storage.close()
        self._workdir_claim.release()

    def load(self, devno: int, *, clear: bool = False, store_status: bool = False, parm: str = "") -> str:
        """HMC Load: (store status,) reset normal or clear, IPL the program on devno."""
        self._require_active("load")
        self._barrier()
        if devno not in self.devices:
            known = ", ".join(d.label for d in self.devices.values())
            raise HmcError(f"cannot load: no device {devno:04x} in this LPAR (devices: {known})")
        if len(parm) > 8 or not all(ch.isalnum() or ch in ".@#$ " for ch in parm):
            raise HmcError(f"bad load parameter '{parm}': at most 8 characters A-Z 0-9 . @ # $")
        try:
            image, _ = self.ipl_control.read_program(devno)
        except (DeviceError, ImageError) as exc:
            raise HmcError(f"cannot load: {exc}") from None
        self._ipl(image, devno, clear=clear, store_status=store_status, parm=parm.upper(), by="operator")
        how = ", ".join(["clear" if clear else "normal"] + (["store status"] if store_status else []))
        return self._ack("load", f"Load of device {devno:04x} started ({how}): {image.name}")

    def reipl(self, devno: int, *, clear: bool, store_status: bool = False) -> None:
        """Re-IPL requested by the guest (DIAG 308); a dump re-IPL stores the IPL CPU's status
        first, as a Load with store status does."""
        try:
            image, _ = self.ipl_control.read_program(devno)
        except (DeviceError, ImageError) as exc:
            self.publish(ErrorEvent(t=self.clock.now, cpu=0, message=f"re-IPL failed: {exc}"))
            self._stop_all_cpus()
            return
        self._ipl(image, devno, clear=clear, store_status=store_status, parm="", by="diag308")

    def _ipl(self, image: Image, devno: int, *, clear: bool, store_status: bool, parm: str, by: str) -> None:
        self._stop_all_cpus()
        ipl_cpu = self.cpus[0]
        if store_status:
            self.store_status_of(ipl_cpu, by="load")
        if clear:
            self.storage.clear()
            for cpu in self.cpus:
                cpu.clear_reset()
        else:
            for cpu in self.cpus[1:]:
                cpu.cpu_reset()
            ipl_cpu.initial_reset()
        self._os_commands.clear()
        self._service_signal = False
        self.ipl_control.place_program(image, devno, parm)
        self._install_program(image, clear)
        self.ipl_devno = devno
        mask, address = short_psw_to_long(self.storage.u64(0))
        ipl_cpu.set_psw(mask, address)
        self.publish(IplEvent(t=self.clock.now, cpu=0, devno=devno, program=image.name, clear=clear,
                              store_status=store_status, entry=address))
        self.publish(StageEvent(t=self.clock.now, cpu=0, stage="ipl", status="done",
                                detail=f"{image.name} from {devno:04x} ({by})"))
        self.set_state(ipl_cpu, CpuState.OPERATING)

    def _install_program(self, image: Image, clear: bool) -> None:
        """A program was loaded (IPL): its emulated instructions replace the previous
        program's. A crash image the previous system loaded stays in storage, and with it the
        purgatory's (a stand-alone dumper calls it), unless storage was cleared."""
        if clear:
            self.kdump.image = None
            self._kexec_exits = set()
        self.enter_program(image)

    def enter_program(self, image: Image) -> None:
        """The CPUs now run image (an IPL, or the purgatory entering the kdump kernel)."""
        self.program = image
        self._program_exits = set(image_hook_addresses(image))
        self._set_exits()

    def set_kexec_intercepts(self, addresses: list[int]) -> None:
        """Emulated instructions of the loaded crash image's purgatory (none when unloaded)."""
        self._kexec_exits = set(addresses)
        self._set_exits()

    @property
    def _exits(self) -> set[int]:
        return self._program_exits | self._kexec_exits | self.breakpoints.addresses

    def _breakpoints_changed(self) -> None:
        if self.uc is not None:
            self._barrier()
            self._set_exits()

    def _barrier(self) -> None:
        """The machine is about to change other than by running: what ran so far is one
        stretch a replay can repeat (machine/checkpoint.py)."""
        if self.checkpoints is not None:
            self.checkpoints.barrier()

    def code_address(self, name: str) -> int | None:
        """The address a code symbol names (machine/breakpoints.py says how)."""
        purgatory = None
        crash = self.kdump.image
        if crash is not None:
            purgatory = (crash.purgatory, crash.segment("purgatory").mem)
        return resolve_symbol(name, self.program, built_programs(), purgatory)

    def flush_code(self) -> None:
        """Forget translated code: required after any host write of code."""
        self.uc.ctl_flush_tb()

    def _set_exits(self) -> None:
        """Exits are only checked when code is translated: flush after every change. An
        unreachable address keeps the list non-empty."""
        self._exit_set = frozenset(self._exits)
        self.uc.ctl_set_exits(sorted(self._exit_set | {_UNREACHABLE}))
        self.flush_code()

    def _drop_intercept(self, address: int) -> None:
        """The program at address changed: run what is there natively from now on."""
        self._program_exits.discard(address)
        self._kexec_exits.discard(address)
        self._set_exits()

    def reset_and_load_from_zero(self, issuer: Cpu, *, clear: bool) -> None:
        """DIAG 308 subcodes 0/1: reset the other CPUs, then the issuing CPU loads the
        8-byte PSW at absolute 0 and goes on (how kexec starts the next kernel)."""
        for cpu in self.cpus:
            if cpu is not issuer:
                cpu.cpu_reset()
                self.set_state(cpu, CpuState.STOPPED)
        issuer.initial_reset()
        self.flush_code()
        mask, address = short_psw_to_long(self.storage.u64(0))
        issuer.set_psw(mask, address)
        self.set_state(issuer, CpuState.OPERATING)

    def stop(self, cpu: int | None = None) -> str:
        """HMC Stop (one CPU) or Stop all."""
        self._require_active("stop")
        self._barrier()
        targets = self._target_cpus(cpu, "stop")
        for target in targets:
            if target.state != CpuState.CHECK_STOP:
                self.set_state(target, CpuState.STOPPED)
        what = "all CPUs" if cpu is None else f"CPU {cpu}"
        return self._ack("stop", f"Stop: {what} stopped")

    def start(self, cpu: int | None = None) -> str:
        """HMC Start (one CPU) or Start all: stopped CPUs go on from their current PSW."""
        self._require_active("start")
        self._barrier()
        started = []
        for target in self._target_cpus(cpu, "start"):
            if target.state == CpuState.STOPPED:
                self._resume(target)
                started.append(target.address)
        if not started:
            return self._ack("start", "Start: no CPU was stopped; nothing to start")
        return self._ack("start", "Start: CPU " + ", ".join(map(str, started)) + " started")

    def _resume(self, cpu: Cpu) -> None:
        mask, address = cpu.psw
        if interrupts.is_wait(mask):
            self.enter_wait_state(cpu, mask, address)
        else:
            self.set_state(cpu, CpuState.OPERATING)

    def psw_restart(self, cpu: int = 0) -> str:
        """HMC PSW Restart: a restart interruption on one CPU, whatever its state."""
        self._require_active("PSW restart")
        self._barrier()
        target = self._target_cpus(cpu, "PSW restart")[0]
        if target.state == CpuState.CHECK_STOP:
            raise HmcError(f"cannot PSW restart CPU {cpu}: it is check-stopped (Reset first)")
        self.request_restart(target, source="operator")
        return self._ack("restart", f"PSW Restart of CPU {cpu} done")

    def request_restart(self, cpu: Cpu, source: str) -> None:
        cpu.pending.restart = True
        cpu.pending.restart_source = source
        if cpu.state != CpuState.OPERATING:
            self.set_state(cpu, CpuState.OPERATING)

    def reset(self, clear: bool = False) -> str:
        """HMC Reset normal (CPUs reset, storage kept) or Reset clear (storage zeroed too)."""
        self._require_active("reset")
        self._barrier()
        self._stop_all_cpus()
        for cpu in self.cpus:
            cpu.clear_reset() if clear else cpu.cpu_reset()
        if clear:
            self.storage.clear()
        self._os_commands.clear()
        self._service_signal = False
        return self._ack("reset", "Reset clear done: CPUs reset, storage cleared" if clear
                         else "Reset normal done: CPUs reset, storage kept")

    def store_status(self, cpu: int = 0) -> str:
        """HMC Store status: the CPU must be stopped."""
        self._require_active("store status")
        self._barrier()
        target = self._target_cpus(cpu, "store status")[0]
        if target.state != CpuState.STOPPED:
            raise HmcError(f"cannot store status of CPU {cpu}: it is {target.state} (Stop it first)")
        self.store_status_of(target, by="operator")
        return self._ack("store", f"Status of CPU {cpu} stored at absolute {SAVE_AREA_ADDRESS:#06x}")

    def store_status_of(self, cpu: Cpu, address: int = SAVE_AREA_ADDRESS, by: str = "operator") -> None:
        stored = store_status(cpu, self.storage, address)
        self.publish(StoreStatusEvent(t=self.clock.now, cpu=cpu.address, address=address, by=by,
                                      status=stored.to_dict()))

    def os_command(self, text: str, priority: bool = False, echo: bool = True) -> str:
        """Operating System Messages: send a command to the operating system. echo=False
        leaves it out of the message log (fault injection behind the trainee's back)."""
        self._require_active("send an OS command")
        self._barrier()
        text = text.strip()
        if not text:
            raise HmcError("empty OS command")
        if len(text) > MAX_OS_COMMAND_LENGTH or not text.isprintable() or not text.isascii():
            raise HmcError(f"OS command must be printable ASCII, at most {MAX_OS_COMMAND_LENGTH} characters")
        if self.program is None:
            raise HmcError("no operating system is loaded (Load one first)")
        if len(self._os_commands) >= MAX_QUEUED_OS_COMMANDS:
            raise HmcError(f"the operating system has not read the last {MAX_QUEUED_OS_COMMANDS} commands")
        self._os_commands.append((text, priority))
        self._service_signal = True
        if echo:
            self.publish(ConsoleEvent(t=self.clock.now, cpu=None, text=text, level=5, priority=priority,
                                      source="operator"))
        return self._ack("oscmd", f"{'Priority command' if priority else 'Command'} sent to the operating system: {text}")

    def next_os_command(self) -> tuple[str, bool] | None:
        return self._os_commands.popleft() if self._os_commands else None

    def _stop_all_cpus(self) -> None:
        for cpu in self.cpus:
            if cpu.state != CpuState.CHECK_STOP:
                self.set_state(cpu, CpuState.STOPPED)

    # ------------------------------------------------------------------------------------
    # CPU state changes
    def set_state(self, cpu: Cpu, state: CpuState) -> None:
        """Change a CPU's run state; enabled-wait <-> operating changes are not events (the
        snapshot shows them) because an idle kernel makes them every timer tick."""
        old = cpu.state
        cpu.state = state
        if state == CpuState.STOPPED:
            self._looping.discard(cpu.address)
        if state != CpuState.DISABLED_WAIT:
            cpu.wait_code = None
        running = {CpuState.OPERATING, CpuState.WAIT}
        if old != state and not (old in running and state in running):
            mask, address = cpu.psw
            self.publish(CpuStateEvent(t=self.clock.now, cpu=cpu.address, state=str(state),
                                       psw_mask=mask, psw_addr=address))

    def enter_wait_state(self, cpu: Cpu, mask: int, address: int) -> None:
        """The CPU's PSW is now a wait PSW: enabled wait, or disabled wait with its code."""
        disabled = interrupts.is_disabled_wait(mask)
        if disabled:
            cpu.wait_code = address
        self.set_state(cpu, CpuState.DISABLED_WAIT if disabled else CpuState.WAIT)
        if disabled:
            cpu.wait_code = address
            self.publish(WaitEvent(t=self.clock.now, cpu=cpu.address, code=address, enabled=False,
                                   psw_mask=mask))

    def _check_stop(self, cpu: Cpu, reason: str) -> None:
        cpu.check_stop_reason = reason
        self.set_state(cpu, CpuState.CHECK_STOP)
        self.publish(ErrorEvent(t=self.clock.now, cpu=cpu.address, message=f"CPU {cpu.address} check stop: {reason}"))

    # ------------------------------------------------------------------------------------
    # interruptions
    def _on_interrupt(self, uc: Uc, intno: int, _data: object) -> None:
        cpu = self.current
        pc = uc.reg_read(UC_S390X_REG_PC)
        if intno == 3:
            code, ilen = raw_fields().program_interruption(uc.context_save())
            self.program_interruption(uc, cpu, code, ilen, pc)
        elif intno == 2:
            number = raw_fields().svc_code(uc.context_save())
            interrupts.deliver_svc(cpu, self.storage, number, 2, pc)
            self._after_new_psw(uc, cpu)
        else:
            self._check_stop(cpu, f"unexpected unicorn interruption {intno} at {pc:#x}")
            uc.emu_stop()

    def program_interruption(self, uc: Uc, cpu: Cpu, code: int, ilen: int, address: int) -> None:
        """Deliver a program interruption to the running CPU."""
        self._slice_interruptions += 1
        self._report_program_check(cpu, code, address, ilen)
        interrupts.deliver_program(cpu, self.storage, code, ilen or 2, address)
        self._after_new_psw(uc, cpu)

    def _report_program_check(self, cpu: Cpu, code: int, address: int, ilen: int) -> None:
        """One event per program check, but a CPU in a program-check loop (more than the
        slice allows) is reported once, as an error, until it calms down."""
        if self._slice_interruptions <= MAX_PROGRAM_CHECK_EVENTS_PER_SLICE and cpu.address not in self._looping:
            self.publish(ProgramCheckEvent(t=self.clock.now, cpu=cpu.address, code=code,
                                           address=address, ilen=ilen))
        self._last_program_check[cpu.address] = (code, address, self._slice_interruptions)

    def _note_program_check_loop(self, cpu: Cpu) -> None:
        """After a slice: report a CPU that hit the interruption limit, once (until the
        operator stops, resets or loads it)."""
        if self._slice_interruptions <= MAX_INTERRUPTIONS_PER_SLICE or cpu.address in self._looping:
            return
        self._looping.add(cpu.address)
        code, address, _ = self._last_program_check.get(cpu.address, (0, 0, 0))
        self.publish(ErrorEvent(t=self.clock.now, cpu=cpu.address, message=(
            f"CPU {cpu.address} is in a program-check loop (last: code {code:04x} at "
            f"{address:#x}); Stop it, then Reset or Load")))

    def _after_new_psw(self, uc: Uc, cpu: Cpu) -> None:
        mask, address = cpu.psw
        if interrupts.is_wait(mask):
            self.enter_wait_state(cpu, mask, address)
            uc.emu_stop()
        elif self._slice_interruptions > MAX_INTERRUPTIONS_PER_SLICE:
            uc.emu_stop()

    def _pending_external(self, cpu: Cpu) -> interrupts.ExternalInterruption | None:
        """The highest-priority external interruption this CPU can take now."""
        subclasses = interrupts.external_subclasses(cpu)
        if not subclasses:
            return None
        pending = cpu.pending
        if subclasses & interrupts.CR0_EMERGENCY_SIGNAL and pending.emergency_from:
            source = min(pending.emergency_from)
            pending.emergency_from.discard(source)
            return interrupts.ExternalInterruption(interrupts.EXT_EMERGENCY_SIGNAL, source)
        if subclasses & interrupts.CR0_EXTERNAL_CALL and pending.external_call_from is not None:
            source, pending.external_call_from = pending.external_call_from, None
            return interrupts.ExternalInterruption(interrupts.EXT_EXTERNAL_CALL, source)
        if subclasses & interrupts.CR0_CLOCK_COMPARATOR and self.clock.tod() >= cpu.clock_comparator:
            return interrupts.ExternalInterruption(interrupts.EXT_CLOCK_COMPARATOR)
        if subclasses & interrupts.CR0_CPU_TIMER and cpu.cpu_timer < 0:
            return interrupts.ExternalInterruption(interrupts.EXT_CPU_TIMER)
        if subclasses & interrupts.CR0_SERVICE_SIGNAL and self._service_signal:
            self._service_signal = False  # floating: the first enabled CPU takes it
            return interrupts.ExternalInterruption(interrupts.EXT_SERVICE_SIGNAL, parameter=1)
        return None

    def _could_take_external(self, cpu: Cpu) -> bool:
        """Whether an external interruption is deliverable, without consuming it."""
        subclasses = interrupts.external_subclasses(cpu)
        if not subclasses:
            return False
        p = cpu.pending
        return bool(
            (subclasses & interrupts.CR0_EMERGENCY_SIGNAL and p.emergency_from)
            or (subclasses & interrupts.CR0_EXTERNAL_CALL and p.external_call_from is not None)
            or (subclasses & interrupts.CR0_CLOCK_COMPARATOR and self.clock.tod() >= cpu.clock_comparator)
            or (subclasses & interrupts.CR0_CPU_TIMER and cpu.cpu_timer < 0)
            or (subclasses & interrupts.CR0_SERVICE_SIGNAL and self._service_signal)
        )

    def _deliver_pending(self, cpu: Cpu) -> None:
        if cpu.pending.restart:
            cpu.pending.restart = False
            _, old_address = cpu.psw
            interrupts.deliver_restart(cpu, self.storage)
            self.publish(RestartEvent(t=self.clock.now, cpu=cpu.address, old_psw_addr=old_address,
                                      source=cpu.pending.restart_source))
        else:
            external = self._pending_external(cpu)
            if external is None:
                return
            interrupts.deliver_external(cpu, self.storage, external)
        mask, address = cpu.psw
        if interrupts.is_wait(mask):
            self.enter_wait_state(cpu, mask, address)
        elif cpu.state != CpuState.OPERATING:
            self.set_state(cpu, CpuState.OPERATING)

    # ------------------------------------------------------------------------------------
    # the scheduler
    def interrupt(self) -> None:
        """Ask a running `run`/`run_until` (in another thread) to return soon."""
        self._interrupt_request.set()
        if self.uc is not None:
            self.uc.emu_stop()

    def run(self, ns: int) -> None:
        """Advance virtual time by ns, running every CPU that can run."""
        self._require_active("run")
        self._before_running()
        target = self.clock.now + ns
        while self.clock.now < target and not self._interrupt_request.is_set() and not self._held():
            self._round(target)

    def run_until(self, predicate: Callable[[Event], bool], timeout_ns: int) -> Event | None:
        """Run until an event satisfies predicate (returned) or timeout_ns of virtual time
        passes (None)."""
        self._require_active("run")
        matched: list[Event] = []

        def watch(event: Event) -> None:
            if not matched and predicate(event):
                matched.append(event)

        unsubscribe = self.bus.subscribe(watch)
        self._before_running()
        try:
            target = self.clock.now + timeout_ns
            while (not matched and self.clock.now < target and not self._interrupt_request.is_set()
                   and not self._held()):
                self._round(target)
        finally:
            unsubscribe()
        return matched[0] if matched else None

    def step(self, cpu: int, count: int = 1) -> None:
        """Run one CPU for count instructions (the UI's single step)."""
        self._require_active("step")
        target = self._target_cpus(cpu, "step")[0]
        if target.state not in (CpuState.OPERATING, CpuState.STOPPED):
            raise HmcError(f"cannot step CPU {cpu}: it is in {target.state}")
        if self.checkpoints is not None:
            self.checkpoints.before_step(cpu, count)
        self._aborted = False
        self._dispatch(target, count, force=True)
        self._run_deferred()
        if self.checkpoints is not None and not self._aborted:
            self.checkpoints.after_step()

    # ------------------------------------------------------------------------------------
    # teaching mode: exact stops, holds (machine/checkpoint.py drives them)
    def _before_running(self) -> None:
        self._interrupt_request.clear()
        self._hold = None
        if self.checkpoints is not None:
            self.checkpoints.before_running()

    def _held(self) -> bool:
        return self._hold is not None or self._aborted

    @property
    def held_at(self) -> str | None:
        """The stage whose stage stop ended the last run, if one did."""
        return self._hold

    def hold(self, reason: str) -> None:
        """End the current run after this round (a stage stop)."""
        self._hold = reason

    def _stop_reached(self) -> bool:
        """At a point where the machine can pause mid-round: whether the requested exact
        stop is reached (then the round is abandoned there)."""
        if self._stop is not None and self._stop.reached(self):
            self._aborted = True
        return self._aborted

    def _budget(self, cpu: Cpu, budget: int) -> int:
        """The instruction budget of one emu_start, cut so that an exact stop at an
        instruction count of this CPU lands on it."""
        if self._stop is None:
            return budget
        return self._stop.cap(cpu, budget)

    def _count(self, cpu: Cpu, budget: int) -> None:
        cpu.instructions += self._icount.executed(budget)

    def _round(self, limit: int) -> None:
        if self.checkpoints is not None:
            self.checkpoints.before_round(limit)
        self._aborted = False
        ready = [cpu for cpu in self.cpus if self._is_ready(cpu)]
        if not ready:
            self._idle_until(limit)
        else:
            started = time.perf_counter_ns()
            for cpu in ready:
                if cpu.state in (CpuState.OPERATING, CpuState.WAIT):
                    self._dispatch(cpu, SLICE_INSTRUCTIONS)
                    self._run_deferred()
                    if self._stop_reached():
                        return  # an exact stop inside the round: the clock stays
            if self.free_running:
                # Virtual time follows the host: the round's duration shared by its CPUs.
                self._advance(max(SLICE_INSTRUCTIONS, (time.perf_counter_ns() - started) // len(ready)))
            else:
                self._advance(SLICE_INSTRUCTIONS)
        if self.checkpoints is not None:
            self.checkpoints.after_round(self._interrupt_request.is_set() or self.free_running)

    def _is_ready(self, cpu: Cpu) -> bool:
        if cpu.state == CpuState.OPERATING:
            return True
        if cpu.state == CpuState.WAIT:
            return cpu.pending.restart or self._could_take_external(cpu)
        return False

    def ns_until_ready(self, limit: int) -> int:
        """Virtual ns before any CPU can run (0: one can now), at most `limit`: how far a
        paced runner may jump in one slice while every CPU waits for a timer."""
        if not self.activated or any(self._is_ready(cpu) for cpu in self.cpus):
            return 0
        wakeups = [self._next_timer_ns(cpu) for cpu in self.cpus if cpu.state == CpuState.WAIT]
        return min([limit] + [max(w, 1) for w in wakeups if w is not None])

    def _idle_until(self, limit: int) -> None:
        """Nothing can run: jump to the next timer event of a waiting CPU, or to limit."""
        wakeups = [self._next_timer_ns(cpu) for cpu in self.cpus if cpu.state == CpuState.WAIT]
        wakeups = [w for w in wakeups if w is not None]
        target = min([limit] + [self.clock.now + max(w, 1) for w in wakeups])
        self._advance(target - self.clock.now)

    def _next_timer_ns(self, cpu: Cpu) -> int | None:
        subclasses = interrupts.external_subclasses(cpu)
        candidates = []
        if subclasses & interrupts.CR0_CLOCK_COMPARATOR:
            candidates.append(self.clock.ns_until_tod(cpu.clock_comparator))
        if subclasses & interrupts.CR0_CPU_TIMER:
            candidates.append(max(0, -(-cpu.cpu_timer * 125 // 512)) + 1)
        return min(candidates) if candidates else None

    def _advance(self, ns: int) -> None:
        self.clock.now += ns
        units = tod_units(ns)
        for cpu in self.cpus:
            if cpu.state in (CpuState.OPERATING, CpuState.WAIT):
                cpu.cpu_timer -= units

    def _dispatch(self, cpu: Cpu, budget: int, force: bool = False) -> None:
        uc = self.uc
        uc.context_restore(cpu.ctx)
        flush_tlb(uc)
        cpu.running = True
        self.current = cpu
        self._slice_interruptions = 0
        self.reschedule = False
        try:
            self._deliver_pending(cpu)
            if cpu.state == CpuState.OPERATING or (force and cpu.state == CpuState.STOPPED):
                self._run_slice(uc, cpu, budget)
            self._note_program_check_loop(cpu)
        except UcError as exc:
            self._check_stop(cpu, f"{exc} at {uc.reg_read(UC_S390X_REG_PC):#x}")
        finally:
            uc.context_update(cpu.ctx)
            cpu.running = False
            self.current = None

    def _run_slice(self, uc: Uc, cpu: Cpu, budget: int) -> None:
        """Run the loaded CPU for up to budget instructions, carrying out the emulated
        instructions it stops in front of."""
        if self._stop_reached():
            return
        if self._leave_breakpoint(uc, cpu):
            budget -= 1
            if (budget <= 0 or cpu.state != CpuState.OPERATING or self._stop_slice()
                    or self._stop_reached()):
                return
        for _ in range(MAX_EXITS_PER_SLICE):
            if self.free_running and budget > 1:
                uc.emu_start(uc.reg_read(UC_S390X_REG_PC), _UNREACHABLE, timeout=FREE_SLICE_US)
                cpu.instructions = -1 << 62  # uncounted: no exact stop before this point
            else:
                count = self._budget(cpu, budget)
                uc.emu_start(uc.reg_read(UC_S390X_REG_PC), _UNREACHABLE, count=count)
                self._count(cpu, count)
                if self._stop_reached():
                    return
            pc = uc.reg_read(UC_S390X_REG_PC)
            if pc not in self._exit_set or self._stop_slice():
                return
            if pc in self.breakpoints:
                self._breakpoint_hit(cpu, pc)
                return
            if not self.system.handle(uc, cpu, pc):
                self._drop_intercept(pc)
            cpu.instructions += 1  # the emulated instruction
            if self._stop_slice() or cpu.state != CpuState.OPERATING or budget == 1 or self._stop_reached():
                return

    def _breakpoint_hit(self, cpu: Cpu, address: int) -> None:
        """Stop the CPU in front of the instruction; it executes it when it goes on."""
        cpu.stopped_at_breakpoint = address
        breakpoint_ = self.breakpoints.get(address)
        symbol = self.program.symbolize(address) if self.program is not None else None
        self.publish(BreakpointEvent(
            t=self.clock.now, cpu=cpu.address, address=address,
            label=breakpoint_.label if breakpoint_ else f"{address:#x}", symbol=symbol or ""))
        self.set_state(cpu, CpuState.STOPPED)
        self.reschedule = True

    def _leave_breakpoint(self, uc: Uc, cpu: Cpu) -> bool:
        """A CPU that stopped at a breakpoint and goes on executes that instruction first,
        with the exit lifted for it; True if it did."""
        address = cpu.stopped_at_breakpoint
        if address is None:  # the common case: read no register on the hot path
            return False
        cpu.stopped_at_breakpoint = None
        pc = uc.reg_read(UC_S390X_REG_PC)
        if pc != address or address not in self.breakpoints:
            return False
        if address in self._program_exits or address in self._kexec_exits:
            if not self.system.handle(uc, cpu, pc):  # an emulated instruction: carry it out
                self._drop_intercept(pc)
            cpu.instructions += 1
            return True
        uc.ctl_set_exits(sorted((self._exit_set - {address}) | {_UNREACHABLE}))
        self.flush_code()
        try:
            uc.emu_start(pc, _UNREACHABLE, count=1)
            self._count(cpu, 1)
        finally:
            self._set_exits()
        return True

    def _stop_slice(self) -> bool:
        return (self.reschedule or bool(self._deferred) or self._interrupt_request.is_set()
                or self._slice_interruptions > MAX_INTERRUPTIONS_PER_SLICE)

    def defer(self, action: Callable[[], None]) -> None:
        """Run action after the current slice (machine-wide operations from inside a hook)."""
        self._deferred.append(action)

    def _run_deferred(self) -> None:
        while self._deferred:
            self._deferred.pop(0)()

    # ------------------------------------------------------------------------------------
    # the guest's reports (hypercalls)
    def guest_console_output(self, cpu: Cpu, text: str, level: int) -> None:
        buffered = self._console_partial.pop(cpu.address, "") + text
        *lines, rest = buffered.split("\n")
        if rest:
            self._console_partial[cpu.address] = rest
        for line in lines:
            self.publish(ConsoleEvent(t=self.clock.now, cpu=cpu.address, text=line.rstrip("\r"), level=level))

    def guest_trace(self, cpu: Cpu, event_id: int, args: tuple[int, ...]) -> None:
        report_trace(self, cpu, event_id, args)
