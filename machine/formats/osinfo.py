"""Finding VMCOREINFO in a memory image the way the s390 kdump kernel does (`nt_vmcoreinfo`,
S390_FACTS.md §1.3, §2, §6.6): first os_info (absolute 0xE18 → page-aligned, checksummed
os_info) entry 0, which holds the VMCOREINFO *text* (the note's descriptor) with its checksum;
when that entry is empty (upstream Linux leaves it so) or bad, the lowcore field 0xE0C, which
points at the whole VMCOREINFO ELF note, header included."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from machine.checksums import cksm
from machine.formats.common import PAGE_SIZE, DumpFormatError, ReadFn
from machine.formats.notes import VMCOREINFO, parse_notes

LC_VMCORE_INFO = 0xE0C  # u64, unaligned: the VMCOREINFO note's address
LC_OS_INFO = 0xE18
OS_INFO_MAGIC = 0x4F53494E464F535A  # "OSINFOSZ"
OS_INFO_SIZE = 4096
OS_INFO_CSUM_START = 0x0C  # the checksum covers version_major .. the end of the page
OS_INFO_ENTRY0 = 0x20  # entry i at 0x20 + 20 * i: addr u64, size u64, csum u32
OS_INFO_VMCOREINFO = 0
MAX_VMCOREINFO = 1 << 20  # a VMCOREINFO larger than this is not believed
NOTE_HEADER = 24  # namesz, descsz, type, "VMCOREINFO\0" padded to 12

SOURCE_OS_INFO = "os_info entry 0"
SOURCE_LOWCORE = "lowcore 0xe0c"


@dataclass(frozen=True)
class OsInfoLookup:
    """The VMCOREINFO text and where it was found, or None and why not."""

    text: str | None
    problem: str | None = None
    address: int | None = None  # of os_info, when the pointer was usable
    source: str | None = None  # SOURCE_OS_INFO or SOURCE_LOWCORE when text was found

    def describe(self) -> str:
        """Where the text came from, or why there is none, for `inspect`."""
        if self.text is None:
            return self.problem or "not found"
        if self.source == SOURCE_OS_INFO:
            return f"os_info at {self.address:#x}, entry 0"
        return f"through the lowcore pointer {LC_VMCORE_INFO:#x}"


@dataclass(frozen=True)
class _Found:
    text: str | None
    problem: str | None = None


def find_vmcoreinfo(read: ReadFn, memory_size: int) -> OsInfoLookup:
    """VMCOREINFO in memory [0, memory_size): os_info entry 0, then the 0xE0C note."""
    if memory_size < LC_OS_INFO + 8:
        return OsInfoLookup(None, "memory too small for a lowcore")
    address, page, problem = _os_info_page(read, memory_size)
    entry = _entry0_text(read, memory_size, page) if page is not None else _Found(None, problem)
    if entry.text is not None:
        return OsInfoLookup(entry.text, None, address, SOURCE_OS_INFO)
    note = _lowcore_note_text(read, memory_size)
    if note.text is not None:
        return OsInfoLookup(note.text, None, address, SOURCE_LOWCORE)
    return OsInfoLookup(None, f"{entry.problem}; {note.problem}", address)


def _os_info_page(read: ReadFn, memory_size: int) -> tuple[int | None, bytes | None, str | None]:
    """(address, page, problem): the os_info page if it passes what the kdump kernel checks
    (page alignment, magic, checksum), else None and why not."""
    address = int.from_bytes(read(LC_OS_INFO, 8), "big")
    if address == 0 or address % PAGE_SIZE or address + OS_INFO_SIZE > memory_size:
        return None, None, f"no os_info (pointer at 0xe18 is {address:#x})"
    page = bytes(read(address, OS_INFO_SIZE))
    magic, csum = struct.unpack_from(">QI", page)
    if magic != OS_INFO_MAGIC:
        return address, None, f"no os_info at {address:#x} (bad magic {magic:#x})"
    if cksm(page[OS_INFO_CSUM_START:]) != csum:
        return address, None, f"os_info at {address:#x}: checksum mismatch"
    return address, page, None


def _entry0_text(read: ReadFn, memory_size: int, page: bytes) -> _Found:
    """Entry 0 of a valid os_info: the VMCOREINFO text, checksummed."""
    text_addr, size, csum = struct.unpack_from(">QQI", page, OS_INFO_ENTRY0 + 20 * OS_INFO_VMCOREINFO)
    if text_addr == 0 or size == 0:
        return _Found(None, "os_info entry 0 (VMCOREINFO) is not set")
    if size > MAX_VMCOREINFO or text_addr + size > memory_size:
        return _Found(None, f"os_info entry 0 ({text_addr:#x}+{size:#x}) is outside memory")
    text = bytes(read(text_addr, size))
    if cksm(text) != csum:
        return _Found(None, "os_info entry 0 (VMCOREINFO): checksum mismatch")
    return _Found(text.rstrip(b"\0").decode("utf-8", "replace"))


def _lowcore_note_text(read: ReadFn, memory_size: int) -> _Found:
    """The note the lowcore field 0xE0C points at: named VMCOREINFO, its text returned."""
    note_addr = int.from_bytes(read(LC_VMCORE_INFO, 8), "big")
    if note_addr == 0:
        return _Found(None, "no VMCOREINFO pointer at 0xe0c")
    if note_addr + NOTE_HEADER > memory_size:
        return _Found(None, f"the VMCOREINFO pointer at 0xe0c ({note_addr:#x}) is outside memory")
    _, descsz = struct.unpack(">II", bytes(read(note_addr, 8)))
    size = NOTE_HEADER + (descsz + 3 & ~3)
    if descsz > MAX_VMCOREINFO or note_addr + size > memory_size:
        return _Found(None, f"the note at {note_addr:#x} (0xe0c) runs outside memory")
    try:
        notes = parse_notes(bytes(read(note_addr, size)), note_addr)
    except DumpFormatError as error:
        return _Found(None, f"the note at {note_addr:#x} (0xe0c): {error}")
    if not notes or notes[0].name != VMCOREINFO:
        return _Found(None, f"the note at {note_addr:#x} (0xe0c) is not a VMCOREINFO note")
    return _Found(notes[0].desc.rstrip(b"\0").decode("utf-8", "replace"))
