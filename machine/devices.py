"""Block devices of the LPAR, each backed by a file in the work directory.

A device that can be IPL'd carries a boot record in its first block (what `zipl` writes on a
real disk): the program's name and where its ELF image lies on the device. Reading the ELF from
the device is our stand-in for the channel program the IPL runs.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

from machine.userfiles import check_output_target

BLOCK_SIZE = 4096
BOOT_RECORD_MAGIC = b"DLIPLREC"
_BOOT_RECORD = struct.Struct(">8sII32sQQ")
BOOT_FLAG_DUMP_PROGRAM = 1


class DeviceError(ValueError):
    """A device operation that cannot be carried out; the message says why."""


@dataclass(frozen=True)
class BootProgram:
    name: str
    elf: bytes
    is_dump_program: bool


class Device:
    """A DASD-like block device: fixed size, 4 KiB blocks, a sparse file on the host."""

    def __init__(self, devno: int, kind: str, path: Path, size: int) -> None:
        self.devno = devno
        self.kind = kind
        self.path = path
        self.size = size
        # Told (block, count) before every write: the checkpoints keep what is overwritten.
        self.before_write = None
        self._open()

    def _open(self) -> None:
        # The image must be ours: a symlink, a device or a FIFO planted under its name
        # would have the dump written somewhere the user did not choose.
        check_output_target(self.path)
        existing = self.path.stat().st_size if self.path.exists() else None
        if existing != self.size:
            with open(self.path, "wb") as f:
                f.truncate(self.size)

    @property
    def blocks(self) -> int:
        return self.size // BLOCK_SIZE

    @property
    def label(self) -> str:
        return f"{self.devno:04x} {'boot disk' if self.kind == 'disk' else 'dump device'}"

    def _check_range(self, block: int, count: int) -> None:
        if block < 0 or count < 0 or block + count > self.blocks:
            raise DeviceError(
                f"device {self.devno:04x}: blocks {block}+{count} are beyond its {self.blocks} blocks"
            )

    def read_blocks(self, block: int, count: int) -> bytes:
        self._check_range(block, count)
        with open(self.path, "rb") as f:
            f.seek(block * BLOCK_SIZE)
            data = f.read(count * BLOCK_SIZE)
        return data.ljust(count * BLOCK_SIZE, b"\0")

    def write_blocks(self, block: int, data: bytes | memoryview) -> None:
        if len(data) % BLOCK_SIZE:
            raise DeviceError(f"device {self.devno:04x}: writes must be whole 4 KiB blocks")
        self._check_range(block, len(data) // BLOCK_SIZE)
        if self.before_write is not None:
            self.before_write(block, len(data) // BLOCK_SIZE)
        self.write_raw(block, data)

    def write_raw(self, block: int, data: bytes | memoryview) -> None:
        """Write whole blocks without telling anyone (a checkpoint being restored)."""
        with open(self.path, "r+b") as f:
            f.seek(block * BLOCK_SIZE)
            f.write(data)

    def flush(self) -> None:
        """Make everything written so far durable (the end of a dump, a boot record)."""
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def install_boot_program(self, name: str, elf: bytes, dump_program: bool = False) -> None:
        """Write the boot record and the program (the zipl role)."""
        blocks = -(-len(elf) // BLOCK_SIZE)
        if 1 + blocks > self.blocks:
            raise DeviceError(f"device {self.devno:04x} is too small for {name}")
        flags = BOOT_FLAG_DUMP_PROGRAM if dump_program else 0
        record = _BOOT_RECORD.pack(BOOT_RECORD_MAGIC, 1, flags, name.encode()[:32], BLOCK_SIZE, len(elf))
        self.write_blocks(0, record.ljust(BLOCK_SIZE, b"\0"))
        self.write_blocks(1, elf.ljust(blocks * BLOCK_SIZE, b"\0"))
        self.flush()

    def boot_program(self) -> BootProgram:
        """The program the boot record names; DeviceError if there is none."""
        magic, version, flags, name, offset, length = _BOOT_RECORD.unpack_from(self.read_blocks(0, 1))
        if magic != BOOT_RECORD_MAGIC or version != 1:
            raise DeviceError(f"device {self.devno:04x} holds no boot program (no boot record in block 0)")
        if offset % BLOCK_SIZE or offset + length > self.size or not length:
            raise DeviceError(f"device {self.devno:04x}: boot record points outside the device")
        elf = self.read_blocks(offset // BLOCK_SIZE, -(-length // BLOCK_SIZE))[:length]
        return BootProgram(name.rstrip(b"\0").decode(errors="replace"), elf,
                           bool(flags & BOOT_FLAG_DUMP_PROGRAM))
