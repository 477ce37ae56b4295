"""Sample CPU states and memory images for the dump-format tests (test_formats_*.py,
test_cli_inspect.py)."""

from __future__ import annotations

import re
import shutil
import struct
from pathlib import Path

from machine.checksums import cksm
from machine.formats.notes import vmcoreinfo_note
from machine.status import SAVE_AREA_ADDRESS, CpuStatus

PAGE = 4096
REFERENCE = Path("/work/shared/reference")
ROOT = Path(__file__).resolve().parent.parent
PREFIXES = (0x0106C000, 0x0106E000)  # the real run's (S390_FACTS §6.3)
VMCOREINFO_TEXT = ("OSRELEASE=6.1.192-dumplab\nPAGESIZE=4096\nSYMBOL(lowcore_ptr)=5c0210\n"
                   "LENGTH(lowcore_ptr)=4\nKERNELOFFSET=0\nCRASHTIME=1796076708\n")
# The host's readelf, or the s390x cross one (same output); None if neither is installed.
READELF = shutil.which("readelf") or shutil.which("s390x-linux-gnu-readelf")
OS_INFO_ADDRESS = 0x7000
VMCOREINFO_NOTE_ADDRESS = 0x8000
VMCOREINFO_TEXT_ADDRESS = 0x8800  # os_info entry 0's copy of the text, when there is one


def status(cpu: int, prefix: int) -> CpuStatus:
    """A CPU state in which every register is different and recognisable: GPR i of CPU c is
    0xC0..0i with c and i in it, and so on for the other register sets."""
    def regs(kind: int, width: int = 64) -> tuple[int, ...]:
        return tuple(((kind << (width - 8)) | (cpu << (width - 16)) | (0x0101 * i + 1))
                     for i in range(16))
    return CpuStatus(
        psw_mask=0x0706C00180000000 if cpu == 0 else 0x0002000180000000,
        psw_addr=0x10E680 + 0x1000 * cpu,
        gprs=regs(0xA0), crs=regs(0xC0), ars=regs(0xA1, 32), fprs=regs(0xF0),
        fpc=0x00080000 + cpu, prefix=prefix,
        cpu_timer=0x7FFFFFFD7C2EE3B2 - cpu, clock_comparator=(0x00A95FAF2223BA82 + cpu) << 8,
        tod_programmable=cpu)


def statuses() -> list[CpuStatus]:
    return [status(cpu, prefix) for cpu, prefix in enumerate(PREFIXES)]


def page_kinds(pages: int) -> list[str]:
    """What each page of a sample image holds: 'zero', 'last' (only its last byte set) or
    'data'. The image starts with two zero pages, has single zero pages between data pages,
    longer zero runs, and ends with a zero page."""
    kinds = []
    for page in range(pages):
        if page < 2 or page == pages - 1 or page % 16 in (5, 9, 10, 11, 12) or page % 64 > 48:
            kinds.append("zero")
        elif page % 16 == 7:
            kinds.append("last")
        else:
            kinds.append("data")
    return kinds


def memory_image(size: int) -> bytearray:
    """A memory image with zero and non-zero pages (see page_kinds)."""
    image = bytearray(size)
    for page, kind in enumerate(page_kinds(size // PAGE)):
        at = page * PAGE
        if kind == "last":
            image[at + PAGE - 1] = 0x5A
        elif kind == "data":
            image[at:at + 16] = struct.pack(">QQ", page, 0xD0D0D0D0D0D0D0D0)
            image[at + 1000] = page & 0xFF or 1
    return image


def put_save_areas(image: bytearray, cpu_states: list[CpuStatus]) -> None:
    """Each CPU's save area into its prefix page, as the stand-alone dumper leaves it."""
    for cpu_status in cpu_states:
        at = cpu_status.prefix + SAVE_AREA_ADDRESS
        image[at:at + 512] = cpu_status.pack()


def put_os_info(image: bytearray, text: str = VMCOREINFO_TEXT, *, in_entry0: bool = False) -> None:
    """os_info at OS_INFO_ADDRESS (pointer at absolute 0xE18) and the VMCOREINFO note at
    VMCOREINFO_NOTE_ADDRESS (pointer at 0xE0C), as Linux leaves them: entry 0 empty. With
    in_entry0, entry 0 holds a copy of the text (the note's descriptor) at
    VMCOREINFO_TEXT_ADDRESS, as the kdump kernel reads it
    first. Checksums as the kernel computes them."""
    note = vmcoreinfo_note(text)
    image[VMCOREINFO_NOTE_ADDRESS:VMCOREINFO_NOTE_ADDRESS + len(note)] = note
    image[0xE0C:0xE14] = VMCOREINFO_NOTE_ADDRESS.to_bytes(8, "big")
    page = bytearray(PAGE)
    struct.pack_into(">QIHHQQ", page, 0, 0x4F53494E464F535A, 0, 1, 1, 0x14000000, 0x0C000000)
    if in_entry0:
        desc = text.encode()
        image[VMCOREINFO_TEXT_ADDRESS:VMCOREINFO_TEXT_ADDRESS + len(desc)] = desc
        struct.pack_into(">QQI", page, 0x20, VMCOREINFO_TEXT_ADDRESS, len(desc), cksm(desc))
    struct.pack_into(">I", page, 8, cksm(bytes(page[0x0C:])))
    image[OS_INFO_ADDRESS:OS_INFO_ADDRESS + PAGE] = page
    image[0xE18:0xE20] = OS_INFO_ADDRESS.to_bytes(8, "big")


def s390_memory(size: int) -> bytearray:
    """A memory image as a stand-alone dumper sees it: sample pages, the CPUs' save areas in
    their prefix pages and a valid os_info with VMCOREINFO."""
    image = memory_image(size)
    put_save_areas(image, statuses())
    put_os_info(image)
    return image


def reader(image: bytes | bytearray):
    """A read(address, length) over an image, returning memoryviews as the LPAR storage does."""
    view = memoryview(image)
    return lambda address, length: view[address:address + length]


def readelf_notes(text: str) -> list[tuple[str, int, str]]:
    """(owner, data size, description) of each note in `readelf -n` output."""
    pattern = re.compile(r"^\s+(\S+)\s+0x([0-9a-f]+)\s+(.+?)\s*$")
    notes = []
    for line in text.splitlines():
        match = pattern.match(line)
        if match and match.group(1) != "Owner":
            description = match.group(3).split("description data:")[0].strip()
            notes.append((match.group(1), int(match.group(2), 16), description))
    return notes
