"""Block devices of the LPAR, each backed by a file in the work directory.

A device that can be IPL'd carries a boot record in its first block (what `zipl` writes on a
real disk): the program's name and where its ELF image lies on the device. Reading the ELF from
the device is our stand-in for the channel program the IPL runs.

Images stay sparse: all-zero blocks are never written (a range that held data is punched
back into a hole), so a full dump of a mostly idle LPAR costs its data on the host's disk, and
whoever reads the image back (the copy off the device, the checkpoints) skips the holes.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from machine.storage import nonzero_page_runs
from machine.userfiles import check_output_target

BLOCK_SIZE = 4096
# Reads of an image's data go in pieces of this size (memory stays bounded for any device).
READ_PIECE = 16 << 20
FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
_ZERO_PIECE = bytes(READ_PIECE)
_libc = ctypes.CDLL(None, use_errno=True)
_libc.fallocate.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64)
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

    def write_blocks(self, block: int, data: bytes | memoryview,
                     nonzero: Sequence[tuple[int, int]] | None = None) -> None:
        """Write whole blocks. `nonzero`, if the caller knows it (the storage scan), lists
        the [a, b) byte ranges of data that are not all zeros; the rest is zeros."""
        if len(data) % BLOCK_SIZE:
            raise DeviceError(f"device {self.devno:04x}: writes must be whole 4 KiB blocks")
        self._check_range(block, len(data) // BLOCK_SIZE)
        if self.before_write is not None:
            self.before_write(block, len(data) // BLOCK_SIZE)
        self.write_raw(block, data, nonzero)

    def write_raw(self, block: int, data: bytes | memoryview,
                  nonzero: Sequence[tuple[int, int]] | None = None) -> None:
        """Write whole blocks without telling anyone (a checkpoint being restored): the
        non-zero pages as data, the zero ones as holes."""
        view = memoryview(data).cast("B")
        if nonzero is None:
            nonzero = nonzero_page_runs(view.obj if _whole(view) else bytes(view), 0, len(view))
        offset = block * BLOCK_SIZE
        fd = os.open(self.path, os.O_RDWR)
        try:
            position = 0
            for start, end in [*nonzero, (len(view), len(view))]:
                if start > position:
                    _make_zero(fd, offset + position, start - position)
                _pwrite_all(fd, view[start:end], offset + start)
                position = end
        finally:
            os.close(fd)

    def data_blocks(self, block: int, count: int) -> dict[int, bytes]:
        """The blocks of [block, block + count) that hold a non-zero byte, with their bytes.
        Holes are not read; memory stays bounded by READ_PIECE whatever the range."""
        self._check_range(block, count)
        found: dict[int, bytes] = {}
        fd = os.open(self.path, os.O_RDONLY)
        try:
            start, end = block * BLOCK_SIZE, (block + count) * BLOCK_SIZE
            for low, high in data_extents(fd, start, end):
                for at in range(low, high, READ_PIECE):
                    piece = _pread_all(fd, min(READ_PIECE, high - at), at)
                    for a, b in nonzero_page_runs(piece, 0, len(piece)):
                        for page in range(a, b, BLOCK_SIZE):
                            found[(at + page) // BLOCK_SIZE] = piece[page:page + BLOCK_SIZE]
        finally:
            os.close(fd)
        return found

    def flush(self) -> None:
        """Make everything written so far durable (the end of a dump, a boot record)."""
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fdatasync(fd)
        finally:
            os.close(fd)

    def data_extents(self, start: int, end: int) -> list[tuple[int, int]]:
        """The [a, b) byte ranges of [start, end) of the image that are not holes."""
        fd = os.open(self.path, os.O_RDONLY)
        try:
            return data_extents(fd, start, end)
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


def data_extents(fd: int, start: int, end: int) -> list[tuple[int, int]]:
    """The [a, b) pieces of [start, end) of a file that hold data (SEEK_DATA/SEEK_HOLE); the
    whole range if the file system cannot say."""
    extents, position = [], start
    try:
        while position < end:
            try:
                data = os.lseek(fd, position, os.SEEK_DATA)
            except OSError as error:
                if error.errno == errno.ENXIO:  # nothing but hole up to the end of the file
                    break
                raise
            if data >= end:
                break
            hole = min(os.lseek(fd, data, os.SEEK_HOLE), end)
            extents.append((data, hole))
            position = hole
    except OSError:
        return [(start, end)] if start < end else []
    return extents


def _whole(view: memoryview) -> bool:
    """Whether the view spans its whole bytes object (find() can then run on that object)."""
    return isinstance(view.obj, (bytes, bytearray)) and len(view.obj) == view.nbytes


def _pwrite_all(fd: int, view: memoryview, offset: int) -> None:
    while len(view):
        done = os.pwrite(fd, view, offset)
        view, offset = view[done:], offset + done


def _pread_all(fd: int, length: int, offset: int) -> bytes:
    data = os.pread(fd, length, offset)
    if len(data) != length:  # a file shorter than the device: the rest reads as zeros
        data = data.ljust(length, b"\0")
    return data


def _make_zero(fd: int, offset: int, length: int) -> None:
    """Make [offset, offset + length) of the image read as zeros: nothing to do where it is
    a hole already, else punch a hole (or, where the file system cannot, write zeros)."""
    for low, high in data_extents(fd, offset, offset + length):
        if _libc.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, low, high - low) == 0:
            continue
        for at in range(low, high, READ_PIECE):
            _pwrite_all(fd, memoryview(_ZERO_PIECE)[:min(READ_PIECE, high - at)], at)
