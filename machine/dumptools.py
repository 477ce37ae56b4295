"""The host's half of the operator's dump tools (s390-tools' zipl -d and zgetdump).

The production kernel parses `zipl -d DEVNO` and `zgetdump ...` at the OS console and asks the
host, through HC_ZIPL_DUMP and HC_ZGETDUMP, for what needs the device: writing a dump tool onto
it, and reading a stand-alone dump off it. `dumplab zgetdump DEVICE-IMAGE OUT` does the same copy
from a device image on the host. Where a stand-alone dump lies on a device is the dumper's
choice (assets/src/dumper/dumper.c): an s390-format dump from 1 MiB on, header first, the
DUMP_END marker last.
"""

from __future__ import annotations

import os
import re
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from machine.devices import BLOCK_SIZE, Device, DeviceError
from machine.events import DumpWrittenEvent, ErrorEvent, StageEvent
from machine.formats.convert import convert
from machine.formats.s390dump import (
    END_MARKER_MAGIC,
    END_MARKER_SIZE,
    HEADER_SIZE,
    S390_MAGIC,
    S390Header,
)
from machine.sadump import DumperHost, DumpToolNotSupported, prepare_dump_device
from machine.userfiles import UserFileError, check_output_target, open_user_file

if TYPE_CHECKING:
    from machine.lpar import Lpar

DUMP_AREA_OFFSET = 256 * BLOCK_SIZE  # the dumper's DUMP_AREA_BLOCK
FORMATS = ("elf", "s390")

# What HC_ZIPL_DUMP answers about a device (assets/src/common/hypercall.h).
DUMPDEV_UNPREPARED, DUMPDEV_DUMPER, DUMPDEV_KDUMP = 0, 1, 2
DUMPDEV_HAS_DUMP = 0x100
ZIPL_QUERY, ZIPL_INSTALL_DUMPER, ZIPL_INSTALL_KDUMP = 0, 1, 2
ZGETDUMP_INFO, ZGETDUMP_COPY = 0, 1
ZGETDUMP_FORMATS = {0: "s390", 1: "elf"}

# Errors both hypercalls answer (-1 to -4 are the block I/O ones of machine/hypercalls.py).
ERR_NO_DEVICE = -1
ERR_IO = -3
ERR_NOT_SUPPORTED = -5
ERR_IN_USE = -6
ERR_TOO_SMALL = -7
ERR_NO_DUMP = -8
ERR_INCOMPLETE = -9
ERR_BAD_NAME = -10

# An output name at the OS console: a plain file name in the work directory's dumps/.
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}")
_DUMP_INFO = struct.Struct(">QQQQIIII")


class DumpToolError(ValueError):
    """A dump tool request that cannot be carried out; code is the hypercall's error."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class DumpOnDevice:
    """A complete stand-alone dump found on a device: where it lies and its header."""

    offset: int
    size: int
    header: S390Header
    end_tod: int

    @property
    def memory_size(self) -> int:
        return self.header.mem_size


def find_dump(source: BinaryIO, device_size: int, where: str) -> DumpOnDevice:
    """The dump the stand-alone dumper wrote on a device (its image open as `source`);
    DumpToolError if there is none or it has no end marker (the dumper did not finish)."""
    source.seek(DUMP_AREA_OFFSET)
    page = source.read(HEADER_SIZE)
    if len(page) < HEADER_SIZE or int.from_bytes(page[:8], "big") != S390_MAGIC:
        raise DumpToolError(f"no dump found on {where}", ERR_NO_DUMP)
    header = S390Header.unpack(page)
    if (header.hdr_size != HEADER_SIZE or not header.mem_size
            or header.mem_size % BLOCK_SIZE or header.mem_start):
        raise DumpToolError(f"no dump found on {where} (the dump header is not valid)", ERR_NO_DUMP)
    size = HEADER_SIZE + header.mem_size + END_MARKER_SIZE
    marker_at = DUMP_AREA_OFFSET + HEADER_SIZE + header.mem_size
    if DUMP_AREA_OFFSET + size > device_size:
        raise DumpToolError(f"the dump on {where} is incomplete (it ends past the end of the "
                            "device)", ERR_INCOMPLETE)
    source.seek(marker_at)
    marker = source.read(END_MARKER_SIZE)
    if len(marker) < END_MARKER_SIZE or marker[:8] != END_MARKER_MAGIC:
        raise DumpToolError(f"the dump on {where} is incomplete (no DUMP_END marker: the "
                            "dumper did not finish)", ERR_INCOMPLETE)
    return DumpOnDevice(DUMP_AREA_OFFSET, size, header, int.from_bytes(marker[8:], "big"))


@dataclass(frozen=True)
class DeviceImage:
    """A device image file on the host (`dumplab zgetdump`), read as the copy reads a device."""

    path: Path

    def flush(self) -> None:
        """Nothing to make durable: the image is only read."""


@dataclass(frozen=True)
class CopyResult:
    """What a zgetdump copy wrote."""

    path: Path
    format: str
    bytes: int
    seconds: float


def copy_dump(source: Device | DeviceImage, dump: DumpOnDevice, out: Path, out_format: str) -> CopyResult:
    """Write the dump on `source` to `out` (atomically): as it is on the device (s390), or
    converted to an ELF core (elf, through a temporary s390 copy beside `out`)."""
    if out_format not in FORMATS:
        raise ValueError(f"unknown format '{out_format}' (expected elf or s390)")
    check_output_target(out)
    if out_format == "s390":
        seconds = DumperHost._copy_off(source, dump.offset, dump.size, out)
        return CopyResult(out, "s390", dump.size, seconds)
    fd, name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".zgetdump.s390", dir=out.parent)
    os.close(fd)
    staged = Path(name)
    try:
        seconds = DumperHost._copy_off(source, dump.offset, dump.size, staged)
        result = convert(staged, out, "elf")
    finally:
        staged.unlink(missing_ok=True)
    return CopyResult(out, "elf", result.write.bytes_written, seconds + result.write.seconds)


def zgetdump_image(image: str | os.PathLike[str], out: str | os.PathLike[str],
                   out_format: str = "elf") -> CopyResult:
    """`dumplab zgetdump DEVICE-IMAGE OUT`: the dump on a device image into a file. Raises
    DumpToolError (no dump, incomplete), UserFileError (not a regular file) or OSError."""
    with open_user_file(image, "dump") as source:
        size = os.fstat(source.fileno()).st_size
        dump = find_dump(source, size, f"'{image}'")
    return copy_dump(DeviceImage(Path(image)), dump, Path(out), out_format)


class DumpTools:
    """zipl -d and zgetdump for one LPAR: what HC_ZIPL_DUMP and HC_ZGETDUMP do."""

    def __init__(self, lpar: Lpar) -> None:
        self.lpar = lpar

    def _stage(self, cpu: int, stage: str, status: str, detail: str) -> None:
        self.lpar.publish(StageEvent(t=self.lpar.clock.now, cpu=cpu, stage=stage, status=status,
                                     detail=detail))

    def _device(self, devno: int) -> Device:
        device = self.lpar.devices.get(devno)
        if device is None:
            raise DumpToolError(f"no device {devno:04x}", ERR_NO_DEVICE)
        return device

    # --- zipl -d ------------------------------------------------------------------------------
    def device_state(self, devno: int) -> int:
        """DUMPDEV_* of the device, with DUMPDEV_HAS_DUMP when a complete dump is on it."""
        device = self._device(devno)
        try:
            program = device.boot_program()
        except DeviceError:
            return DUMPDEV_UNPREPARED
        if not program.is_dump_program:
            return DUMPDEV_UNPREPARED
        state = DUMPDEV_DUMPER if program.name == "dumper" else DUMPDEV_KDUMP
        return state | (DUMPDEV_HAS_DUMP if self._dump_on(device) else 0)

    def _dump_on(self, device: Device) -> DumpOnDevice | None:
        try:
            with open(device.path, "rb") as source:
                return find_dump(source, device.size, f"device {device.devno:04x}")
        except DumpToolError:
            return None

    def install(self, cpu: int, devno: int, kind: str) -> int:
        """Put a dump tool on the device (kind "dumper", or "kdump" for -k auto)."""
        device = self._device(devno)
        if devno == self.lpar.ipl_devno or device.kind != "dump":
            raise DumpToolError(f"device {devno:04x} holds the running system", ERR_IN_USE)
        try:
            prepare_dump_device(device, kind=kind)
        except DumpToolNotSupported as exc:
            raise DumpToolError(str(exc), ERR_NOT_SUPPORTED) from None
        except DeviceError as exc:
            raise DumpToolError(str(exc), ERR_TOO_SMALL) from None
        what = "stand-alone dumper" if kind == "dumper" else "stand-alone kdump"
        self._stage(cpu, "zipl", "done", f"{what} installed on {devno:04x}")
        return 0

    # --- zgetdump -----------------------------------------------------------------------------
    def info(self, devno: int) -> bytes:
        """The struct dump_info zgetdump -i prints (hypercall.h)."""
        device = self._device(devno)
        dump = self._find(device)
        header = dump.header
        return _DUMP_INFO.pack(header.mem_size, header.tod, dump.end_tod, header.cpu_id,
                               header.version, header.cpu_cnt, header.real_cpu_cnt, 0)

    def _find(self, device: Device) -> DumpOnDevice:
        device.flush()
        with open(device.path, "rb") as source:
            return find_dump(source, device.size, f"device {device.devno:04x}")

    def copy(self, cpu: int, devno: int, name: str, out_format: str) -> int:
        """zgetdump DEVNO NAME -f FORMAT: the dump into the work directory's dumps/NAME; the
        bytes written."""
        device = self._device(devno)
        if not _PLAIN_NAME.fullmatch(name):
            raise DumpToolError(f"'{name}' is not a plain file name", ERR_BAD_NAME)
        dump = self._find(device)
        directory = self.lpar.workdir / "dumps"
        directory.mkdir(parents=True, exist_ok=True)
        self._stage(cpu, "zgetdump", "running", f"{devno:04x} -> {name} ({out_format})")
        try:
            result = copy_dump(device, dump, directory / name, out_format)
        except (OSError, ValueError) as exc:
            text = str(exc) if isinstance(exc, UserFileError | ValueError) else exc.strerror
            self.lpar.publish(ErrorEvent(t=self.lpar.clock.now, cpu=cpu,
                                         message=f"zgetdump: copying the dump off device {devno:04x} failed: {text}"))
            self._stage(cpu, "zgetdump", "failed", f"{name}: {text}")
            return ERR_IO
        self.lpar.publish(DumpWrittenEvent(t=self.lpar.clock.now, cpu=cpu, path=str(result.path),
                                           format=result.format, bytes=result.bytes,
                                           seconds=round(result.seconds, 3)))
        self._stage(cpu, "zgetdump", "done", f"{name}: {result.bytes} bytes ({result.format})")
        return result.bytes
