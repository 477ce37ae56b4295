"""The shipped stand-alone kdump (path D, `zipl -d DEVNO -k auto`; S390_FACTS.md §0.3, §4.1):
preparing a dump device that carries the kdump kernel and its boot loader, and following the
loader's steps on the host (each os_info check recomputed here).

The device: block 0 the boot record, the loader's ELF from block 1 (machine/devices.py), the
kdump kernel's descriptor in block 128 and its image (from 0x10000, Linux layout, its
command line filled in) from block 129. The loader (assets/src/zipl_kdump) checks os_info only,
copies [0, crash_size) to crash_base, loads the kernel at 0x10000, sets OLDMEM_BASE/SIZE and
enters 0x10010; the kdump kernel, started without elfcorehdr=, builds its own ELF core header.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from machine import kexec
from machine.devices import BLOCK_SIZE, Device, DeviceError
from machine.events import CheckEvent, StageEvent
from machine.images import load_image
from machine.osinfo_checks import (
    OS_INFO_POINTER,
    os_info_page,
    recompute_os_info_check,
)
from machine.paths import program_path

if TYPE_CHECKING:
    from machine.cpu import Cpu
    from machine.lpar import Lpar

LOADER = "zipl_kdump"
DESCRIPTOR_BLOCK = 128
DESCRIPTOR_MAGIC = 0x444C4B44554D5031  # "DLKDUMP1"
_DESCRIPTOR = struct.Struct(">4Q")

CHECKS = {1: "os_info pointer", 2: "os_info magic", 3: "os_info checksum", 4: "os_info version",
          5: "crashkernel", 6: "kdump kernel on the device"}
WAIT_CODES = {
    0x4520: "EOS_INFO_MISSING: no os_info found",
    0x4521: "EOS_INFO_CSUM_FAILED: os_info checksum incorrect",
    0x4522: "EOS_INFO_VERSION: os_info major version too high",
    0x4523: "EOS_INFO_NOCRASHKERNEL: no crashkernel memory defined (kdump not loaded)",
    0x4524: "EHSA_COPY_FAILED: the kdump kernel could not be loaded",
}
# What each failed check ends in (the loader's order: the first failure stops it).
CHECK_CODES = {1: 0x4520, 2: 0x4520, 3: 0x4521, 4: 0x4522, 5: 0x4523, 6: 0x4524}
KERNEL_CHECK = 6


def standalone_command_line(settings: kexec.KdumpSettings) -> str:
    """The kdump kernel's command line on the device: no elfcorehdr= (nobody prepared one;
    the kernel builds its own header), the capture settings as with kexec."""
    words = kexec.kdump_command_line(settings).split()
    return " ".join(w for w in words if not w.startswith("elfcorehdr="))


def kdump_device_image(settings: kexec.KdumpSettings | None = None) -> tuple[bytes, int]:
    """The kdump kernel as the device carries it: bytes from 0x10000 with the stand-alone
    command line, and the memory it needs (.bss included)."""
    kdump = load_image(program_path("kdump"))
    data, memsz = kexec.flatten(kdump, kexec.KDUMP_IMAGE_OFFSET)
    line = standalone_command_line(settings or kexec.KdumpSettings()).encode()
    line = line.ljust(kexec.COMMAND_LINE_SIZE, b"\0")
    at = kexec.COMMAND_LINE_OFFSET
    return data[:at] + line + data[at + len(line):], memsz


def prepare_kdump_device(device: Device, settings: kexec.KdumpSettings | None = None) -> None:
    """Write the loader's boot record and program, the kdump kernel's descriptor and image
    (`zipl -d DEVNO -k auto`). DeviceError if the device cannot hold them."""
    loader = program_path(LOADER).read_bytes()
    if 1 + -(-len(loader) // BLOCK_SIZE) > DESCRIPTOR_BLOCK:
        raise DeviceError(f"the stand-alone kdump loader ({len(loader)} bytes) does not fit "
                          f"before block {DESCRIPTOR_BLOCK}")
    image, memsz = kdump_device_image(settings)
    blocks = -(-len(image) // BLOCK_SIZE)
    if DESCRIPTOR_BLOCK + 1 + blocks > device.blocks:
        raise DeviceError(f"device {device.devno:04x} is too small for the stand-alone kdump")
    device.install_boot_program(LOADER, loader, dump_program=True)
    descriptor = _DESCRIPTOR.pack(DESCRIPTOR_MAGIC, DESCRIPTOR_BLOCK + 1, len(image), memsz)
    device.write_blocks(DESCRIPTOR_BLOCK, descriptor.ljust(BLOCK_SIZE, b"\0"))
    device.write_blocks(DESCRIPTOR_BLOCK + 1, image.ljust(blocks * BLOCK_SIZE, b"\0"))
    device.flush()


def describe_code(code: int) -> str:
    return WAIT_CODES.get(code, f"code {code:#06x}")


# --- following the loader (trace ids 36-39, machine/traces.py) -------------------------------

def _stage(lpar: Lpar, cpu: Cpu, stage: str, status: str, detail: str = "") -> None:
    lpar.publish(StageEvent(t=lpar.clock.now, cpu=cpu.address, stage=stage, status=status, detail=detail))


def started(lpar: Lpar, cpu: Cpu, args: tuple[int, ...]) -> None:
    devno, memory, cpus = args[0], args[1], args[2]
    _stage(lpar, cpu, "dumper", "running",
           f"stand-alone kdump from {devno:04x}: {memory >> 20} MB, {cpus} CPUs")
    _stage(lpar, cpu, "checks", "running", "os_info only (no purgatory, no SHA-256)")


def check(lpar: Lpar, cpu: Cpu, args: tuple[int, ...]) -> None:
    """A check of the loader, recomputed from memory as it is now."""
    kind, guest_ok, value = args[0], bool(args[1]), args[2]
    expected, computed, ok = recompute(lpar, kind)
    what = CHECKS.get(kind, f"check {kind}")
    lpar.publish(CheckEvent(t=lpar.clock.now, cpu=cpu.address, what=what, expected=expected,
                            computed=computed, ok=ok, guest_ok=guest_ok, guest_computed=f"{value:#x}"))
    if not guest_ok:
        code = CHECK_CODES.get(kind, 0)
        if kind != KERNEL_CHECK:  # the os_info checks are done when the kernel is read
            _stage(lpar, cpu, "checks", "failed", f"{what} failed: {describe_code(code)}")
        _stage(lpar, cpu, "dumper", "failed", f"Dump failed: disabled wait {code:#06x}")
    elif kind == 5:
        _stage(lpar, cpu, "checks", "done", "os_info valid, crashkernel defined")


def recompute(lpar: Lpar, kind: int) -> tuple[str, str, bool]:
    """(expected, computed, ok) of one check. The loader has not written to the lowcore's
    0xE18 nor to os_info when it checks them, so storage shows what it read."""
    if kind == KERNEL_CHECK:
        return _recompute_kernel(lpar)
    if kind <= 4:
        return recompute_os_info_check(lpar.storage, kind)
    _address, page = os_info_page(lpar.storage)
    if page is None:
        return "os_info", "missing", False
    base, size = struct.unpack_from(">QQ", page, 0x10)
    return "crashkernel defined", f"{base:#x}+{size:#x}", base != 0 and size != 0


def _recompute_kernel(lpar: Lpar) -> tuple[str, str, bool]:
    """The kernel image on the IPL device: its descriptor valid and the image within the
    crashkernel size the loader found (what the loader read into 0x10000)."""
    device = lpar.devices.get(lpar.ipl_devno)
    try:
        magic, _, size, memsz = _DESCRIPTOR.unpack_from(device.read_blocks(DESCRIPTOR_BLOCK, 1))
    except (AttributeError, DeviceError):
        return "a kdump kernel", "no device", False
    os_info = lpar.storage.u64(OS_INFO_POINTER)
    crash_size = lpar.storage.u64(os_info + 0x18) if os_info and os_info + 0x20 <= lpar.storage.size else 0
    ok = magic == DESCRIPTOR_MAGIC and 0 < size <= memsz and kexec.KDUMP_IMAGE_OFFSET + memsz <= crash_size
    shown = f"{size} bytes" if magic == DESCRIPTOR_MAGIC else "no descriptor"
    return f"a kdump kernel in block {DESCRIPTOR_BLOCK}", shown, ok


def copied(lpar: Lpar, cpu: Cpu, args: tuple[int, ...]) -> None:
    base, size = args[0], args[1]
    _stage(lpar, cpu, "oldmem-copy", "done", f"[0, {size:#x}) -> [{base:#x}, {base + size:#x})")


def enter(lpar: Lpar, cpu: Cpu, args: tuple[int, ...]) -> None:
    """The loader enters the kdump kernel it loaded at its link address: the host emulates
    the kernel's instructions from now on."""
    entry, base, size = args[0], args[1], args[2]
    lpar.enter_program(load_image(program_path("kdump")))
    _stage(lpar, cpu, "dumper", "done", f"OLDMEM_BASE={base:#x} OLDMEM_SIZE={size:#x}")
    _stage(lpar, cpu, "kdump-boot", "running", f"entering the kdump kernel at {entry:#x}")
