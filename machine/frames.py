"""Where the function a CPU is in returns to, from the program's DWARF call frame information
(.debug_frame, written by gcc -g): `finish` runs a CPU until it is back in its caller.

On s390x the canonical frame address (CFA) is the caller's stack pointer plus 160 (the
register save area the ABI reserves), and the return address is r14: in the register until
the prologue saves it, then in the save area at the offset the CFI names.
"""

from __future__ import annotations

import bisect
import functools
from typing import TYPE_CHECKING

from elftools.elf.elffile import ELFFile

from machine.cpu import GPRS
from machine.paths import program_path

if TYPE_CHECKING:
    from machine.lpar import Lpar

RETURN_REGISTER = 14
STACK_REGISTER = 15
CFA_BIAS = 160  # CFA = caller's %r15 + 160 (s390x ELF ABI)


@functools.cache
def _frame_table(program: str) -> tuple[list[int], list[tuple[int, list[dict]]]]:
    """(FDE starts, [(end, decoded rows)]) of a built program, sorted by start."""
    entries = []
    with open(program_path(program), "rb") as f:
        dwarf = ELFFile(f).get_dwarf_info()
        if dwarf.has_CFI():
            for entry in dwarf.CFI_entries():
                if "initial_location" not in entry.header:
                    continue  # a CIE
                start = entry.header["initial_location"]
                rows = entry.get_decoded().table
                entries.append((start, start + entry.header["address_range"], rows))
    entries.sort(key=lambda e: e[0])
    return [e[0] for e in entries], [(e[1], e[2]) for e in entries]


def _program_at(lpar: Lpar, address: int) -> tuple[str, int] | None:
    crash = lpar.kdump.image
    if crash is not None:
        segment = crash.segment("purgatory")
        if segment.mem <= address < segment.mem + segment.memsz:
            return "purgatory", segment.mem
    program = lpar.program
    if program is not None and program.start <= address < program.end:
        return program.name, 0
    return None


def return_point(lpar: Lpar, cpu_address: int) -> tuple[int, int] | None:
    """(return address, the caller's stack pointer) of the function CPU cpu_address is in;
    None where there is no call frame information."""
    cpu = lpar.cpus[cpu_address]
    pc = cpu.psw[1]
    found = _program_at(lpar, pc)
    if found is None:
        return None
    program, base = found
    try:
        starts, entries = _frame_table(program)
    except (OSError, ValueError):
        return None
    index = bisect.bisect_right(starts, pc - base) - 1
    if index < 0 or pc - base >= entries[index][0]:
        return None
    rows = [row for row in entries[index][1] if row["pc"] <= pc - base]
    if not rows:
        return None
    row = rows[-1]
    gprs = cpu.regs(GPRS)
    cfa = gprs[row["cfa"].reg] + row["cfa"].offset
    rule = row.get(RETURN_REGISTER)
    if rule is None or rule.type in ("UNDEFINED", "SAME_VALUE"):
        return_address = gprs[RETURN_REGISTER]
    elif rule.type == "OFFSET":
        return_address = lpar.storage.u64(cpu.real_to_absolute(cfa + rule.arg))
    else:
        return None
    return return_address, cfa - CFA_BIAS
