"""The store-status save area (512 bytes; absolute 0x1200 or a given address) and the CPU
status it holds. Layout: S390_FACTS.md §1.2.

Plain data: the dump formats read and write it without a CPU. Taking it from a running CPU is
machine.store_status's job."""

from __future__ import annotations

import struct
from dataclasses import dataclass

SAVE_AREA_ADDRESS = 0x1200
SAVE_AREA_SIZE = 512
AR_MODE_ID_ADDRESS = 0xA3

_FPRS = 0x000
_GPRS = 0x080
_PSW = 0x100
_PREFIX = 0x118
_FPC = 0x11C
_TODPR = 0x124
_CPU_TIMER = 0x128
_CLOCK_COMPARATOR = 0x130
_ARS = 0x140
_CRS = 0x180


@dataclass(frozen=True)
class CpuStatus:
    """Everything store status records about one CPU."""

    psw_mask: int
    psw_addr: int
    gprs: tuple[int, ...]
    crs: tuple[int, ...]
    ars: tuple[int, ...]
    fprs: tuple[int, ...]
    fpc: int
    prefix: int
    cpu_timer: int
    clock_comparator: int  # the full 64-bit comparator; the save area holds bits 0-55
    tod_programmable: int

    def pack(self) -> bytes:
        area = bytearray(SAVE_AREA_SIZE)
        struct.pack_into(">16Q", area, _FPRS, *self.fprs)
        struct.pack_into(">16Q", area, _GPRS, *self.gprs)
        struct.pack_into(">QQ", area, _PSW, self.psw_mask, self.psw_addr)
        struct.pack_into(">I", area, _PREFIX, self.prefix)
        struct.pack_into(">I", area, _FPC, self.fpc)
        struct.pack_into(">I", area, _TODPR, self.tod_programmable)
        struct.pack_into(">Q", area, _CPU_TIMER, self.cpu_timer & (1 << 64) - 1)
        struct.pack_into(">Q", area, _CLOCK_COMPARATOR, self.clock_comparator >> 8)
        struct.pack_into(">16I", area, _ARS, *self.ars)
        struct.pack_into(">16Q", area, _CRS, *self.crs)
        return bytes(area)

    def to_dict(self) -> dict[str, object]:
        """JSON-safe: tuples become lists."""
        return {name: list(value) if isinstance(value, tuple) else value
                for name, value in self.__dict__.items()}

    @classmethod
    def unpack(cls, area: bytes) -> CpuStatus:
        """Read a save area; the clock comparator comes back shifted left 8 (its low byte lost)."""
        return cls(
            psw_mask=struct.unpack_from(">Q", area, _PSW)[0],
            psw_addr=struct.unpack_from(">Q", area, _PSW + 8)[0],
            gprs=struct.unpack_from(">16Q", area, _GPRS),
            crs=struct.unpack_from(">16Q", area, _CRS),
            ars=struct.unpack_from(">16I", area, _ARS),
            fprs=struct.unpack_from(">16Q", area, _FPRS),
            fpc=struct.unpack_from(">I", area, _FPC)[0],
            prefix=struct.unpack_from(">I", area, _PREFIX)[0],
            cpu_timer=struct.unpack_from(">Q", area, _CPU_TIMER)[0],
            clock_comparator=struct.unpack_from(">Q", area, _CLOCK_COMPARATOR)[0] << 8,
            tod_programmable=struct.unpack_from(">I", area, _TODPR)[0],
        )
