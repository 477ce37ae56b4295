"""Format detection and conversion between ELF vmcores and s390 dumps (zgetdump's role).

s390 → ELF: the notes a kdump vmcore has (PRPSINFO; per lc_vec CPU, in lc_vec order with
pr_pid 1, 2, ..., the seven notes built from its prefix page's save area; VMCOREINFO when
os_info in the memory image is valid) and one PT_LOAD over all memory, unfiltered, so memory
stays byte-identical.

ELF → s390: memory [0, highest dumped address) with zeros where the vmcore has none, lc_vec
from the CPUs' NT_S390_PREFIX notes in note order, and each CPU's registers written into the
save area of its prefix page (as the stand-alone dumper leaves them), so a vmcore from kdump
becomes a proper s390 dump. s390 → ELF → s390 keeps memory byte-identical.

Converting to the same format rewrites the file: ELF → ELF with zero pages filtered, s390 →
s390 trimmed to the dump (e.g. a copy of a whole dump device).

With `select` prod or kdump (a dump holding two systems, machine/formats/select.py) the
selected system is written as an ELF core: its memory ranges only, its CPUs' notes and its
VMCOREINFO.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from machine.formats.common import (
    MAX_DUMP_MEMORY,
    PAGE_SIZE,
    DumpFormatError,
    ProgressFn,
    ReadFn,
    WriteResult,
    page_align,
)
from machine.formats.elfcore import Vmcore, is_elf, read_vmcore, write_vmcore
from machine.formats.notes import vmcore_notes
from machine.formats.s390dump import (
    LOWCORE_SIZE,
    MAX_CPUS,
    S390Dump,
    is_s390_dump,
    read_s390_dump,
    rewrite_s390_dump,
    save_area_patches,
    write_s390_dump,
)
from machine.formats.select import SystemView, select_system
from machine.userfiles import check_output_target, open_user_file

FORMATS = ("elf", "s390")


@dataclass(frozen=True)
class ConvertResult:
    """What convert() did."""

    in_format: str
    out_format: str
    write: WriteResult
    select: str = "all"  # the system written, for a dump that holds two


def detect_format(path: str | os.PathLike[str]) -> str:
    """"elf" or "s390" from the file's magic; DumpFormatError for anything else."""
    with open_user_file(path, "dump") as file:
        head = file.read(8)
    if is_elf(head):
        return "elf"
    if is_s390_dump(head):
        return "s390"
    if not head:
        raise DumpFormatError("empty file, neither an ELF vmcore nor an s390 dump")
    raise DumpFormatError("neither an ELF vmcore nor an s390 dump (unknown magic)")


def open_dump(path: str | os.PathLike[str]) -> Vmcore | S390Dump:
    """Read a vmcore or an s390 dump, whichever the file is (a regular file: machine/
    userfiles.py refuses devices and FIFOs, which would never end or block)."""
    return read_vmcore(path) if detect_format(path) == "elf" else read_s390_dump(path)


def patched_reader(read: ReadFn, patches: Sequence[tuple[int, bytes]]) -> ReadFn:
    """`read` with the (address, bytes) patches laid over what it returns."""
    def patched(address: int, length: int) -> bytes | bytearray | memoryview:
        """read(), with any patch that overlaps the range laid over it."""
        data = read(address, length)
        end = address + length
        hits = [(at, raw) for at, raw in patches if at < end and at + len(raw) > address]
        if not hits:
            return data
        buffer = bytearray(data)
        for at, raw in hits:
            low, high = max(at, address), min(at + len(raw), end)
            buffer[low - address:high - address] = raw[low - at:high - at]
        return buffer
    return patched


def s390_to_elf(dump: S390Dump, out_path: str | os.PathLike[str],
                progress: ProgressFn | None = None) -> WriteResult:
    """Write `dump` as a vmcore: kdump notes from the save areas, one unfiltered PT_LOAD."""
    notes = vmcore_notes(dump.cpus, dump.vmcoreinfo)
    return write_vmcore(out_path, notes, dump.ranges, dump.read, filter_zero_pages=False,
                        progress=progress)


def view_to_elf(view: SystemView, out_path: str | os.PathLike[str],
                progress: ProgressFn | None = None) -> WriteResult:
    """Write one system of a two-system dump as a vmcore: its ranges, unfiltered."""
    if not view.ranges:
        raise DumpFormatError(f"the {view.select} system holds no memory")
    notes = vmcore_notes(view.cpus, view.vmcoreinfo)
    return write_vmcore(out_path, notes, view.ranges, view.read, filter_zero_pages=False,
                        progress=progress)


def elf_to_s390(vmcore: Vmcore, out_path: str | os.PathLike[str],
                progress: ProgressFn | None = None) -> WriteResult:
    """Write `vmcore` as an s390 dump of [0, highest address), registers in prefix pages."""
    if not vmcore.ranges:
        raise DumpFormatError("the vmcore holds no memory")
    if len(vmcore.cpus) > MAX_CPUS:
        raise DumpFormatError(f"{len(vmcore.cpus)} CPUs: an s390 dump holds at most {MAX_CPUS}")
    size = page_align(vmcore.ranges[-1][1])
    if size > MAX_DUMP_MEMORY:
        # An s390 dump holds [0, highest address): a PT_LOAD far up would mean terabytes.
        raise DumpFormatError(f"the vmcore's memory ends at {size:#x}: an s390 dump of it "
                              f"would be larger than the {MAX_DUMP_MEMORY >> 40} TiB an LPAR "
                              "can have")
    patches = []
    for cpu in vmcore.cpus:
        if cpu.prefix % LOWCORE_SIZE or cpu.prefix + LOWCORE_SIZE > size:
            raise DumpFormatError(f"CPU {cpu.pid}: prefix {cpu.prefix:#x} is not a lowcore "
                                  "inside the dumped memory")
        patches += save_area_patches(cpu.status())

    def read(address: int, length: int) -> bytes:
        """The vmcore's memory, zeros where it has none."""
        return vmcore.read(address, length, holes_as_zero=True)

    return write_s390_dump(out_path, patched_reader(read, patches), size,
                           prefixes=[cpu.prefix for cpu in vmcore.cpus], progress=progress)


def _elf_to_elf(vmcore: Vmcore, out_path: str | os.PathLike[str],
                progress: ProgressFn | None) -> WriteResult:
    for start, end in vmcore.ranges:
        if start % PAGE_SIZE or end % PAGE_SIZE:
            raise DumpFormatError(f"memory range {start:#x}-{end:#x} is not page aligned")
    with open_user_file(vmcore.path, "dump") as file:
        notes = b""
        for offset, size in vmcore.note_segments:
            file.seek(offset)
            notes += file.read(size)
    return write_vmcore(out_path, notes, vmcore.ranges, vmcore.read, progress=progress)


def convert(in_path: str | os.PathLike[str], out_path: str | os.PathLike[str],
            out_format: str | None = None, *, select: str = "all",
            progress: ProgressFn | None = None) -> ConvertResult:
    """Convert a dump file to `out_format` ("elf" or "s390"; default: the other format), or
    with `select` "prod" or "kdump" write that system of a two-system dump as an ELF core.

    The output is written atomically. Raises DumpFormatError for a bad input file (or one
    system only, with `select`), ValueError for a bad format or selection, or the same file as
    input and output, OSError for I/O problems.
    """
    if out_format is not None and out_format not in FORMATS:
        raise ValueError(f"unknown format '{out_format}' (expected elf or s390)")
    if select != "all" and out_format == "s390":
        raise ValueError(f"--select {select} writes an ELF core, not an s390 dump")
    if Path(out_path).exists() and os.path.samefile(in_path, out_path):
        raise ValueError("the input and the output are the same file")
    check_output_target(out_path)  # before reading a large input: a device or a symlink
    dump = open_dump(in_path)
    selected = select_system(dump, select)
    if isinstance(selected, SystemView):
        return ConvertResult(dump.format, "elf", view_to_elf(selected, out_path, progress),
                             select)
    target = out_format or ("s390" if dump.format == "elf" else "elf")
    if isinstance(dump, Vmcore):
        write = (_elf_to_elf(dump, out_path, progress) if target == "elf"
                 else elf_to_s390(dump, out_path, progress))
    else:
        write = (s390_to_elf(dump, out_path, progress) if target == "elf"
                 else rewrite_s390_dump(out_path, dump, dump.read, progress))
    return ConvertResult(dump.format, target, write)
