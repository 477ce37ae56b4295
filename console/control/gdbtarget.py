"""The LPAR as a gdb target (console/control/gdbstub.py says what gdb asks of it).

Every change gdb makes to the machine goes through an operator command (`step 1 cpu=N`,
`start N`, `stop N`, `break ADDR`, `gdbserver write-register ...`, `gdbserver write-memory
...`, and in reverse `step back 1 cpu=N` and `reverse-continue`), so the session's journal
records it and a replay does it again without gdb.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol

from unicorn.s390x_const import UC_S390X_REG_FPC

from console.control.gdbstub import REGISTER_NUMBER, REGISTERS, SIGINT, SIGTRAP, Stop, TargetError
from machine.cpu import ARS, CRS, FPRS, GPRS, CpuState
from machine.events import Event
from machine.lpar import HmcError
from machine.paths import assets_dir
from machine.storage import StorageError

if TYPE_CHECKING:
    from machine.cpu import Cpu
    from machine.lpar import Lpar

_PREFIX_AREA = 0x2000


# --------------------------------------------------------------------------------------------
# The LPAR as a target


@dataclass(frozen=True)
class GdbEvent(Event):
    """gdb attached, detached, or was told the machine stopped (not part of a replay)."""

    kind: ClassVar[str] = "gdb"
    attached: bool = False
    client: str = ""
    message: str = ""


class GdbSession(Protocol):
    """What the glue needs of console/control/session.py's Session."""

    lpar: Lpar | None

    def execute(self, line: str) -> object: ...


def _ok(result: object) -> None:
    """Raise TargetError unless a command's result is ok."""
    if not getattr(result, "ok", False):
        raise TargetError(getattr(result, "message", "refused"))


class LparTarget:
    """The session's LPAR, changed only through operator commands (journalled)."""

    def __init__(self, session: GdbSession, client: str = "") -> None:
        self.session = session
        self.client = client
        self._owned: set[int] = set()  # breakpoints gdb set (not the operator's)
        self._held: set[int] = set()   # CPUs gdb stopped that were running: detach resumes
        self._hit: Stop | None = None
        # (CPU, instruction count) of the stops gdb was told about: a CPU still at a
        # breakpoint gdb heard of goes on past it; one gdb did not hear of is reported first.
        self._reported: set[tuple[int, int]] = set()

    @property
    def lpar(self) -> Lpar:
        lpar = self.session.lpar
        if lpar is None or not lpar.activated:
            raise TargetError("the LPAR is not activated")
        return lpar

    def _cpu(self, address: int) -> Cpu:
        """The CPU of an address (addresses may have gaps: profile cpu_addresses)."""
        cpu = self.lpar.cpu_by_address(address)
        if cpu is None:
            raise TargetError(f"no CPU {address}")
        return cpu

    def _run(self, line: str) -> None:
        _ok(self.session.execute(line))

    def publish(self, message: str, attached: bool = True) -> None:
        lpar = self.session.lpar
        if lpar is not None and lpar.activated:
            # Aside: gdb's comings and goings are the session's, not the machine's history
            # (they take no event index, so a replay without gdb counts the same events).
            lpar.publish_aside(GdbEvent(t=lpar.clock.now, cpu=None, attached=attached,
                                        client=self.client, message=message))

    def program_file(self) -> str | None:
        lpar = self.session.lpar
        if lpar is None or lpar.program is None:
            return None
        path = assets_dir() / "bin" / f"{lpar.program.name}.elf"
        return str(path.absolute()) if path.is_file() else None

    def cpus(self) -> list[int]:
        lpar = self.session.lpar
        if lpar is None or not lpar.activated:
            return [0]
        return [cpu.address for cpu in lpar.cpus]

    # registers
    def read_registers(self, cpu: int) -> list[int]:
        snap = next((c for c in self.lpar.snapshot().cpus if c.address == cpu), None)
        if snap is None:
            raise TargetError(f"no CPU {cpu}")
        return [snap.psw_mask, snap.psw_addr, *snap.gprs, *snap.ars, snap.fpc, *snap.fprs,
                *snap.crs, snap.prefix, snap.cpu_timer, snap.clock_comparator]

    def write_register(self, cpu: int, number: int, value: int) -> None:
        self._run(f"gdbserver write-register {cpu} {REGISTERS[number].name} {value:x}")

    # memory
    def read_memory(self, cpu: int, address: int, length: int) -> bytes:
        return b"".join(self.lpar.read(absolute, size)
                        for absolute, size in self._absolute_ranges(cpu, address, length))

    def write_memory(self, cpu: int, address: int, data: bytes) -> None:
        self._absolute_ranges(cpu, address, len(data))  # refuse a bad range before journaling
        self._run(f"gdbserver write-memory {cpu} {address:x} {data.hex()}")

    def _absolute_ranges(self, cpu: int, address: int, length: int) -> list[tuple[int, int]]:
        try:
            return real_ranges(self.lpar, cpu, address, length)
        except (HmcError, StorageError) as error:
            raise TargetError(str(error)) from None

    # breakpoints
    def insert_breakpoint(self, address: int) -> None:
        if address in self.lpar.breakpoints:
            return  # the operator's own breakpoint serves gdb too; gdb will not remove it
        self._run(f"break {address:#x}")
        self._owned.add(address)

    def remove_breakpoint(self, address: int) -> None:
        if address in self._owned:
            self._owned.discard(address)
            if address in self.lpar.breakpoints:
                self._run(f"break clear {address:#x}")

    # run control
    def step(self, cpu: int) -> Stop:
        state = self._cpu(cpu).state
        if state in (CpuState.OPERATING, CpuState.STOPPED):
            self._run(f"step 1 cpu={cpu}")
        self._reported.add((cpu, self._cpu(cpu).instructions))  # gdb hears where it is
        return Stop(cpu, SIGTRAP)

    def resume(self, cpus: list[int] | None) -> None:
        lpar = self.lpar
        targets = [c.address for c in lpar.cpus] if cpus is None else cpus
        self._hit = None
        self._reassert_breakpoints()
        pending = self._pending_hit(targets)
        if pending is not None:
            # A CPU reached a breakpoint in the same slice as the one gdb was told about:
            # gdb hears of it now, before anything runs (as gdbserver reports a pending
            # event), instead of the CPU going past it unreported.
            self._hit = pending
            return
        for cpu in targets:
            if self._cpu(cpu).state == CpuState.STOPPED:
                self._run(f"start {cpu}")
        self._held -= set(targets)

    def _pending_hit(self, targets: list[int]) -> Stop | None:
        lpar = self.lpar
        for cpu in targets:
            target = self._cpu(cpu)
            address = target.stopped_at_breakpoint
            if (address is not None and address in lpar.breakpoints
                    and target.psw[1] == address and target.state == CpuState.STOPPED
                    and (cpu, target.instructions) not in self._reported):
                return Stop(cpu, SIGTRAP)
        return None

    # reverse execution (machine/checkpoint.py): every CPU is stopped (all-stop), and going
    # back keeps them so, since the state is restored from a point gdb did not see
    def reverse_step(self, cpu: int) -> Stop:
        """bs: the machine when the CPU had executed one instruction fewer. At the beginning
        of the history (nothing executed, or older than what is kept) it stays where it is
        and says so."""
        if self._cpu(cpu).instructions == 0:
            return self._stop_everything(Stop(cpu, SIGTRAP, history_begins=True),
                                         announce=False)
        result = self.session.execute(f"step back 1 cpu={cpu}")
        if not getattr(result, "ok", False):
            self.publish(f"gdb: reverse step refused: {getattr(result, 'message', '')}")
            return self._stop_everything(Stop(cpu, SIGTRAP, history_begins=True),
                                         announce=False)
        return self._after_going_back(Stop(cpu, SIGTRAP))

    def reverse_continue(self, cpu: int) -> Stop:
        """bc: back to the latest earlier point at which any CPU reached one of the
        breakpoints (gdb inserted its own just before); reported with that CPU."""
        self._reassert_breakpoints()
        result = self.session.execute("reverse-continue")
        if not getattr(result, "ok", False):
            # No history to run back through (the machine ran free): as far as gdb can
            # go back, it is at the beginning; the operator sees why.
            self.publish(f"gdb: reverse-continue refused: {getattr(result, 'message', '')}")
            return self._stop_everything(Stop(cpu, SIGTRAP, history_begins=True),
                                         announce=False)
        hit = (getattr(result, "data", None) or {}).get("cpu")
        if hit is None:
            # The beginning of the history, or of the stretch one search looks back through:
            # either way gdb hears "No more reverse-execution history" (as with the limit of
            # its own `record full`); the operator's message says which.
            self.publish(f"gdb: reverse-continue: {getattr(result, 'message', '')}")
            return self._after_going_back(Stop(cpu, SIGTRAP, history_begins=True))
        self.publish(f"gdb: CPU {hit} reached a breakpoint (reverse-continue); every CPU is "
                     "stopped")
        return self._after_going_back(Stop(hit, SIGTRAP))

    def _after_going_back(self, stop: Stop) -> Stop:
        """The machine is at an earlier point gdb was not told about: CPUs running then are
        stopped (all-stop), and breakpoints they sit at are news to gdb again."""
        self._reported.clear()
        return self._stop_everything(stop, announce=False)

    def _reassert_breakpoints(self) -> None:
        """Going back restores the breakpoints set then: the ones gdb holds inserted now
        must be set again (as commands, so a replay does the same)."""
        for address in sorted(self._owned):
            if address not in self.lpar.breakpoints:
                self._run(f"break {address:#x}")

    def on_event(self, event: Event) -> None:
        """Bus subscriber: remember the first breakpoint a CPU reached while gdb waits."""
        if event.kind == "breakpoint" and event.cpu is not None:
            self._held.add(event.cpu)  # it stopped for gdb's sake: detach starts it again
            if self._hit is None:
                self._hit = Stop(event.cpu, SIGTRAP)

    def poll_stop(self) -> Stop | None:
        lpar = self.lpar
        if self._hit is not None:
            return self._stop_everything(self._hit)
        if not any(cpu.state in (CpuState.OPERATING, CpuState.WAIT) for cpu in lpar.cpus):
            # Every CPU stopped by itself or by the operator: report the first one.
            return self._stop_everything(Stop(lpar.cpus[0].address, SIGTRAP))
        return None

    def stop_all(self, signal: int) -> Stop:
        lpar = self.lpar
        running = [c.address for c in lpar.cpus if c.state in (CpuState.OPERATING,
                                                                  CpuState.WAIT)]
        return self._stop_everything(Stop(running[0] if running else 0, signal))

    def _stop_everything(self, stop: Stop, announce: bool = True) -> Stop:
        """All-stop: every CPU that still runs is stopped; detach resumes them."""
        for cpu in self.lpar.cpus:
            if cpu.state in (CpuState.OPERATING, CpuState.WAIT):
                self._run(f"stop {cpu.address}")
                self._held.add(cpu.address)
        self._hit = None
        self._reported.add((stop.cpu, self._cpu(stop.cpu).instructions))
        if announce:
            why = "interrupted by gdb" if stop.signal == SIGINT else f"CPU {stop.cpu} trapped"
            self.publish(f"gdb: {why}; every CPU is stopped")
        return stop

    def attach(self) -> None:
        lpar = self.session.lpar
        self._held = set()
        self.publish(f"gdb attached from {self.client}: it stops every CPU (detach starts "
                     "them again)")
        if lpar is not None and lpar.activated:
            self._stop_everything(Stop(lpar.cpus[0].address, SIGTRAP), announce=False)

    def detach(self) -> None:
        lpar = self.session.lpar
        if lpar is not None and lpar.activated:
            for address in list(self._owned):
                self.remove_breakpoint(address)
            for address in sorted(self._held):
                if self._cpu(address).state == CpuState.STOPPED:
                    self._run(f"start {address}")
        self._held.clear()
        self.publish(f"gdb detached ({self.client})", attached=False)


def real_ranges(lpar: Lpar, cpu: int, address: int, length: int) -> list[tuple[int, int]]:
    """The absolute (address, length) pieces of a real range as a CPU sees it: prefixing
    swaps real 0-8K with the prefix area. StorageError if any piece is beyond storage."""
    target = lpar.cpu_by_address(cpu)
    if target is None:
        raise StorageError(f"no CPU {cpu}")
    pieces: list[tuple[int, int]] = []
    end = address + length
    while address < end:
        size = min(end, (address // _PREFIX_AREA + 1) * _PREFIX_AREA) - address
        absolute = target.real_to_absolute(address)
        lpar.storage.check(absolute, size)
        pieces.append((absolute, size))
        address += size
    return pieces


def write_register(lpar: Lpar, cpu: int, name: str, value: int) -> None:
    """Set one register of a CPU by its target-description name (`gdbserver write-register`)."""
    target = lpar.cpu_by_address(cpu)
    if target is None:
        raise HmcError(f"no CPU {cpu}")
    number = REGISTER_NUMBER[name]
    value &= (1 << REGISTERS[number].bits) - 1
    if name in ("pswm", "pswa"):
        mask, address = target.psw
        target.set_psw(value if name == "pswm" else mask, value if name == "pswa" else address)
    elif name == "prefix":
        target.set_prefix(value & 0x7FFFE000)
    elif name == "cputm":
        target.cpu_timer = value - (1 << 64) if value >> 63 else value
    elif name == "ckc":
        target.clock_comparator = value
    elif name == "fpc":
        target.set_reg(UC_S390X_REG_FPC, value)
    else:
        kind, index = re.fullmatch(r"([a-z]+)(\d+)", name).groups()  # type: ignore[union-attr]
        table = {"r": GPRS, "acr": ARS, "f": FPRS, "cr": CRS}[kind]
        target.set_reg(table[int(index)], value)
    if name.startswith("cr") or name == "prefix":
        lpar.flush_code()


def write_memory(lpar: Lpar, cpu: int, address: int, data: bytes) -> None:
    """Store bytes at a real address of a CPU (`gdbserver write-memory`)."""
    offset = 0
    for absolute, size in real_ranges(lpar, cpu, address, len(data)):
        lpar.storage.write(absolute, data[offset:offset + size])
        offset += size
    lpar.flush_code()  # gdb may patch code: no stale translation may run
