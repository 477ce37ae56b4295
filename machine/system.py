"""The instructions unicorn leaves out, emulated by the host.

unicorn 2.1.4 treats SIGP, DIAG, STAP, STIDP, STCK and friends, SCKC/STCKC, STFLE as no-ops and
ignores the wait bit of a loaded PSW. The address of each such instruction in a loaded program
(found by a capstone scan, machine/images.py) is a unicorn *exit*: emulation stops in front of
it, the host carries it out here, sets the condition code, moves the PC on and resumes.

Exits rather than code hooks, because unicorn calls every code hook's range check on every
instruction once an instruction budget (`count=`) is in use: 100 hooks cut the speed from
220 to 4 million instructions per second, while 200 exits cost nothing measurable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

from unicorn import Uc
from unicorn.s390x_const import UC_S390X_REG_PC, UC_S390X_REG_PSWM, UC_S390X_REG_R0

from machine import interrupts
from machine.cpu import Cpu, CpuState
from machine.events import SigpEvent
from machine.psw import PSW_BA

if TYPE_CHECKING:
    from machine.lpar import Lpar

GPR = [UC_S390X_REG_R0 + i for i in range(16)]

# Facility bits we report (STFL/STFLE): z/Architecture installed and active, STFLE, long
# displacement, extended immediate, store clock fast, general instructions extension (z10).
FACILITIES = (0, 1, 2, 7, 18, 21, 25, 34)
FACILITY_BYTES = bytearray(8)
for _bit in FACILITIES:
    FACILITY_BYTES[_bit // 8] |= 0x80 >> (_bit % 8)
FACILITY_BYTES = bytes(FACILITY_BYTES)

SIGP_ORDER_NAMES = {
    0x01: "sense", 0x02: "external call", 0x03: "emergency signal", 0x04: "start",
    0x05: "stop", 0x06: "restart", 0x09: "stop and store status", 0x0B: "initial CPU reset",
    0x0C: "CPU reset", 0x0D: "set prefix", 0x0E: "store status at address",
    0x12: "set architecture", 0x15: "sense running status",
}
SIGP_SET_ARCHITECTURE = 0x12
SIGP_STATUS_INVALID_ORDER = 0x002
SIGP_STATUS_STOPPED = 0x040
SIGP_STATUS_CHECK_STOP = 0x010
SIGP_STATUS_EXT_CALL_PENDING = 0x080
SIGP_STATUS_INVALID_PARAMETER = 0x100
SIGP_STATUS_INCORRECT_STATE = 0x200
SIGP_STATUS_NOT_RUNNING = 0x400


def set_cc(uc: Uc, cc: int) -> None:
    mask = uc.reg_read(UC_S390X_REG_PSWM)
    uc.reg_write(UC_S390X_REG_PSWM, (mask & ~(3 << 44)) | (cc << 44))


class SystemInstructions:
    """The hook handlers; `lpar` supplies storage, CPUs, the clock and the event bus."""

    def __init__(self, lpar: Lpar) -> None:
        self.lpar = lpar
        self._by_opcode: dict[int, Callable[[Uc, Cpu, int, bytes], None]] = {
            0xAE: self._sigp,
            0x83: self._diag,
            0x82: self._lpsw,
            0xB202: self._stidp,
            0xB205: self._stck,
            0xB27C: self._stck,
            0xB278: self._stcke,
            0xB206: self._sckc,
            0xB207: self._stckc,
            0xB208: self._spt,
            0xB209: self._stpt,
            0xB210: self._spx,
            0xB212: self._stap,
            0xB2B0: self._stfle,
            0xB2B1: self._stfl,
            0xB2B2: self._lpswe,
            0x0107: self._sckpf,
        }

    # --- dispatch -------------------------------------------------------------------------
    def handle(self, uc: Uc, cpu: Cpu, address: int) -> bool:
        """Carry out the instruction at address (the running CPU stopped in front of it).
        False when the bytes there are not an instruction we emulate (the program changed)."""
        insn = self.lpar.storage.read(cpu.real_to_absolute(address), 6)
        handler = self._by_opcode.get(insn[0]) or self._by_opcode.get(insn[0] << 8 | insn[1])
        if handler is None:
            return False
        handler(uc, cpu, address, insn)
        return True

    # --- operand helpers --------------------------------------------------------------------
    def _operand_address(self, uc: Uc, insn: bytes) -> int:
        """Effective address of an S/RS-format second operand D2(B2) in the current mode."""
        base = insn[2] >> 4
        displacement = (insn[2] & 0xF) << 8 | insn[3]
        value = displacement + (uc.reg_read(GPR[base]) if base else 0)
        return value & interrupts.addressing_mask(uc.reg_read(UC_S390X_REG_PSWM))

    def _store(self, cpu: Cpu, real: int, data: bytes) -> None:
        self.lpar.storage.write(cpu.real_to_absolute(real), data)

    def _load(self, cpu: Cpu, real: int, length: int) -> bytes:
        return self.lpar.storage.read(cpu.real_to_absolute(real), length)

    @staticmethod
    def _skip(uc: Uc, address: int, length: int) -> None:
        uc.reg_write(UC_S390X_REG_PC, address + length)

    def _spx(self, uc: Uc, cpu: Cpu, address: int, insn: bytes) -> None:
        value = int.from_bytes(self._load(cpu, self._operand_address(uc, insn), 4), "big")
        self._skip(uc, address, 4)
        cpu.set_prefix(value & 0x7FFFE000)

    # --- identification and clocks ---------------------------------------------------------
    def _stap(self, uc: Uc, cpu: Cpu, address: int, insn: bytes) -> None:
        self._store(cpu, self._operand_address(uc, insn), cpu.address.to_bytes(2, "big"))
        self._skip(uc, address, 4)

    def _stidp(self, uc: Uc, cpu: Cpu, address: int, insn: bytes) -> None:
        # version 0, CPU identification 0D1A0n, machine type 3931, format-1 (LPAR) id.
        cpu_id = (0x0D1A00 + cpu.address) << 32 | 0x3931 << 16 | 0x8000
        self._store(cpu, self._operand_address(uc, insn), cpu_id.to_bytes(8, "big"))
        self._skip(uc, address, 4)

    def _stck(self, uc: Uc, cpu: Cpu, address: int, insn: bytes) -> None:
        self._store(cpu, self._operand_address(uc, insn), self.lpar.clock.store_clock().to_bytes(8, "big"))
        set_cc(uc, 0)
        self._skip(uc, address, 4)

    def _stcke(self, uc: Uc, cpu: Cpu, address: int, insn: bytes) -> None:
        tod = self.lpar.clock.store_clock()
        value = bytes(1) + tod.to_bytes(8, "big") + bytes(5) + cpu.tod_programmable.to_bytes(2, "big")
        self._store(cpu, self._operand_address(uc, insn), value)
        set_cc(uc, 0)
        self._skip(uc, address, 4)

    def _sckc(self, uc: Uc, cpu: Cpu, address: int, insn: bytes) -> None:
        cpu.clock_comparator = int.from_bytes(self._load(cpu, self._operand_address(uc, insn), 8), "big")
        self._skip(uc, address, 4)

    def _stckc(self, uc: Uc, cpu: Cpu, address: int, insn: bytes) -> None:
        self._store(cpu, self._operand_address(uc, insn), cpu.clock_comparator.to_bytes(8, "big"))
        self._skip(uc, address, 4)

    def _spt(self, uc: Uc, cpu: Cpu, address: int, insn: bytes) -> None:
        value = int.from_bytes(self._load(cpu, self._operand_address(uc, insn), 8), "big", signed=True)
        cpu.cpu_timer = value
        self._skip(uc, address, 4)

    def _stpt(self, uc: Uc, cpu: Cpu, address: int, insn: bytes) -> None:
        value = (cpu.cpu_timer & (1 << 64) - 1).to_bytes(8, "big")
        self._store(cpu, self._operand_address(uc, insn), value)
        self._skip(uc, address, 4)

    def _sckpf(self, uc: Uc, cpu: Cpu, address: int, insn: bytes) -> None:
        cpu.tod_programmable = uc.reg_read(GPR[0]) & 0xFFFF
        self._skip(uc, address, 2)

    def _stfl(self, uc: Uc, cpu: Cpu, address: int, insn: bytes) -> None:
        self._store(cpu, 0xC8, FACILITY_BYTES[:4])
        self._skip(uc, address, 4)

    def _stfle(self, uc: Uc, cpu: Cpu, address: int, insn: bytes) -> None:
        wanted = (uc.reg_read(GPR[0]) & 0xFF) + 1
        self._store(cpu, self._operand_address(uc, insn), FACILITY_BYTES[: 8 * wanted].ljust(8 * wanted, b"\0"))
        uc.reg_write(GPR[0], (uc.reg_read(GPR[0]) & ~0xFF))  # one doubleword is enough
        set_cc(uc, 0)
        self._skip(uc, address, 4)

    # --- wait states -------------------------------------------------------------------------
    def _lpswe(self, uc: Uc, cpu: Cpu, address: int, insn: bytes) -> None:
        psw = self._load(cpu, self._operand_address(uc, insn), 16)
        self._load_psw(cpu, int.from_bytes(psw[:8], "big"), int.from_bytes(psw[8:], "big"))

    def _lpsw(self, uc: Uc, cpu: Cpu, address: int, insn: bytes) -> None:
        short = int.from_bytes(self._load(cpu, self._operand_address(uc, insn), 8), "big")
        self._load_psw(cpu, *short_psw_to_long(short))

    def _load_psw(self, cpu: Cpu, mask: int, new_address: int) -> None:
        cpu.set_psw(mask, new_address)
        if interrupts.is_wait(mask):
            self.lpar.enter_wait_state(cpu, mask, new_address)

    # --- DIAGNOSE ---------------------------------------------------------------------------
    def _diag(self, uc: Uc, cpu: Cpu, address: int, insn: bytes) -> None:
        code = self._operand_address(uc, insn) & 0xFFFF
        r1, r3 = insn[1] >> 4, insn[1] & 0xF
        if code == 0x500:
            self.lpar.hypercalls.call(uc, cpu)
            self._skip(uc, address, 4)
        elif code == 0x308:
            self._skip(uc, address, 4)
            self.lpar.ipl_control.diag308(uc, cpu, r1, r3)
        elif code in (0x44, 0x9C):  # time-slice end / directed yield: give up the slice
            self._skip(uc, address, 4)
            self.lpar.reschedule = True
        else:
            self.lpar.program_interruption(uc, cpu, 0x06, 4, address)  # specification

    # --- SIGNAL PROCESSOR ----------------------------------------------------------------------
    def _sigp(self, uc: Uc, cpu: Cpu, address: int, insn: bytes) -> None:
        r1, r3 = insn[1] >> 4, insn[1] & 0xF
        order = self._operand_address(uc, insn) & 0xFF
        parameter = uc.reg_read(GPR[r1 if r1 % 2 else r1 + 1])
        target_address = uc.reg_read(GPR[r3]) & 0xFFFF
        self._skip(uc, address, 4)
        cc, status = self._signal(cpu, order, target_address, parameter)
        if cc == 1:
            old = uc.reg_read(GPR[r1])
            uc.reg_write(GPR[r1], (old & ~0xFFFFFFFF) | status)
        set_cc(uc, cc)
        self.lpar.publish(SigpEvent(
            t=self.lpar.clock.now, cpu=cpu.address, order=SIGP_ORDER_NAMES.get(order, f"{order:#04x}"),
            target=target_address, cc=cc, status=status,
        ))

    def _signal(self, sender: Cpu, order: int, target_address: int, parameter: int) -> tuple[int, int]:
        """Carry out one SIGP order; returns (condition code, status bits)."""
        if order == SIGP_SET_ARCHITECTURE:
            # It acts on the whole configuration: the CPU address is not examined (PoP,
            # "Set Architecture"), so an address with no CPU is not "not operational".
            return self._order_set_architecture(sender, sender, parameter)
        target = self.lpar.cpu_by_address(target_address)
        if target is None:
            return 3, 0
        handler = self._orders.get(order)
        if handler is None:
            return 1, SIGP_STATUS_INVALID_ORDER
        return handler(self, sender, target, parameter)

    def _order_sense(self, sender: Cpu, target: Cpu, parameter: int) -> tuple[int, int]:
        status = 0
        if target.state == CpuState.STOPPED:
            status |= SIGP_STATUS_STOPPED
        if target.state == CpuState.CHECK_STOP:
            status |= SIGP_STATUS_CHECK_STOP
        if target.pending.external_call_from is not None:
            status |= SIGP_STATUS_EXT_CALL_PENDING
        return (1, status) if status else (0, 0)

    def _order_external_call(self, sender: Cpu, target: Cpu, parameter: int) -> tuple[int, int]:
        if target.pending.external_call_from is not None:
            return 1, SIGP_STATUS_EXT_CALL_PENDING
        target.pending.external_call_from = sender.address
        return 0, 0

    def _order_emergency(self, sender: Cpu, target: Cpu, parameter: int) -> tuple[int, int]:
        target.pending.emergency_from.add(sender.address)
        return 0, 0

    def _order_start(self, sender: Cpu, target: Cpu, parameter: int) -> tuple[int, int]:
        if target.state == CpuState.STOPPED:
            self.lpar.set_state(target, CpuState.OPERATING)
        return 0, 0

    def _order_stop(self, sender: Cpu, target: Cpu, parameter: int) -> tuple[int, int]:
        self.lpar.set_state(target, CpuState.STOPPED)
        return 0, 0

    def _order_restart(self, sender: Cpu, target: Cpu, parameter: int) -> tuple[int, int]:
        self.lpar.request_restart(target, source=f"cpu {sender.address}")
        return 0, 0

    def _order_stop_and_store(self, sender: Cpu, target: Cpu, parameter: int) -> tuple[int, int]:
        self.lpar.set_state(target, CpuState.STOPPED)
        self.lpar.store_status_of(target, by=f"sigp from cpu {sender.address}")
        return 0, 0

    def _order_initial_reset(self, sender: Cpu, target: Cpu, parameter: int) -> tuple[int, int]:
        if target is sender:
            return 1, SIGP_STATUS_INCORRECT_STATE
        target.initial_reset()
        self.lpar.set_state(target, CpuState.STOPPED)
        return 0, 0

    def _order_cpu_reset(self, sender: Cpu, target: Cpu, parameter: int) -> tuple[int, int]:
        if target is sender:
            return 1, SIGP_STATUS_INCORRECT_STATE
        target.cpu_reset()
        self.lpar.set_state(target, CpuState.STOPPED)
        return 0, 0

    def _order_set_prefix(self, sender: Cpu, target: Cpu, parameter: int) -> tuple[int, int]:
        prefix = parameter & 0x7FFFE000
        if target.state != CpuState.STOPPED or target is sender:
            return 1, SIGP_STATUS_INCORRECT_STATE
        if prefix + 0x2000 > self.lpar.storage.size:
            return 1, SIGP_STATUS_INVALID_PARAMETER
        target.set_prefix(prefix)
        return 0, 0

    def _order_store_at_address(self, sender: Cpu, target: Cpu, parameter: int) -> tuple[int, int]:
        area = parameter & 0x7FFFFE00
        if target.state != CpuState.STOPPED or target is sender:
            return 1, SIGP_STATUS_INCORRECT_STATE
        if area + 512 > self.lpar.storage.size:
            return 1, SIGP_STATUS_INVALID_PARAMETER
        self.lpar.store_status_of(target, address=area, by=f"sigp from cpu {sender.address}")
        return 0, 0

    def _order_set_architecture(self, sender: Cpu, target: Cpu, parameter: int) -> tuple[int, int]:
        # CPUs here are always in z/Architecture mode: switching to it (modes 1 and 2) is
        # accepted and changes nothing; ESA/390 (mode 0) cannot be entered.
        if parameter & 0xFF == 0:
            return 1, SIGP_STATUS_INVALID_PARAMETER
        return 0, 0

    def _order_sense_running(self, sender: Cpu, target: Cpu, parameter: int) -> tuple[int, int]:
        if target.state in (CpuState.OPERATING, CpuState.WAIT):
            return 0, 0
        return 1, SIGP_STATUS_NOT_RUNNING

    _orders: ClassVar[dict] = {
        0x01: _order_sense, 0x02: _order_external_call, 0x03: _order_emergency,
        0x04: _order_start, 0x05: _order_stop, 0x06: _order_restart,
        0x09: _order_stop_and_store, 0x0B: _order_initial_reset, 0x0C: _order_cpu_reset,
        0x0D: _order_set_prefix, 0x0E: _order_store_at_address, 0x12: _order_set_architecture,
        0x15: _order_sense_running,
    }


def short_psw_to_long(short: int) -> tuple[int, int]:
    """An 8-byte ESA/390 PSW as the (mask, address) of the z/Architecture PSW it becomes:
    bit 12 (the ESA format bit) dropped, bit 32 (31-bit addressing) moved to BA."""
    high, low = short >> 32, short & 0xFFFFFFFF
    mask = (high & ~0x00080000) << 32
    if low & 0x80000000:
        mask |= PSW_BA
    return mask, low & 0x7FFFFFFF


