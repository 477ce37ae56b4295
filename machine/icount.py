"""Exact instruction counts per CPU, from the counter unicorn keeps for `count=`.

unicorn's `emu_start(..., count=K)` installs a hidden per-instruction hook that increments
`uc->emu_counter` and stops once it passes K (UNICORN_NOTES.md §9). The Python binding does
not expose the counter, so we read it from the engine's `uc_struct`, at an offset found with a
self-test: run known counts and look for the word that holds them. Like the context offsets
of machine/engine.py, this is a property of the pinned unicorn 2.1.4; the self-test proves it
once per process and refuses to guess.

How many instructions one `emu_start` executed: `min(counter, K)`. The counter is one past K
when the budget ran out (the hook of the instruction that was not executed ran), and exact
when emulation stopped otherwise (an exit, `emu_stop` from an interruption hook).
"""

from __future__ import annotations

import ctypes
import functools
import struct

from unicorn import UC_ARCH_S390X, UC_MODE_BIG_ENDIAN, UC_PROT_ALL, Uc
from unicorn.s390x_const import UC_S390X_REG_PSWM

from machine.engine import PSW_MASK_64BIT, EngineError

_SCAN_BYTES = 0x4000
# aghi %r1,1; j .-4 -- a loop that runs forever, so only the budget stops it.
_LOOP = bytes.fromhex("a71b0001a7f4fffe")


def _scan(uc: Uc, count: int) -> set[int]:
    uc.emu_start(0x1000, 0xFFFF_FFFF_FFFF_FFFE, count=count)
    raw = ctypes.string_at(uc._uch.value, _SCAN_BYTES)
    return {offset for offset in range(0, _SCAN_BYTES - 8, 8)
            if struct.unpack_from("<Q", raw, offset)[0] == count + 1}


@functools.cache
def counter_offset() -> int:
    """Offset of `emu_counter` in unicorn's engine struct, proven by running instructions."""
    uc = Uc(UC_ARCH_S390X, UC_MODE_BIG_ENDIAN)
    uc.mem_map(0, 0x10000, UC_PROT_ALL)
    uc.mem_write(0x1000, _LOOP)
    uc.reg_write(UC_S390X_REG_PSWM, PSW_MASK_64BIT)
    found = _scan(uc, 37) & _scan(uc, 1001) & _scan(uc, 53)
    if len(found) != 1:
        raise EngineError("unicorn's instruction counter not found (install unicorn==2.1.4)")
    return found.pop()


class InstructionCounter:
    """Reads how many instructions the last `emu_start` of one engine executed."""

    def __init__(self, uc: Uc) -> None:
        self._address = uc._uch.value + counter_offset()

    def executed(self, budget: int) -> int:
        counter = ctypes.c_uint64.from_address(self._address).value
        return min(counter, budget)
