"""The ELF core (vmcore) the s390x kdump kernel's /proc/vmcore presents: writer and reader.

Layout (S390_FACTS.md §5.2, §6.2), all big-endian:

    0x00        ELF64 header: ET_CORE, EM_S390, e_phoff 64, no section headers
    0x40        program headers: phdr[0] PT_NOTE, then the PT_LOADs, 56 bytes each
    page        the notes (PT_NOTE p_offset), page-aligned after the headers
    page        the memory of each PT_LOAD in turn, page-aligned after the notes

PT_NOTE has vaddr = paddr = 0, flags 0, align 0. Each PT_LOAD has vaddr = paddr = the old
(physical) memory address, flags RWX, align 4096.

Zero-page filtering (our choice, after makedumpfile's ELF mode; docs/FIDELITY.md "Dump files"):
the real /proc/vmcore has one PT_LOAD per memory chunk with p_filesz == p_memsz. With
`filter_zero_pages` every dumped range is split into PT_LOADs at its all-zero pages: each
PT_LOAD starts at a run of non-zero pages, its p_filesz covers that run and its p_memsz also
covers the zero pages that follow it up to the next run (or the end of the range). The zero
pages take no room in the file, the PT_LOADs' memsz still cover every dumped range exactly,
and readers (ours, drgn, crash) read the p_filesz..p_memsz tail as zeros. A range that starts
with zero pages gets a first PT_LOAD with p_filesz 0. To keep e_phnum below PN_XNUM (0xFFFF)
in pathological patterns, the shortest zero runs are written out as data when there would
otherwise be more than MAX_LOADS PT_LOADs.
"""

from __future__ import annotations

import bisect
import heapq
import os
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import BinaryIO

from machine.formats.common import (
    ADDRESS_LIMIT,
    MAX_DUMP_MEMORY,
    MAX_NOTES_SIZE,
    PAGE_SIZE,
    PARSER_ERRORS,
    AddressNotDumped,
    DumpFormatError,
    Progress,
    ProgressFn,
    ReadFn,
    Stopwatch,
    WriteResult,
    atomic_output,
    chunks,
    end_sparse,
    is_file_hole,
    malformed,
    page_align,
    read_bytes,
    read_exact,
    write_all,
    write_sparse,
    zero_bytes,
)
from machine.formats.notes import CpuNotes, Note, cpus_from_notes, parse_notes, vmcoreinfo_text
from machine.storage import nonzero_page_runs
from machine.userfiles import open_user_file

ELF_MAGIC = b"\x7fELF"
ELFCLASS64 = 2
ELFDATA2MSB = 2
EV_CURRENT = 1
ET_CORE = 4
EM_S390 = 22
PT_LOAD = 1
PT_NOTE = 4
PF_RWX = 7
EHDR_SIZE = 64
PHDR_SIZE = 56
PN_XNUM = 0xFFFF
MAX_LOADS = PN_XNUM - 2  # plus the PT_NOTE, e_phnum stays below PN_XNUM

# e_ident (16) e_type e_machine e_version e_entry e_phoff e_shoff e_flags e_ehsize
# e_phentsize e_phnum e_shentsize e_shnum e_shstrndx
_EHDR = struct.Struct(">16sHHIQQQIHHHHHH")
# p_type p_flags p_offset p_vaddr p_paddr p_filesz p_memsz p_align
_PHDR = struct.Struct(">IIQQQQQQ")
# (start, end) -> the runs [a, b) of non-zero pages in it
RunsFn = Callable[[int, int], list[tuple[int, int]]]
_IDENT = ELF_MAGIC + bytes([ELFCLASS64, ELFDATA2MSB, EV_CURRENT, 0]) + bytes(8)


@dataclass(frozen=True)
class LoadSegment:
    """One PT_LOAD: `filesz` bytes of memory at `paddr` are at file `offset`; the rest of
    `memsz` reads as zeros (filtered zero pages)."""

    offset: int
    vaddr: int
    paddr: int
    filesz: int
    memsz: int
    flags: int = PF_RWX
    align: int = PAGE_SIZE

    @property
    def end(self) -> int:
        """The first physical address after the segment's memory."""
        return self.paddr + self.memsz


@dataclass(frozen=True)
class ElfHeader:
    """The ELF header fields of a vmcore."""

    ident: bytes
    type: int
    machine: int
    version: int
    entry: int
    phoff: int
    shoff: int
    flags: int
    ehsize: int
    phentsize: int
    phnum: int
    shentsize: int
    shnum: int
    shstrndx: int


@dataclass
class Vmcore:
    """A vmcore read by read_vmcore(): headers, notes, CPUs, VMCOREINFO and the PT_LOADs.

    Memory is read from the file on demand with read().
    """

    path: Path
    file_size: int
    header: ElfHeader
    note_segments: list[tuple[int, int]]  # (file offset, size) of each PT_NOTE
    notes: list[Note]
    cpus: list[CpuNotes]
    vmcoreinfo: str | None
    loads: list[LoadSegment]
    _starts: list[int] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self.loads.sort(key=lambda load: load.paddr)
        self._starts = [load.paddr for load in self.loads]

    @property
    def format(self) -> str:
        """"elf"."""
        return "elf"

    @property
    def ranges(self) -> list[tuple[int, int]]:
        """The dumped memory as (start, end) ranges: adjacent PT_LOADs merged."""
        merged: list[tuple[int, int]] = []
        for load in self.loads:
            if merged and merged[-1][1] == load.paddr:
                merged[-1] = (merged[-1][0], load.end)
            elif load.memsz:
                merged.append((load.paddr, load.end))
        return merged

    @property
    def pages_filtered(self) -> int:
        """Pages inside the dumped ranges that the file leaves out (they read as zeros)."""
        return sum(load.memsz - load.filesz for load in self.loads) // PAGE_SIZE

    @property
    def memory_size(self) -> int:
        """Bytes of old memory the dump covers."""
        return sum(end - start for start, end in self.ranges)

    def read(self, address: int, length: int, *, holes_as_zero: bool = False) -> bytes:
        """`length` bytes of old memory at physical `address`. Filtered zero pages read as
        zeros; memory outside every PT_LOAD raises AddressNotDumped unless `holes_as_zero`."""
        with open_user_file(self.path, "dump") as file:
            if not self._has_file_data(file.fileno(), address, address + length):
                # Filtered pages, holes, sparse zeros only: nothing to read (a crafted 64 GiB
                # PT_LOAD converts in seconds, see common.zero_bytes).
                if not holes_as_zero:
                    self._check_dumped(address, length)
                return zero_bytes(length)
            out = bytearray(length)
            position = address
            while position < address + length:
                load = self._load_at(position)
                if load is None:
                    position = self._skip_hole(position, address, length, holes_as_zero)
                    continue
                stop = min(load.end, address + length)
                self._copy(file, load, position, stop, out, position - address)
                position = stop
        return bytes(out)

    def _has_file_data(self, fd: int, start: int, end: int) -> bool:
        """Whether any PT_LOAD has bytes in the file, other than a hole, for [start, end)."""
        index = max(bisect.bisect_right(self._starts, start) - 1, 0)
        for load in self.loads[index:]:
            if load.paddr >= end:
                return False
            low, high = max(start, load.paddr), min(end, load.paddr + load.filesz)
            if low < high and not is_file_hole(fd, load.offset + low - load.paddr, high - low):
                return True
        return False

    def _check_dumped(self, address: int, length: int) -> None:
        position = address
        while position < address + length:
            load = self._load_at(position)
            if load is None:
                self._skip_hole(position, address, length, False)  # raises
            position = min(load.end, address + length)

    def _load_at(self, address: int) -> LoadSegment | None:
        index = bisect.bisect_right(self._starts, address) - 1
        if index >= 0 and address < self.loads[index].end:
            return self.loads[index]
        return None

    def _skip_hole(self, position: int, address: int, length: int, holes_as_zero: bool) -> int:
        if not holes_as_zero:
            raise AddressNotDumped(f"{position:#x} is not in the dump "
                                   f"(it holds {_ranges_text(self.ranges)})")
        index = bisect.bisect_right(self._starts, position)
        following = self.loads[index].paddr if index < len(self.loads) else address + length
        return min(following, address + length)

    @staticmethod
    def _copy(file: BinaryIO, load: LoadSegment, start: int, stop: int, out: bytearray,
              out_offset: int) -> None:
        # Bytes beyond p_filesz stay zero in `out`: they are filtered zero pages.
        file_stop = min(stop, load.paddr + load.filesz)
        if file_stop <= start:
            return
        file.seek(load.offset + start - load.paddr)
        data = file.read(file_stop - start)
        if len(data) != file_stop - start:
            raise DumpFormatError(f"{load.offset:#x}: PT_LOAD data is truncated")
        out[out_offset:out_offset + len(data)] = data


def _ranges_text(ranges: Sequence[tuple[int, int]]) -> str:
    if not ranges:
        return "no memory"
    return ", ".join(f"{start:#x}-{end - 1:#x}" for start, end in ranges)


# ---------------------------------------------------------------------------------------------
# Writing


@dataclass(frozen=True)
class _Segment:
    """A PT_LOAD being planned: memory [start, start + memsz), the first filesz in the file."""

    start: int
    filesz: int
    memsz: int


def _check_ranges(ranges: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    ordered = sorted((int(start), int(end)) for start, end in ranges)
    for start, end in ordered:
        if start % PAGE_SIZE or end % PAGE_SIZE or start >= end or start < 0:
            raise ValueError(f"memory range {start:#x}-{end:#x} must be non-empty and "
                             "page aligned")
    for (_, end), (start, _) in pairwise(ordered):
        if start < end:
            raise ValueError(f"memory ranges overlap at {start:#x}")
    return ordered


def _nonzero_runs(read: ReadFn, start: int, end: int) -> list[tuple[int, int]]:
    """The runs [a, b) of pages in [start, end) that are not all zeros, in order (memory
    read in chunks; each page compared in C, machine/storage.nonzero_page_runs)."""
    runs: list[tuple[int, int]] = []
    for address, length in chunks(start, end):
        for a, b in nonzero_page_runs(read_bytes(read, address, length), 0, length):
            if runs and runs[-1][1] == address + a:
                runs[-1] = (runs[-1][0], address + b)
            else:
                runs.append((address + a, address + b))
    return runs


def _fill_shortest_holes(runs: list[tuple[int, int]], excess: int,
                         fixed: set[int]) -> list[tuple[int, int]]:
    """Merge away `excess` runs by writing the shortest zero holes between runs out as data.
    Holes after a run whose index is in `fixed` (the last run of a range) are not candidates."""
    holes = [(runs[i + 1][0] - runs[i][1], i) for i in range(len(runs) - 1) if i not in fixed]
    filled = {i for _, i in heapq.nsmallest(excess, holes)}
    merged: list[tuple[int, int]] = []
    for index, run in enumerate(runs):
        if index - 1 in filled:
            merged[-1] = (merged[-1][0], run[1])
        else:
            merged.append(run)
    return merged


def _plan_segments(ranges: list[tuple[int, int]], find_runs: RunsFn | None) -> list[_Segment]:
    if find_runs is None:
        return [_Segment(start, end - start, end - start) for start, end in ranges]
    per_range = [find_runs(start, end) for start, end in ranges]
    count = sum(max(len(runs), 1) + (1 if runs and runs[0][0] > start else 0)
                for runs, (start, _) in zip(per_range, ranges, strict=True))
    if count > MAX_LOADS:
        per_range = _cap_runs(per_range, count - MAX_LOADS)
    segments: list[_Segment] = []
    for runs, (start, end) in zip(per_range, ranges, strict=True):
        segments += _range_segments(runs, start, end)
    return segments


def _cap_runs(per_range: list[list[tuple[int, int]]], excess: int) -> list[list[tuple[int, int]]]:
    flat = [run for runs in per_range for run in runs]
    last_of_range, index = set(), -1
    for runs in per_range:
        index += len(runs)
        last_of_range.add(index)
    merged = _fill_shortest_holes(flat, excess, last_of_range)
    # Put the merged runs back into their ranges (a run never crosses a range boundary).
    result, position = [], 0
    for runs in per_range:
        if not runs:
            result.append([])
            continue
        end = runs[-1][1]
        mine = []
        while position < len(merged) and merged[position][1] <= end:
            mine.append(merged[position])
            position += 1
        result.append(mine)
    return result


def _range_segments(runs: list[tuple[int, int]], start: int, end: int) -> list[_Segment]:
    """PT_LOADs for one range: each non-zero run, with the zero pages after it in memsz."""
    if not runs:
        return [_Segment(start, 0, end - start)]
    segments = []
    if runs[0][0] > start:
        segments.append(_Segment(start, 0, runs[0][0] - start))
    for index, (run_start, run_end) in enumerate(runs):
        next_start = runs[index + 1][0] if index + 1 < len(runs) else end
        segments.append(_Segment(run_start, run_end - run_start, next_start - run_start))
    return segments


def _headers(notes: bytes, segments: list[_Segment]) -> tuple[bytes, list[int]]:
    """The ELF header, program headers and notes, padded to where the memory starts; and each
    segment's file offset."""
    phnum = 1 + len(segments)
    if phnum >= PN_XNUM:
        raise ValueError(f"{len(segments)} PT_LOADs are more than an ELF header can count")
    note_offset = page_align(EHDR_SIZE + PHDR_SIZE * phnum)
    offset = page_align(note_offset + len(notes))
    offsets = []
    for segment in segments:
        offsets.append(offset)
        offset += segment.filesz  # page multiples: every segment stays page-aligned
    parts = [_EHDR.pack(_IDENT, ET_CORE, EM_S390, EV_CURRENT, 0, EHDR_SIZE, 0, 0, EHDR_SIZE,
                        PHDR_SIZE, phnum, 0, 0, 0),
             _PHDR.pack(PT_NOTE, 0, note_offset, 0, 0, len(notes), len(notes), 0)]
    parts += [_PHDR.pack(PT_LOAD, PF_RWX, file_offset, s.start, s.start, s.filesz, s.memsz,
                         PAGE_SIZE) for s, file_offset in zip(segments, offsets, strict=True)]
    head = b"".join(parts).ljust(note_offset, b"\0") + notes
    return head.ljust(page_align(len(head)), b"\0"), offsets


def _write_memory(fd: int, ranges: list[tuple[int, int]], segments: list[_Segment],
                  read: ReadFn, progress: Progress, sparse: bool) -> None:
    """Write each segment's file part, reading memory in chunks and writing each chunk's
    pieces with one writev, straight from what read() returns (a view of guest storage: no
    copy). `sparse`: unfiltered memory, where an all-zero chunk becomes a hole."""
    pieces = [(s.start, s.start + s.filesz) for s in segments if s.filesz]
    index = 0
    for start, end in ranges:
        for address, length in chunks(start, end):
            chunk_end = address + length
            while index < len(pieces) and pieces[index][1] <= address:
                index += 1
            wanted = []
            scan = index
            while scan < len(pieces) and pieces[scan][0] < chunk_end:
                wanted.append((max(pieces[scan][0], address), min(pieces[scan][1], chunk_end)))
                scan += 1
            if wanted:
                data = read_exact(read, address, length)
                if sparse and len(wanted) == 1:
                    write_sparse(fd, data[wanted[0][0] - address:wanted[0][1] - address])
                else:
                    write_all(fd, [data[a - address:b - address] for a, b in wanted])
            progress.advance(length)


def write_vmcore(path: str | os.PathLike[str], notes: bytes,
                 ranges: Sequence[tuple[int, int]], read: ReadFn, *,
                 filter_zero_pages: bool = True,
                 progress: ProgressFn | None = None,
                 nonzero_runs: RunsFn | None = None) -> WriteResult:
    """Write a vmcore of old memory to `path`, atomically (`.NAME.partial`, fsync, rename).

    `notes` is the whole PT_NOTE contents (see notes.vmcore_notes). `ranges` are the
    (start, end) ranges of old memory to dump, page aligned; `read(address, length)` returns
    that memory (bytes or a memoryview, e.g. of the LPAR's storage, with any swap undone).
    With `filter_zero_pages` all-zero pages are left out (module docstring), which costs one
    extra read-only pass over memory to plan the PT_LOADs. `progress(done, total)` is called
    about every 32 MiB of memory written and at the end. On any exception nothing is left
    under `path` (an earlier file there stays as it was). `nonzero_runs(start, end)`, if the
    caller has a faster way than reading (guest storage's page scan), returns the runs of
    non-zero pages of a range exactly as scanning read() would.
    """
    clock = Stopwatch()
    ordered = _check_ranges(ranges)
    total = sum(end - start for start, end in ordered)
    with atomic_output(path) as fd:
        find_runs = (nonzero_runs or (lambda start, end: _nonzero_runs(read, start, end))
                     if filter_zero_pages else None)
        segments = _plan_segments(ordered, find_runs)
        head, _ = _headers(bytes(notes), segments)
        write_all(fd, [head])
        tracker = Progress(progress, total)
        _write_memory(fd, ordered, segments, read, tracker, sparse=not filter_zero_pages)
        end_sparse(fd)
        tracker.finish()
        written = os.lseek(fd, 0, os.SEEK_CUR)
    filed = sum(s.filesz for s in segments)
    return WriteResult(Path(path), written, clock.seconds(), filed // PAGE_SIZE,
                       (total - filed) // PAGE_SIZE)


# ---------------------------------------------------------------------------------------------
# Reading


def _read_header(data: bytes, file_size: int) -> ElfHeader:
    if len(data) < 4 or data[:4] != ELF_MAGIC:
        if file_size == 0:
            raise DumpFormatError("empty file, not an ELF vmcore")
        raise DumpFormatError("not an ELF file (bad magic)")
    if len(data) < EHDR_SIZE:
        raise DumpFormatError(f"truncated ELF header ({file_size} of {EHDR_SIZE} bytes)")
    header = ElfHeader(*_EHDR.unpack_from(data))
    ident = header.ident
    if ident[4] != ELFCLASS64:
        raise DumpFormatError(f"not a 64-bit ELF file (class {ident[4]}), s390x vmcores are "
                              "ELF64")
    if ident[5] != ELFDATA2MSB:
        raise DumpFormatError(f"not a big-endian ELF file (data encoding {ident[5]})")
    if header.type != ET_CORE:
        raise DumpFormatError(f"not an ELF core file (e_type {header.type})")
    if header.machine != EM_S390:
        raise DumpFormatError(f"not an s390 core (e_machine {header.machine}, "
                              f"expected {EM_S390})")
    if header.phentsize != PHDR_SIZE:
        raise DumpFormatError(f"bad e_phentsize {header.phentsize} (expected {PHDR_SIZE})")
    if header.phnum in (0, PN_XNUM):
        raise DumpFormatError(f"unsupported e_phnum {header.phnum:#x}")
    end = header.phoff + header.phnum * PHDR_SIZE
    if end > file_size:
        raise DumpFormatError(f"program headers at {header.phoff:#x}-{end:#x} run past the end "
                              f"of the file ({file_size:#x} bytes): truncated")
    return header


def _read_phdrs(file: BinaryIO, header: ElfHeader) -> list[tuple[int, ...]]:
    # e_phnum < 0xFFFF, so the table is at most 3.5 MiB.
    file.seek(header.phoff)
    table = file.read(header.phnum * PHDR_SIZE)
    return [_PHDR.unpack_from(table, i * PHDR_SIZE) for i in range(header.phnum)]


def _loads(phdrs: list[tuple[int, ...]], file_size: int) -> list[LoadSegment]:
    loads = []
    for index, (p_type, flags, offset, vaddr, paddr, filesz, memsz, align) in enumerate(phdrs):
        if p_type != PT_LOAD:
            continue
        if filesz > memsz:
            raise DumpFormatError(f"PT_LOAD {index} has p_filesz {filesz:#x} > p_memsz "
                                  f"{memsz:#x}")
        if paddr + memsz > ADDRESS_LIMIT:
            raise DumpFormatError(f"PT_LOAD {index}: p_paddr {paddr:#x} + p_memsz {memsz:#x} "
                                  "runs past the end of the 64-bit address space")
        if offset + filesz > file_size:
            raise DumpFormatError(f"truncated: PT_LOAD {index} data {offset:#x}-"
                                  f"{offset + filesz:#x} runs past the end of the file "
                                  f"({file_size:#x} bytes)")
        loads.append(LoadSegment(offset, vaddr, paddr, filesz, memsz, flags, align))
    total = sum(load.memsz for load in loads)
    if total > MAX_DUMP_MEMORY:
        raise DumpFormatError(f"the PT_LOADs hold {total:#x} bytes of memory, more than the "
                              f"{MAX_DUMP_MEMORY >> 40} TiB an LPAR can have")
    ordered = sorted(loads, key=lambda load: load.paddr)
    for before, after in pairwise(ordered):
        if after.paddr < before.end:
            raise DumpFormatError(f"PT_LOADs overlap at physical address {after.paddr:#x}")
    return loads


def _notes(file: BinaryIO, phdrs: list[tuple[int, ...]], file_size: int
           ) -> tuple[list[tuple[int, int]], list[Note]]:
    segments, notes = [], []
    for p_type, _flags, offset, _v, _p, filesz, _m, _a in phdrs:
        if p_type != PT_NOTE:
            continue
        if filesz > MAX_NOTES_SIZE:
            raise DumpFormatError(f"PT_NOTE at {offset:#x} is {filesz:#x} bytes, more than "
                                  f"the {MAX_NOTES_SIZE >> 20} MiB a vmcore's notes can take")
        if offset + filesz > file_size:
            raise DumpFormatError(f"truncated: PT_NOTE {offset:#x}-{offset + filesz:#x} runs "
                                  f"past the end of the file ({file_size:#x} bytes)")
        file.seek(offset)
        notes += parse_notes(file.read(filesz), offset)
        segments.append((offset, filesz))
    return segments, notes


def read_vmcore(path: str | os.PathLike[str]) -> Vmcore:
    """Read a vmcore's headers and notes (memory stays in the file; see Vmcore.read).

    Raises DumpFormatError with a one-line message for anything that is not a well-formed
    s390x ELF core: not ELF, wrong class/endianness/type/machine, truncated headers, program
    headers or data beyond the end of the file, notes that overrun their segment.
    OSError (missing file, no permission) passes through.
    """
    file_path = Path(path)
    try:
        with open_user_file(file_path, "dump") as file:
            file_size = os.fstat(file.fileno()).st_size
            header = _read_header(file.read(EHDR_SIZE), file_size)
            phdrs = _read_phdrs(file, header)
            note_segments, notes = _notes(file, phdrs, file_size)
        loads = _loads(phdrs, file_size)
        return Vmcore(file_path, file_size, header, note_segments, notes,
                      cpus_from_notes(notes), vmcoreinfo_text(notes), loads)
    except PARSER_ERRORS as error:
        raise malformed("ELF vmcore", error) from None


def is_elf(prefix: bytes) -> bool:
    """Whether a file starting with `prefix` claims to be ELF."""
    return prefix[:4] == ELF_MAGIC

