"""Architected interruption delivery through the prefixed lowcore.

unicorn raises program and SVC interruptions but never swaps PSWs, and has no external or
restart interruptions at all. Here the host does what the CPU would: store the old PSW and the
interruption code at the CPU's prefix, load the new PSW (S390_FACTS.md §1, UNICORN_NOTES.md §5).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from unicorn.s390x_const import UC_S390X_REG_CR0

from machine.psw import PSW_BA, PSW_EA, PSW_EXT, PSW_IO, PSW_WAIT

if TYPE_CHECKING:
    from machine.cpu import Cpu
    from machine.storage import Storage


# (old PSW, new PSW) lowcore offsets per interruption class.
RESTART = (0x120, 0x1A0)
EXTERNAL = (0x130, 0x1B0)
SVC = (0x140, 0x1C0)
PROGRAM = (0x150, 0x1D0)

LC_EXT_PARAMS = 0x080
LC_EXT_CPU_ADDR = 0x084
LC_EXT_INT_CODE = 0x086
LC_SVC_ILC = 0x088
LC_SVC_CODE = 0x08A
LC_PGM_ILC = 0x08C
LC_PGM_CODE = 0x08E

EXT_EMERGENCY_SIGNAL = 0x1201
EXT_EXTERNAL_CALL = 0x1202
EXT_CLOCK_COMPARATOR = 0x1004
EXT_CPU_TIMER = 0x1005
EXT_SERVICE_SIGNAL = 0x2401

CR0_EMERGENCY_SIGNAL = 0x4000
CR0_EXTERNAL_CALL = 0x2000
CR0_CLOCK_COMPARATOR = 0x0800
CR0_CPU_TIMER = 0x0400
CR0_SERVICE_SIGNAL = 0x0200

# Program interruptions that nullify: the old PSW points at the failing instruction itself
# (protection, translation exceptions). The rest suppress or complete: next instruction.
NULLIFYING_PROGRAM_CODES = frozenset({0x04, 0x10, 0x11, 0x12, 0x13, 0x38, 0x39, 0x3A, 0x3B})


def is_wait(mask: int) -> bool:
    return bool(mask & PSW_WAIT)


def is_disabled_wait(mask: int) -> bool:
    """A wait no interruption can end: I/O and external both masked off."""
    return is_wait(mask) and not mask & (PSW_IO | PSW_EXT)


def swap_psw(cpu: Cpu, storage: Storage, psw_pair: tuple[int, int], old_address: int) -> tuple[int, int]:
    """Store the current PSW (with old_address) as the old PSW, load the new one; returns it."""
    old_offset, new_offset = psw_pair
    prefix = cpu.prefix
    mask, _ = cpu.psw
    storage.put_u64(prefix + old_offset, mask)
    storage.put_u64(prefix + old_offset + 8, old_address)
    new_mask = storage.u64(prefix + new_offset)
    new_address = storage.u64(prefix + new_offset + 8)
    cpu.set_psw(new_mask, new_address)
    return new_mask, new_address


def deliver_program(cpu: Cpu, storage: Storage, code: int, ilen: int, address: int) -> tuple[int, int]:
    """Program interruption for the instruction at address."""
    prefix = cpu.prefix
    storage.put_u16(prefix + LC_PGM_ILC, ilen)
    storage.put_u16(prefix + LC_PGM_CODE, code)
    old = address if (code & 0x7F) in NULLIFYING_PROGRAM_CODES else address + ilen
    return swap_psw(cpu, storage, PROGRAM, old)


def deliver_svc(cpu: Cpu, storage: Storage, number: int, ilen: int, address: int) -> tuple[int, int]:
    prefix = cpu.prefix
    storage.put_u16(prefix + LC_SVC_ILC, ilen)
    storage.put_u16(prefix + LC_SVC_CODE, number)
    return swap_psw(cpu, storage, SVC, address + ilen)


def deliver_restart(cpu: Cpu, storage: Storage) -> tuple[int, int]:
    _, address = cpu.psw
    return swap_psw(cpu, storage, RESTART, address)


@dataclass(frozen=True)
class ExternalInterruption:
    code: int
    cpu_address: int = 0
    parameter: int = 0


def deliver_external(cpu: Cpu, storage: Storage, interruption: ExternalInterruption) -> tuple[int, int]:
    prefix = cpu.prefix
    storage.put_u32(prefix + LC_EXT_PARAMS, interruption.parameter)
    storage.put_u16(prefix + LC_EXT_CPU_ADDR, interruption.cpu_address)
    storage.put_u16(prefix + LC_EXT_INT_CODE, interruption.code)
    _, address = cpu.psw
    return swap_psw(cpu, storage, EXTERNAL, address)


def external_subclasses(cpu: Cpu) -> int:
    """The CR0 external subclass mask bits, or 0 when the PSW masks external interruptions."""
    mask, _ = cpu.psw
    if not mask & PSW_EXT:
        return 0
    return cpu.reg(UC_S390X_REG_CR0)


def instruction_length(first_byte: int) -> int:
    """s390 instruction length from the two high bits of the opcode."""
    return (2, 4, 4, 6)[first_byte >> 6]


def addressing_mask(psw_mask: int) -> int:
    if psw_mask & PSW_EA:
        return (1 << 64) - 1
    if psw_mask & PSW_BA:
        return 0x7FFFFFFF
    return 0xFFFFFF
