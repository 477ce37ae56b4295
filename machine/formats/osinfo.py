"""Finding VMCOREINFO in a memory image through os_info (S390_FACTS.md §1.3, §2), the way a
dump tool does: absolute 0xE18 → page-aligned os_info → entry 0 → the VMCOREINFO ELF note."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from machine.checksums import cksm
from machine.formats.common import PAGE_SIZE, DumpFormatError, ReadFn
from machine.formats.notes import VMCOREINFO, parse_notes

LC_OS_INFO = 0xE18
OS_INFO_MAGIC = 0x4F53494E464F535A  # "OSINFOSZ"
OS_INFO_SIZE = 4096
OS_INFO_CSUM_START = 0x0C  # the checksum covers version_major .. the end of the page
OS_INFO_ENTRY0 = 0x20  # entry i at 0x20 + 20 * i: addr u64, size u64, csum u32
OS_INFO_VMCOREINFO = 0
OS_INFO_MAX_NOTE = 1 << 20  # a VMCOREINFO note larger than this is not believed


@dataclass(frozen=True)
class OsInfoLookup:
    """The VMCOREINFO text found through os_info, or None and why not."""

    text: str | None
    problem: str | None = None
    address: int | None = None  # of os_info, when the pointer was usable


def find_vmcoreinfo(read: ReadFn, memory_size: int) -> OsInfoLookup:
    """Follow os_info to the VMCOREINFO note in memory [0, memory_size), checking what the
    kdump kernel checks: page alignment, magic, os_info checksum, then entry 0's checksum."""
    if memory_size < LC_OS_INFO + 8:
        return OsInfoLookup(None, "memory too small for a lowcore")
    address = int.from_bytes(read(LC_OS_INFO, 8), "big")
    if address == 0 or address % PAGE_SIZE or address + OS_INFO_SIZE > memory_size:
        return OsInfoLookup(None, f"no os_info (pointer at 0xe18 is {address:#x})")
    page = bytes(read(address, OS_INFO_SIZE))
    magic, csum = struct.unpack_from(">QI", page)
    if magic != OS_INFO_MAGIC:
        return OsInfoLookup(None, f"no os_info at {address:#x} (bad magic {magic:#x})", address)
    if cksm(page[OS_INFO_CSUM_START:]) != csum:
        return OsInfoLookup(None, f"os_info at {address:#x}: checksum mismatch", address)
    return _vmcoreinfo_entry(read, memory_size, page, address)


def _vmcoreinfo_entry(read: ReadFn, memory_size: int, page: bytes,
                      address: int) -> OsInfoLookup:
    entry = OS_INFO_ENTRY0 + 20 * OS_INFO_VMCOREINFO
    note_addr, size, csum = struct.unpack_from(">QQI", page, entry)
    if note_addr == 0 or size == 0:
        return OsInfoLookup(None, "os_info entry 0 (VMCOREINFO) is not set", address)
    if size > OS_INFO_MAX_NOTE or note_addr + size > memory_size:
        return OsInfoLookup(None, f"os_info entry 0 ({note_addr:#x}+{size:#x}) is outside "
                            "memory", address)
    note = bytes(read(note_addr, size))
    if cksm(note) != csum:
        return OsInfoLookup(None, "os_info entry 0 (VMCOREINFO): checksum mismatch", address)
    try:
        notes = parse_notes(note, note_addr)
    except DumpFormatError as error:
        return OsInfoLookup(None, f"os_info entry 0: {error}", address)
    if not notes or notes[0].name != VMCOREINFO:
        return OsInfoLookup(None, "os_info entry 0 is not a VMCOREINFO note", address)
    return OsInfoLookup(notes[0].desc.rstrip(b"\0").decode("utf-8", "replace"), None, address)
