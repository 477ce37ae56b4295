"""Call functions of a guest ELF (assets/bin/*.elf) from Python tests.

A test helper, not part of the product: one unicorn s390x engine, RAM mapped over a host mmap,
the ELF's PT_LOAD segments copied to their physical addresses, and a ``call`` that runs one
guest function to completion under the s390x ELF ABI (integer arguments in r2..r6, further ones
in the caller's parameter area at 160(r15), return address in r14, result in r2).

The ELF must define ``halt`` (a ``j halt`` loop, used as the return address) and ``stack_top``.
"""

from __future__ import annotations

import ctypes
import mmap
from pathlib import Path

from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection
from unicorn import UC_ARCH_S390X, UC_HOOK_INTR, UC_MODE_BIG_ENDIAN, UC_PROT_ALL, Uc
from unicorn.s390x_const import (
    UC_S390X_REG_PC,
    UC_S390X_REG_PSWM,
    UC_S390X_REG_R2,
    UC_S390X_REG_R14,
    UC_S390X_REG_R15,
)

ASSETS_BIN = Path(__file__).resolve().parent.parent / "assets" / "bin"
PSW_MASK_64 = 0x0000000180000000  # EA|BA: 64-bit addressing (a fresh engine is in 24-bit mode)
ABI_SAVE_AREA = 160  # the register save area a caller provides below its stack pointer
MASK64 = (1 << 64) - 1


class GuestFault(RuntimeError):
    """The guest took an interruption or did not return within its instruction budget."""


class Guest:
    """One guest program loaded into a fresh engine, with a bump allocator above its image."""

    def __init__(self, elf: str | Path, mem_size: int = 64 << 20) -> None:
        path = Path(elf)
        if not path.is_absolute() and not path.exists():
            path = ASSETS_BIN / path
        self.mem = mmap.mmap(-1, mem_size)
        self.mem_size = mem_size
        self.uc = Uc(UC_ARCH_S390X, UC_MODE_BIG_ENDIAN)
        self._ram = ctypes.c_char.from_buffer(self.mem)
        self.uc.mem_map_ptr(0, mem_size, UC_PROT_ALL, ctypes.addressof(self._ram))
        self.uc.reg_write(UC_S390X_REG_PSWM, PSW_MASK_64)
        self.symbols: dict[str, int] = {}
        with path.open("rb") as f:
            elf_file = ELFFile(f)
            for seg in elf_file.iter_segments():
                if seg["p_type"] != "PT_LOAD":
                    continue
                start, data = seg["p_paddr"], seg.data()
                self.mem[start : start + len(data)] = data
                self.mem[start + len(data) : start + seg["p_memsz"]] = bytes(
                    seg["p_memsz"] - len(data)
                )
            for sec in elf_file.iter_sections():
                if isinstance(sec, SymbolTableSection):
                    for sym in sec.iter_symbols():
                        if sym.name and sym["st_shndx"] != "SHN_UNDEF":
                            self.symbols[sym.name] = sym["st_value"]
        self.halt = self.symbols["halt"]
        self.stack_top = self.symbols["stack_top"]
        self.heap_start = (self.symbols["_end"] + 0xFFFF) & ~0xFFFF
        self._heap = self.heap_start
        self.fault: tuple[int, int] | None = None
        self.uc.hook_add(UC_HOOK_INTR, self._on_interrupt)

    def _on_interrupt(self, uc: Uc, intno: int, _user_data: object) -> None:
        # unicorn does no PSW swap: without this hook the instruction would just run again
        self.fault = (intno, uc.reg_read(UC_S390X_REG_PC))
        uc.emu_stop()

    # ---- memory -------------------------------------------------------------------------

    def write(self, addr: int, data: bytes) -> None:
        """Store bytes at a guest (absolute) address."""
        self.mem[addr : addr + len(data)] = data

    def read(self, addr: int, length: int) -> bytes:
        """Fetch bytes from a guest (absolute) address."""
        return self.mem[addr : addr + length]

    def read_u64(self, addr: int) -> int:
        return int.from_bytes(self.read(addr, 8), "big")

    def read_cstr(self, addr: int, limit: int = 4096) -> bytes:
        """The NUL-terminated string at addr, without its NUL."""
        data = self.read(addr, limit)
        end = data.find(b"\0")
        if end < 0:
            raise ValueError(f"no NUL within {limit} bytes of {addr:#x}")
        return data[:end]

    def alloc(self, size: int, data: bytes | None = None, align: int = 8) -> int:
        """Reserve guest memory above the image (zeroed, or holding data); returns its address."""
        addr = (self._heap + align - 1) & ~(align - 1)
        if addr + size > self.mem_size:
            raise MemoryError("guest heap exhausted")
        self._heap = addr + size
        self.write(addr, data if data is not None else bytes(size))
        return addr

    def put(self, data: bytes, align: int = 8) -> int:
        """Copy data into freshly allocated guest memory; returns its address."""
        return self.alloc(len(data), data, align)

    def reset_heap(self) -> None:
        self._heap = self.heap_start

    # ---- calls --------------------------------------------------------------------------

    def call(self, func: str | int, *args: int, max_insns: int = 200_000_000) -> int:
        """Run func(*args) until it returns to ``halt``; returns r2 as an unsigned 64-bit int.

        Raises GuestFault on an interruption (program check, SVC) or when the function did not
        return within max_insns instructions.
        """
        entry = self.symbols[func] if isinstance(func, str) else func
        extra = args[5:]
        sp = self.stack_top - ABI_SAVE_AREA - 8 * len(extra)
        for i, value in enumerate(extra):
            self.write(sp + ABI_SAVE_AREA + 8 * i, (value & MASK64).to_bytes(8, "big"))
        for i, value in enumerate(args[:5]):
            self.uc.reg_write(UC_S390X_REG_R2 + i, value & MASK64)
        self.uc.reg_write(UC_S390X_REG_R14, self.halt)
        self.uc.reg_write(UC_S390X_REG_R15, sp)
        self.uc.reg_write(UC_S390X_REG_PSWM, PSW_MASK_64)
        self.fault = None
        self.uc.emu_start(entry, self.halt, count=max_insns)
        if self.fault is not None:
            intno, pc = self.fault
            raise GuestFault(f"{func}: interruption {intno} at {pc:#x}")
        pc = self.uc.reg_read(UC_S390X_REG_PC)
        if pc != self.halt:
            raise GuestFault(f"{func}: no return within {max_insns} instructions (pc {pc:#x})")
        return self.uc.reg_read(UC_S390X_REG_R2)

    def call_signed(self, func: str | int, *args: int, **kw: int) -> int:
        """call(), with r2 read as a signed 64-bit value."""
        value = self.call(func, *args, **kw)
        return value - (1 << 64) if value >> 63 else value
