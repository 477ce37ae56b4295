"""The host's part in the stand-alone dump: preparing the dump device (the `zipl -d` role),
following the dumper's steps (each check recomputed here), and the copy of a full dump off the
device into a file, which machine/dumptools.py runs when the operator asks (`zgetdump`)."""

from __future__ import annotations

import errno
import hashlib
import os
import struct
import time
from pathlib import Path
from typing import TYPE_CHECKING

from machine.checksums import cksm
from machine.devices import Device, DeviceError, data_extents
from machine.events import CheckEvent, DumpProgressEvent, StageEvent
from machine.formats.common import atomic_output
from machine.osinfo_checks import (
    os_info_page,
    recompute_os_info_check,
)
from machine.paths import program_path
from machine.profile import DUMP_TOOLS
from machine.zipl_kdump import prepare_kdump_device

if TYPE_CHECKING:
    from machine.cpu import Cpu
    from machine.lpar import Lpar

PURGATORY_ENTRY = 3
COPY_CHUNK = 64 << 20

CHECKS = {
    1: "os_info pointer", 2: "os_info magic", 3: "os_info checksum", 4: "os_info version",
    5: "crashkernel", 6: "purgatory checksum", 7: "purgatory verify",
}
WAIT_CODES = {
    0x4502: "ESSCH: I/O error on the dump device",
    0x4520: "EOS_INFO_MISSING: no os_info found",
    0x4521: "EOS_INFO_CSUM_FAILED: os_info checksum incorrect",
    0x4522: "EOS_INFO_VERSION: os_info major version too high",
    0x4523: "EOS_INFO_NOCRASHKERNEL: no crashkernel memory defined (kdump not loaded)",
    0x4530: "purgatory checksum incorrect",
    0x4531: "a kdump segment failed the purgatory's SHA-256 check",
    0x4600: "EMEM: device too small for the dump",
}


class DumpToolNotSupported(DeviceError):
    """A kind of dump tool this machine cannot put on a device."""


def prepare_dump_device(device: Device, kind: str = "dumper") -> None:
    """Make the device a dump device: the stand-alone dumper's boot record and program
    (`zipl -d`, kind "dumper"), or the stand-alone kdump, a kdump kernel and its loader
    (`zipl -d -k auto`, kind "kdump", machine/zipl_kdump.py). DeviceError if it cannot."""
    if kind == "kdump":
        prepare_kdump_device(device)
    elif kind == "dumper":
        device.install_boot_program("dumper", program_path("dumper").read_bytes(), dump_program=True)
    else:
        raise DumpToolNotSupported(f"unknown dump tool '{kind}' (known: {', '.join(DUMP_TOOLS)})")


def describe_code(code: int) -> str:
    return WAIT_CODES.get(code, f"code {code:#06x}")


class DumperHost:
    """The stand-alone dumper as the host sees it, for one LPAR."""

    def __init__(self, lpar: Lpar) -> None:
        self.lpar = lpar
        self.dumps = 0

    def _stage(self, cpu: Cpu, stage: str, status: str, detail: str = "") -> None:
        self.lpar.publish(StageEvent(t=self.lpar.clock.now, cpu=cpu.address, stage=stage,
                                     status=status, detail=detail))

    def started(self, cpu: Cpu, args: tuple[int, ...]) -> None:
        devno, memory, cpus = args[0], args[1], args[2]
        self._stage(cpu, "dumper", "running",
                    f"dumper from {devno:04x}: {memory >> 20} MB, {cpus} CPUs")

    def cpu_status(self, cpu: Cpu, args: tuple[int, ...]) -> None:
        address, prefix, kept = args[0], args[1], args[2]
        detail = f"CPU {address}: " + {
            0: "no status stored",
            1: f"status at prefix {prefix:#x}",
            2: f"status stored, prefix {prefix:#x} is no lowcore of its own",
        }.get(kept, "?")
        self._stage(cpu, "cpu-status", "done" if kept == 1 else "failed", detail)

    # --- the checks, recomputed -----------------------------------------------------------------
    def check(self, cpu: Cpu, args: tuple[int, ...]) -> None:
        kind, guest_ok, value = args[0], bool(args[1]), args[2]
        expected, computed, ok = self._recompute(kind)
        what = CHECKS.get(kind, f"check {kind}")
        self.lpar.publish(CheckEvent(t=self.lpar.clock.now, cpu=cpu.address, what=what,
                                     expected=expected, computed=computed, ok=ok,
                                     guest_ok=guest_ok, guest_computed=f"{value:#x}"))
        if kind == 1:
            self._stage(cpu, "dumper", "done", "CPU status collected")
            self._stage(cpu, "checks", "running", "os_info and the kdump code")
        if not guest_ok:
            self._stage(cpu, "checks", "failed", f"{what} failed")
        elif kind == 7:
            self._stage(cpu, "checks", "done", "kdump can be trusted")

    def _recompute(self, kind: int) -> tuple[str, str, bool]:
        """(expected, computed, ok) of one check, from memory as it is now."""
        if kind <= 4:
            return recompute_os_info_check(self.lpar.storage, kind)
        _address, page = os_info_page(self.lpar.storage)
        if page is None:
            return "os_info", "missing", False
        if kind == 5:
            base, size = struct.unpack_from(">QQ", page, 0x10)
            return "crashkernel_addr != 0", f"{base:#x}+{size:#x}", base != 0
        if kind == 6:
            return self._recompute_purgatory(page)
        return self._recompute_segments()

    def _recompute_purgatory(self, page: bytes) -> tuple[str, str, bool]:
        addr, size, csum = struct.unpack_from(">QQI", page, 0x20 + 20 * PURGATORY_ENTRY)
        if not addr or not size or addr + size > self.lpar.storage.size:
            return f"{csum:08x}", "no purgatory entry", False
        computed = cksm(self.lpar.storage.read(addr, size))
        return f"{csum:08x}", f"{computed:08x}", computed == csum

    def _recompute_segments(self) -> tuple[str, str, bool]:
        image = self.lpar.kdump.image
        if image is None:
            return "good", "no kdump image known", False
        view = self.lpar.storage.view
        bad = [s.name for s in image.hashed
               if hashlib.sha256(view[s.mem:s.mem + s.memsz]).digest() != hashlib.sha256(s.padded).digest()]
        return "every segment digest matches", "bad: " + ", ".join(bad) if bad else "good", not bad

    # --- the decision and the full dump ------------------------------------------------------------
    def decision(self, cpu: Cpu, args: tuple[int, ...]) -> None:
        if args[0] == 1:
            self._stage(cpu, "kdump", "running", "dumper hands over to the purgatory (load mode)")
        else:
            self._stage(cpu, "full-dump", "running", f"fallback: {describe_code(args[1])}")

    def progress(self, cpu: Cpu, args: tuple[int, ...]) -> None:
        self.lpar.publish(DumpProgressEvent(t=self.lpar.clock.now, cpu=cpu.address, done=args[0],
                                            total=args[1]))

    def done(self, cpu: Cpu, args: tuple[int, ...]) -> None:
        """The dumper finished writing to the device. The dump stays there (a later dump
        overwrites it) until the operator copies it off with zgetdump."""
        first_block, size, code = args[0], args[1], args[2]
        if code != 0:
            self._stage(cpu, "full-dump", "failed", describe_code(code))
            return
        self.dumps += 1
        self._stage(cpu, "full-dump", "done",
                    f"on device {self.lpar.ipl_devno:04x}: {size} bytes at block {first_block}; "
                    "re-IPL and run zgetdump to copy it off")

    @staticmethod
    def _copy_off(device: Device, offset: int, size: int, path: Path) -> float:
        """Copy [offset, offset + size) of the device into path (atomically); the seconds."""
        device.flush()
        started = time.perf_counter()
        with open(device.path, "rb") as source, atomic_output(path) as target:
            # The device image is sparse (machine/devices.py): its data extents are the
            # dump's non-zero pages, copied by the kernel; its holes stay holes here.
            for start, end in _data_extents(source.fileno(), offset, offset + size):
                _copy_range(source.fileno(), target, start, end, start - offset)
            os.ftruncate(target, size)
        return time.perf_counter() - started


def _copy_range(source: int, target: int, start: int, end: int, to: int) -> None:
    """Copy [start, end) of source to offset `to` of target, in the kernel where it can."""
    at = start
    while at < end:
        try:
            done = os.copy_file_range(source, target, min(COPY_CHUNK, end - at), at, to + at - start)
        except OSError as error:
            if error.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
                raise
            done = 0
        if not done:  # no kernel copy here (or a short file): through user space
            chunk = os.pread(source, min(COPY_CHUNK, end - at), at)
            if not chunk:
                raise OSError(errno.EIO, "short read from the dump device")
            done = os.pwrite(target, chunk, to + at - start)
        at += done


def _data_extents(fd: int, start: int, end: int) -> list[tuple[int, int]]:
    """The [a, b) pieces of [start, end) of a file that hold data (SEEK_DATA/SEEK_HOLE); the
    whole range if the file system cannot say."""
    return data_extents(fd, start, end)
