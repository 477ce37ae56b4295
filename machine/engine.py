"""The shared unicorn engine and raw access to the CPU state unicorn has no register for.

unicorn 2.1.4 exposes no register constant for the prefix, the program-interruption code and
length, or the SVC number. They live in QEMU's CPU state, which `uc_context_save` copies. We find
the control registers in that copy with a sentinel and read the other fields at fixed distances
from them. Those distances are a property of the pinned unicorn release, so a self-test proves
them at start-up (see UNICORN_NOTES.md §5).
"""

from __future__ import annotations

import ctypes
import functools
import struct

from unicorn import UC_ARCH_S390X, UC_MODE_BIG_ENDIAN, UC_PROT_ALL, Uc, UcError
from unicorn.s390x_const import (
    UC_S390X_REG_CR0,
    UC_S390X_REG_CR1,
    UC_S390X_REG_PC,
    UC_S390X_REG_PSWM,
)
from unicorn.unicorn_const import UC_CTL_IO_WRITE, UC_CTL_TLB_FLUSH, UC_HOOK_INTR

from machine.psw import PSW_BA, PSW_EA

PSW_MASK_64BIT = PSW_EA | PSW_BA

# Distances from the control registers inside the saved QEMU CPU state (unicorn 2.1.4).
_PREFIX_FROM_CR0 = -40
_PGM_CODE_FROM_CR0 = -32
_PGM_ILEN_FROM_CR0 = -28
_SVC_CODE_FROM_CR0 = -24


class EngineError(RuntimeError):
    """The installed unicorn does not behave like the release DumpLab was built for."""


# The ceiling of one engine's translated-code buffer. unicorn 2.1 commits that buffer as it
# fills, up to 1 GiB by default, and DumpLab fills it fast (every CPU switch and every change of
# exits drops translations, which are then made again): an unbounded LPAR grew ~10 MB/s. A full
# buffer is flushed and refilled, so a small one only costs retranslation (UNICORN_NOTES.md §11,
# measured in bench/bench_lpar_memory.py).
TCG_BUFFER_SIZE = 32 << 20


def new_engine(tcg_buffer_size: int | None = None) -> Uc:
    """A fresh s390x engine with the default CPU model (other models can abort on KIMD), its
    translation buffer capped (the cap must be set before the engine first runs)."""
    uc = Uc(UC_ARCH_S390X, UC_MODE_BIG_ENDIAN)
    uc.ctl_set_tcg_buffer_size(tcg_buffer_size or TCG_BUFFER_SIZE)
    return uc


def flush_tlb(uc: Uc) -> None:
    """Drop translations; needed after every context switch or the old prefix stays mapped."""
    uc.ctl(UC_CTL_TLB_FLUSH, UC_CTL_IO_WRITE)


def context_address(ctx) -> int:
    return ctypes.cast(ctx._context, ctypes.c_void_p).value


@functools.cache
def _control_register_offset() -> int:
    uc = new_engine()
    uc.reg_write(UC_S390X_REG_CR0, 0x1122334455667788)
    uc.reg_write(UC_S390X_REG_CR1, 0x99AABBCCDDEEFF01)
    ctx = uc.context_save()
    raw = ctypes.string_at(context_address(ctx), ctx._size)
    offset = raw.find(struct.pack("<QQ", 0x1122334455667788, 0x99AABBCCDDEEFF01))
    if offset < 0:
        raise EngineError("control registers not found in the unicorn CPU context")
    return offset


class RawFields:
    """Reads and writes the CPU-state fields that have no unicorn register constant."""

    def __init__(self) -> None:
        self.cr0 = _control_register_offset()

    def _u(self, ctx, delta: int, fmt: str) -> int:
        address = context_address(ctx) + self.cr0 + delta
        return struct.unpack(fmt, ctypes.string_at(address, struct.calcsize(fmt)))[0]

    def prefix(self, ctx) -> int:
        return self._u(ctx, _PREFIX_FROM_CR0, "<Q")

    def set_prefix(self, ctx, value: int) -> None:
        ctypes.memmove(context_address(ctx) + self.cr0 + _PREFIX_FROM_CR0, struct.pack("<Q", value), 8)

    def program_interruption(self, ctx) -> tuple[int, int]:
        """(code, instruction length in bytes) of the last program check."""
        return self._u(ctx, _PGM_CODE_FROM_CR0, "<I"), self._u(ctx, _PGM_ILEN_FROM_CR0, "<I")

    def svc_code(self, ctx) -> int:
        return self._u(ctx, _SVC_CODE_FROM_CR0, "<I")


@functools.cache
def raw_fields() -> RawFields:
    """The raw-field accessor, proven once per process by running real instructions."""
    fields = RawFields()
    _self_test(fields)
    return fields


def _self_test(fields: RawFields) -> None:
    # spx 0x100(0); svc 5; j . -- prefix must read back 0x4000 and the SVC code 5.
    code = bytes.fromhex("b2100100" "0a05" "a7f40000")
    uc = new_engine()
    uc.mem_map(0, 0x10000, UC_PROT_ALL)
    uc.mem_write(0x100, struct.pack(">I", 0x4000))
    uc.mem_write(0x8000, code)
    uc.reg_write(UC_S390X_REG_PSWM, PSW_MASK_64BIT)
    seen: dict[str, int] = {}

    def on_interrupt(uc: Uc, intno: int, _data) -> None:
        ctx = uc.context_save()
        seen["intno"] = intno
        seen["svc"] = fields.svc_code(ctx)
        seen["prefix"] = fields.prefix(ctx)
        uc.reg_write(UC_S390X_REG_PC, uc.reg_read(UC_S390X_REG_PC) + 2)
        uc.emu_stop()

    uc.hook_add(UC_HOOK_INTR, on_interrupt)
    try:
        uc.emu_start(0x8000, 0x800A, count=3)
    except UcError as exc:  # pragma: no cover - only on a broken unicorn
        raise EngineError(f"unicorn self-test failed to run: {exc}") from exc
    if seen != {"intno": 2, "svc": 5, "prefix": 0x4000}:
        raise EngineError(
            f"unicorn CPU-state layout differs from unicorn 2.1.4 (self-test saw {seen}); "
            "install unicorn==2.1.4"
        )


