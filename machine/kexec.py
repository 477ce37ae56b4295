"""The user-space half of `kexec -p`, played by the host: lay out the crash image (kdump
kernel, initrd, purgatory, pre-allocated ELF core header), compute the SHA-256 digests that
go into the purgatory, and hand the segments to the guest kernel, which copies them into the
crashkernel region (its system-call half; assets/src/kernel/kexec.c).

The layout follows kexec-tools for s390 (S390_FACTS.md §3.2) and assets/src/common/kexec.h.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field

from machine.formats.notes import CPU_NOTES_SIZE, prpsinfo_note
from machine.images import Image, image_hook_addresses, load_image
from machine.paths import program_path

PURGATORY_OFFSET = 0x2000
PURGATORY_MAX = 0xE000
KDUMP_IMAGE_OFFSET = 0x10000
ELFCOREHDR_OFFSET = 0x100000
INITRD_OFFSET = 0x800000
KDUMP_ENTRY = 0x10010
COMMAND_LINE_OFFSET = 0x480  # in the kdump image: absolute 0x10480
OLDMEM_BASE_OFFSET = 0x418  # in the kdump image's parm area: absolute 0x10418, 0x10420
MOVER_ADDRESS = 0x4000  # where the kdump kernel's head copies its data mover
COMMAND_LINE_SIZE = 896
PURGATORY_MAGIC = 0x5055524741544F52
MAX_REGIONS = 16
MAX_SEGMENTS = 8
PAGE = 4096
MIN_CRASHKERNEL = 16 << 20

# Guest-visible structures (kexec.h).
_PURGATORY_INFO = struct.Struct(">10Q")
_SHA_REGION = struct.Struct(">QQ32s")
_DESCRIPTORS_HEADER = struct.Struct(">4Q")
_SEGMENT = struct.Struct(">4Q")

# ELF core header.
_EHDR = struct.Struct(">16sHHIQQQIHHHHHH")
_PHDR = struct.Struct(">IIQQQQQQ")
PT_LOAD, PT_NOTE = 1, 4
NOTES_AREA_OFFSET = 0x1000  # page aligned, after the program headers
VMCOREINFO_ROOM = 4096 + 24


class KexecError(ValueError):
    """The crash image cannot be built; the message says why."""


@dataclass(frozen=True)
class Segment:
    """One kexec segment: bytes for [mem, mem + memsz), zero filled past the data."""

    name: str
    mem: int
    data: bytes
    memsz: int
    hashed: bool

    @property
    def padded(self) -> bytes:
        return self.data + bytes(self.memsz - len(self.data))


@dataclass(frozen=True)
class CrashImage:
    """Everything the host knows about a loaded crash image."""

    crash_base: int
    crash_size: int
    segments: tuple[Segment, ...]
    entry: int
    purgatory: Image
    kdump: Image
    purgatory_checked_size: int
    elfcorehdr: int
    notes_offset: int
    notes_room: int
    hashed: tuple[Segment, ...] = field(default=())

    def segment(self, name: str) -> Segment:
        return next(s for s in self.segments if s.name == name)

    def unused_purgatory_byte(self) -> int:
        """A byte of the purgatory its checksum covers but that nothing reads: in the last,
        unused slot of the digest table. Flipping it fails the checksum and nothing else."""
        info = self.segment("purgatory").mem + self.purgatory.symbols["purgatory_info"]
        return info + _PURGATORY_INFO.size + (MAX_REGIONS - 1) * _SHA_REGION.size + 20

    def purgatory_intercepts(self) -> list[int]:
        """Addresses of the purgatory's emulated instructions where it was placed."""
        base = self.segment("purgatory").mem
        return [base + address for address in image_hook_addresses(self.purgatory)]

    def unswapped_kdump_intercepts(self) -> list[int]:
        """The kdump kernel's emulated instructions while it runs where kexec put it (memory
        not yet swapped), and its data mover's at 0x4000 (assets/src/kdump/head.S)."""
        return unswapped_kdump_intercepts(self.kdump, self.crash_base)


def unswapped_kdump_intercepts(kdump: Image, crash_base: int) -> list[int]:
    """Emulated instructions of the kdump kernel placed at crash_base + its link address,
    and of its data mover copied to 0x4000."""
    mover, mover_end = kdump.symbols["swap_mover"], kdump.symbols["swap_mover_end"]
    addresses = image_hook_addresses(kdump)
    moved = [MOVER_ADDRESS + a - mover for a in addresses if mover <= a < mover_end]
    return [crash_base + a for a in addresses] + moved


def flatten(image: Image, base: int) -> tuple[bytes, int]:
    """The image's loadable bytes from base (data, and the size including .bss)."""
    end_data = max(s.address + len(s.data) for s in image.segments)
    end_mem = max(s.address + s.memsize for s in image.segments)
    flat = bytearray(end_data - base)
    for s in image.segments:
        flat[s.address - base:s.address - base + len(s.data)] = s.data
    return bytes(flat), end_mem - base


@dataclass(frozen=True)
class KdumpSettings:
    """What the kdump kernel's command line tells it (the capture configuration)."""

    dump_level: int = 1
    reipl: bool = True  # re-IPL the production system after saving
    failure_action: str = "reboot"  # when the save fails (kdump-tools' FAILURE_ACTION)
    dump_devno: int = 0x0200  # the stand-alone dump device, for failure_action dump


def kdump_command_line(settings: KdumpSettings) -> str:
    return (f"elfcorehdr=0x{ELFCOREHDR_OFFSET:x} maxcpus=1 dump_level={settings.dump_level} "
            f"reipl={int(settings.reipl)} failure_action={settings.failure_action} "
            f"dump_devno=0x{settings.dump_devno:04x}")


def build_kdump_segment(crash_base: int, crash_size: int, settings: KdumpSettings) -> tuple[Segment, Image]:
    """The kdump kernel as kexec-tools loads it: its command line, and OLDMEM_BASE/SIZE in its
    parm area (its head reads them to swap memory)."""
    kdump = load_image(program_path("kdump"))
    data, memsz = flatten(kdump, KDUMP_IMAGE_OFFSET)
    line = kdump_command_line(settings).encode().ljust(COMMAND_LINE_SIZE, b"\0")
    data = data[:COMMAND_LINE_OFFSET] + line + data[COMMAND_LINE_OFFSET + COMMAND_LINE_SIZE:]
    oldmem = struct.pack(">QQ", crash_base, crash_size)
    data = data[:OLDMEM_BASE_OFFSET] + oldmem + data[OLDMEM_BASE_OFFSET + len(oldmem):]
    return Segment("kdump kernel", crash_base + KDUMP_IMAGE_OFFSET, data, _page(memsz), True), kdump


def build_initrd_segment(crash_base: int, dump_level: int) -> Segment:
    """An initrd-like payload: the capture configuration and recognisable filler."""
    text = (f"DUMPLAB INITRD 1\ntarget=/var/crash\ndump_level={dump_level}\n"
            "makedumpfile=-d 1 -E\n").encode()
    filler = b"".join(struct.pack(">Q", 0x494E495452440000 | i) for i in range(8192))
    data = (text.ljust(PAGE, b"\0") + filler)[: 64 * 1024]
    return Segment("initrd", crash_base + INITRD_OFFSET, data, len(data), True)


def build_elfcorehdr(crash_base: int, crash_size: int, memory_size: int, cpus: int) -> tuple[Segment, int, int]:
    """The pre-allocated ELF core header: PT_NOTE with PRPSINFO written and room for every
    CPU's notes and VMCOREINFO; PT_LOADs of old memory without the crashkernel region.
    Addresses inside are the kdump kernel's (after the swap the header is at 0x100000)."""
    loads = [(0, crash_base)]
    if crash_base + crash_size < memory_size:
        loads.append((crash_base + crash_size, memory_size))
    prpsinfo = prpsinfo_note()
    notes_room = cpus * CPU_NOTES_SIZE
    note_bytes = len(prpsinfo) + notes_room + VMCOREINFO_ROOM
    new_world_notes = ELFCOREHDR_OFFSET + NOTES_AREA_OFFSET
    header = bytearray(NOTES_AREA_OFFSET)
    ident = b"\x7fELF\x02\x02\x01".ljust(16, b"\0")
    _EHDR.pack_into(header, 0, ident, 4, 22, 1, 0, 64, 0, 0, 64, 56, 1 + len(loads), 0, 0, 0)
    _PHDR.pack_into(header, 64, PT_NOTE, 0, new_world_notes, 0, 0, len(prpsinfo), note_bytes, 0)
    for i, (start, end) in enumerate(loads):
        _PHDR.pack_into(header, 64 + 56 * (i + 1), PT_LOAD, 7, start, start, start,
                        end - start, end - start, PAGE)
    data = bytes(header) + prpsinfo
    memsz = _page(NOTES_AREA_OFFSET + note_bytes)
    segment = Segment("elfcorehdr", crash_base + ELFCOREHDR_OFFSET, data, memsz, True)
    return segment, NOTES_AREA_OFFSET + len(prpsinfo), notes_room


def build_purgatory_segment(crash_base: int, crash_size: int, hashed: list[Segment],
                            header: Segment, notes_offset: int, notes_room: int) -> tuple[Segment, Image, int]:
    """The purgatory with its data filled in (digests of every other segment), as kexec's
    update_purgatory does."""
    purgatory = load_image(program_path("purgatory"))
    data, memsz = flatten(purgatory, 0)
    if memsz > PURGATORY_MAX:
        raise KexecError(f"purgatory needs {memsz:#x} bytes, more than {PURGATORY_MAX:#x}")
    checked = purgatory.symbols["_edata"]
    info = bytearray(_PURGATORY_INFO.size + MAX_REGIONS * _SHA_REGION.size)
    _PURGATORY_INFO.pack_into(info, 0, PURGATORY_MAGIC, crash_base, crash_size, KDUMP_ENTRY,
                              header.mem, header.memsz, notes_offset, notes_room, checked, len(hashed))
    for i, segment in enumerate(hashed):
        _SHA_REGION.pack_into(info, _PURGATORY_INFO.size + i * _SHA_REGION.size, segment.mem,
                              segment.memsz, hashlib.sha256(segment.padded).digest())
    at = purgatory.symbols["purgatory_info"]
    data = data[:at] + bytes(info) + data[at + len(info):]
    segment = Segment("purgatory", crash_base + PURGATORY_OFFSET, data, _page(memsz), False)
    return segment, purgatory, checked


def build_crash_image(crash_base: int, crash_size: int, memory_size: int, cpus: int,
                      settings: KdumpSettings | None = None) -> CrashImage:
    """Lay out the whole crash image for a crashkernel region."""
    settings = settings or KdumpSettings()
    if crash_size < MIN_CRASHKERNEL or crash_base % (1 << 20) or crash_base + crash_size > memory_size:
        raise KexecError(f"crashkernel region {crash_base:#x}+{crash_size:#x} cannot hold a kdump kernel")
    kdump_segment, kdump = build_kdump_segment(crash_base, crash_size, settings)
    header, notes_offset, notes_room = build_elfcorehdr(crash_base, crash_size, memory_size, cpus)
    initrd = build_initrd_segment(crash_base, settings.dump_level)
    hashed = [kdump_segment, header, initrd]
    purgatory_segment, purgatory, checked = build_purgatory_segment(
        crash_base, crash_size, hashed, header, notes_offset, notes_room)
    segments = (purgatory_segment, *hashed)
    return CrashImage(crash_base, crash_size, segments, purgatory_segment.mem + purgatory.entry,
                      purgatory, kdump, checked, header.mem, notes_offset, notes_room, tuple(hashed))


def stage(image: CrashImage, staging_size: int) -> tuple[bytes, bytes]:
    """The staging buffer and the descriptor table the guest's kexec call reads."""
    buffer = bytearray()
    table = bytearray(_DESCRIPTORS_HEADER.size + MAX_SEGMENTS * _SEGMENT.size)
    _DESCRIPTORS_HEADER.pack_into(table, 0, len(image.segments), image.entry, 0,
                                  image.purgatory_checked_size)
    for i, segment in enumerate(image.segments):
        offset = len(buffer)
        buffer += segment.data + bytes(_page(len(segment.data)) - len(segment.data))
        _SEGMENT.pack_into(table, _DESCRIPTORS_HEADER.size + i * _SEGMENT.size, offset,
                           len(segment.data), segment.mem, segment.memsz)
    if len(buffer) > staging_size:
        raise KexecError(f"the crash image needs {len(buffer)} bytes of staging, the kernel gave {staging_size}")
    return bytes(buffer), bytes(table)


def _page(size: int) -> int:
    return -(-size // PAGE) * PAGE
