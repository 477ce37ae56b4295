"""The os_info checks both stand-alone dump tools make (the 2011 dumper and the shipped
stand-alone kdump loader), recomputed by the host from storage as it is: what the guest read."""

from __future__ import annotations

import struct

from machine.checksums import cksm

OS_INFO_POINTER = 0xE18
OS_INFO_MAGIC = 0x4F53494E464F535A
PAGE = 4096


def os_info_page(storage) -> tuple[int, bytes | None]:
    """The lowcore's os_info pointer and the page it names (None if it names no page)."""
    address = storage.u64(OS_INFO_POINTER)
    if not address or address % PAGE or address + PAGE > storage.size:
        return address, None
    return address, storage.read(address, PAGE)


def recompute_os_info_check(storage, kind: int) -> tuple[str, str, bool]:
    """(expected, computed, ok) of check 1 pointer, 2 magic, 3 checksum or 4 version."""
    address, page = os_info_page(storage)
    if kind == 1:
        return "page-aligned pointer", f"{address:#x}", page is not None
    if page is None:
        return "os_info", "missing", False
    if kind == 2:
        magic = struct.unpack_from(">Q", page)[0]
        return f"{OS_INFO_MAGIC:#018x}", f"{magic:#018x}", magic == OS_INFO_MAGIC
    if kind == 3:
        stored, computed = struct.unpack_from(">I", page, 8)[0], cksm(page[0x0C:])
        return f"{stored:08x}", f"{computed:08x}", stored == computed
    if kind == 4:
        major = struct.unpack_from(">H", page, 0x0C)[0]
        return "<= 1", str(major), major <= 1
    raise ValueError(f"os_info check {kind} is not one of 1-4")
