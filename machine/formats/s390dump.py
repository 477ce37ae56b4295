"""The "s390 dump format" of the stand-alone dumpers (S390_FACTS.md §4.4, §6.8): writer and
reader.

File layout, all big-endian:

    0x0000  4 KiB header (fields below; every other byte zero)
    0x1000  memory from mem_start (0) to mem_end, byte for byte
    end     16-byte end marker: "DUMP_END" (0x44554d505f454e44), then the TOD clock u64

Header (offsets in the file):

    0x000 magic u64 0xa8190173618f23fd      0x038 tod u64 (TOD clock at dump start)
    0x008 version u32 (5, see below)        0x040 cpu_id u64 (STIDP of the dumping CPU)
    0x00C hdr_size u32 0x1000               0x048 arch u32 2 (64-bit)
    0x010 dump_level u32 4                  0x04C volnr u32 0
    0x014 page_size u32 4096                0x050 build_arch u32 2
    0x018 mem_size u64                      0x054 mem_size_real u64 (unaligned)
    0x020 mem_start u64 0                   0x05C mvdump u8 0
    0x028 mem_end u64 = mem_size            0x05D cpu_cnt u16 (unaligned)
    0x030 num_pages u32 = mem_size >> 12    0x05F real_cpu_cnt u16 (unaligned)
    0x034 pad u32                           0x800 lc_vec[512] u32: each CPU's prefix

version: stage2dump.c writes 1, zgetdump 2.16's s390 writer 5 (the only real header we have,
§6.8); zgetdump reads any. We write 5. There are no registers in the header: each CPU's
store-status save area is in its prefix page, at prefix + 0x1200, inside the memory image.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from machine.formats.common import (
    ADDRESS_LIMIT,
    MAX_DUMP_MEMORY,
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
    is_file_hole,
    malformed,
    read_exact,
    write_all,
    write_sparse,
    zero_bytes,
)
from machine.formats.osinfo import OsInfoLookup, find_vmcoreinfo
from machine.status import SAVE_AREA_ADDRESS, SAVE_AREA_SIZE, CpuStatus
from machine.userfiles import open_user_file

S390_MAGIC = 0xA8190173618F23FD
S390_EXT_MAGIC = 0xA8190173618F23FE
HEADER_SIZE = 0x1000
DEFAULT_VERSION = 5
DUMP_LEVEL = 4
ARCH_S390X = 2
LC_VEC_OFFSET = 0x800
MAX_CPUS = 512
END_MARKER_MAGIC = b"DUMP_END"
END_MARKER_SIZE = 16
LOWCORE_SIZE = 0x2000

# magic version hdr_size dump_level page_size mem_size mem_start mem_end num_pages pad tod
# cpu_id arch volnr build_arch mem_size_real mvdump cpu_cnt real_cpu_cnt: 0x000-0x060
_FIELDS = struct.Struct(">QIIIIQQQIIQQIIIQBHH")
_LC_VEC = struct.Struct(f">{MAX_CPUS}I")


@dataclass(frozen=True)
class S390Header:
    """The fields of the 4 KiB s390 dump header we write and read."""

    mem_size: int
    version: int = DEFAULT_VERSION
    hdr_size: int = HEADER_SIZE
    dump_level: int = DUMP_LEVEL
    page_size: int = PAGE_SIZE
    mem_start: int = 0
    mem_end: int | None = None  # default: mem_start + mem_size
    num_pages: int | None = None  # default: mem_size // page_size
    tod: int = 0
    cpu_id: int = 0
    arch: int = ARCH_S390X
    volnr: int = 0
    build_arch: int = ARCH_S390X
    mem_size_real: int | None = None  # default: mem_size
    mvdump: int = 0
    real_cpu_cnt: int | None = None  # default: cpu_cnt
    lc_vec: tuple[int, ...] = field(default=())
    magic: int = S390_MAGIC

    def __post_init__(self) -> None:
        if len(self.lc_vec) > MAX_CPUS:
            raise ValueError(f"{len(self.lc_vec)} CPUs: lc_vec holds at most {MAX_CPUS}")
        defaults = {"mem_end": self.mem_start + self.mem_size,
                    "num_pages": self.mem_size // PAGE_SIZE,
                    "mem_size_real": self.mem_size, "real_cpu_cnt": len(self.lc_vec)}
        for name, value in defaults.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)

    @property
    def cpu_cnt(self) -> int:
        """CPUs with a prefix in lc_vec."""
        return len(self.lc_vec)

    def pack(self) -> bytes:
        """The 4096 header bytes."""
        page = bytearray(HEADER_SIZE)
        _FIELDS.pack_into(page, 0, self.magic, self.version, self.hdr_size, self.dump_level,
                          self.page_size, self.mem_size, self.mem_start, self.mem_end,
                          self.num_pages, 0, self.tod, self.cpu_id, self.arch, self.volnr,
                          self.build_arch, self.mem_size_real, self.mvdump, self.cpu_cnt,
                          self.real_cpu_cnt)
        _LC_VEC.pack_into(page, LC_VEC_OFFSET, *self.lc_vec, *[0] * (MAX_CPUS - self.cpu_cnt))
        return bytes(page)

    @classmethod
    def unpack(cls, page: bytes) -> S390Header:
        """Read the header fields; lc_vec is cut to cpu_cnt entries (checked to be ≤ 512)."""
        (magic, version, hdr_size, dump_level, page_size, mem_size, mem_start, mem_end,
         num_pages, _pad, tod, cpu_id, arch, volnr, build_arch, mem_size_real, mvdump, cpu_cnt,
         real_cpu_cnt) = _FIELDS.unpack_from(page)
        if cpu_cnt > MAX_CPUS:
            raise DumpFormatError(f"header cpu_cnt {cpu_cnt} is more than the {MAX_CPUS} "
                                  "prefixes lc_vec holds")
        lc_vec = _LC_VEC.unpack_from(page, LC_VEC_OFFSET)[:cpu_cnt]
        return cls(mem_size=mem_size, version=version, hdr_size=hdr_size,
                   dump_level=dump_level, page_size=page_size, mem_start=mem_start,
                   mem_end=mem_end, num_pages=num_pages, tod=tod, cpu_id=cpu_id, arch=arch,
                   volnr=volnr, build_arch=build_arch, mem_size_real=mem_size_real,
                   mvdump=mvdump, real_cpu_cnt=real_cpu_cnt, lc_vec=tuple(lc_vec), magic=magic)


# What the dumper copies from the store-status save area into a CPU's prefix page (offsets
# relative to the save area at prefix + 0x1200, §1.5): FPRs+GPRs+PSW, prefix+FPC,
# TOD programmable register+CPU timer+clock comparator, ACRs+CRs. The reserved words between
# them are left as they are in memory.
SAVE_AREA_PIECES = ((0x000, 0x110), (0x118, 0x8), (0x124, 0x14), (0x140, 0xC0))


def save_area_patches(status: CpuStatus) -> list[tuple[int, bytes]]:
    """(absolute address, bytes) writes that put `status` into the save area of its prefix
    page, piece by piece as the stand-alone dumper copies it."""
    area = status.pack()
    base = status.prefix + SAVE_AREA_ADDRESS
    return [(base + offset, area[offset:offset + size]) for offset, size in SAVE_AREA_PIECES]


def end_marker(tod: int) -> bytes:
    """The 16-byte end marker: "DUMP_END" and the TOD clock at the end of the dump."""
    return END_MARKER_MAGIC + struct.pack(">Q", tod)


@dataclass
class S390Dump:
    """An s390 dump read by read_s390_dump(). `cpus` are the save areas of the lc_vec CPUs,
    in lc_vec order; memory is read from the file on demand with read()."""

    path: Path
    file_size: int
    header: S390Header
    end_tod: int
    cpus: list[CpuStatus]
    os_info: OsInfoLookup

    @property
    def format(self) -> str:
        """"s390"."""
        return "s390"

    @property
    def prefixes(self) -> tuple[int, ...]:
        """The CPUs' prefixes (lc_vec), in header order."""
        return self.header.lc_vec

    @property
    def vmcoreinfo(self) -> str | None:
        """The VMCOREINFO text found through os_info in the memory image, if valid."""
        return self.os_info.text

    @property
    def ranges(self) -> list[tuple[int, int]]:
        """The dumped memory as (start, end): one range."""
        return [(self.header.mem_start, self.header.mem_end)]

    @property
    def memory_size(self) -> int:
        """Bytes of memory in the dump."""
        return self.header.mem_size

    @property
    def pages_filtered(self) -> int:
        """Always 0: the s390 format holds every page."""
        return 0

    def read(self, address: int, length: int, *, holes_as_zero: bool = False) -> bytes:
        """`length` bytes of memory at absolute `address`; outside the dump raises
        AddressNotDumped (or reads zeros with `holes_as_zero`)."""
        return _read_memory(self.path, self.header, address, length, holes_as_zero)


def _read_memory(path: Path, header: S390Header, address: int, length: int,
                 holes_as_zero: bool = False) -> bytes:
    start, end = header.mem_start, header.mem_end
    inside_from, inside_to = max(address, start), min(address + length, end)
    if (inside_from > address or inside_to < address + length) and not holes_as_zero:
        raise AddressNotDumped(f"{address:#x}+{length:#x} is not in the dump (it holds "
                               f"{start:#x}-{end - 1:#x})")
    out = bytearray(length)
    if inside_from < inside_to:
        with open_user_file(path, "dump") as file:
            offset = header.hdr_size + inside_from - start
            if inside_from == address and inside_to == address + length and \
                    is_file_hole(file.fileno(), offset, length):
                return zero_bytes(length)  # a sparse dump's zeros cost no reading
            file.seek(offset)
            data = file.read(inside_to - inside_from)
        out[inside_from - address:inside_from - address + len(data)] = data
    return bytes(out)


# ---------------------------------------------------------------------------------------------
# Writing


def write_s390_dump(path: str | os.PathLike[str], read: ReadFn, size: int, *,
                    prefixes: Sequence[int] = (), tod: int = 0, cpu_id: int = 0,
                    mem_size_real: int | None = None, real_cpu_cnt: int | None = None,
                    end_tod: int | None = None, version: int = DEFAULT_VERSION,
                    progress: ProgressFn | None = None) -> WriteResult:
    """Write memory [0, size) as an s390 dump to `path`, atomically (`.NAME.partial`, fsync,
    rename), reading it with `read(address, length)` in 4 MiB chunks.

    `prefixes` become lc_vec (cpu_cnt = their number); the CPUs' save areas must already be
    in their prefix pages in memory, as the stand-alone dumper leaves them. `mem_size_real`
    defaults to `size`, `real_cpu_cnt` to the number of prefixes, `end_tod` (the end
    marker's TOD) to `tod`. `progress(done, total)` is called about every 32 MiB and at the
    end. On any exception nothing is left under `path`.
    """
    if size <= 0 or size % PAGE_SIZE:
        raise ValueError(f"memory size {size:#x} must be a positive multiple of 4 KiB")
    header = S390Header(mem_size=size, version=version, tod=tod, cpu_id=cpu_id,
                        mem_size_real=mem_size_real, real_cpu_cnt=real_cpu_cnt,
                        lc_vec=tuple(prefixes))
    return _write(path, header, read, tod if end_tod is None else end_tod, progress)


def _write(path: str | os.PathLike[str], header: S390Header, read: ReadFn, end_tod: int,
           progress: ProgressFn | None) -> WriteResult:
    clock = Stopwatch()
    tracker = Progress(progress, header.mem_size)
    with atomic_output(path) as fd:
        written = write_all(fd, [header.pack()])
        for address, length in chunks(header.mem_start, header.mem_end):
            written += write_sparse(fd, read_exact(read, address, length))
            tracker.advance(length)
        written += write_all(fd, [end_marker(end_tod)])
        tracker.finish()
    return WriteResult(Path(path), written, clock.seconds(), header.mem_size // PAGE_SIZE, 0)


def rewrite_s390_dump(path: str | os.PathLike[str], dump: S390Dump, read: ReadFn,
                      progress: ProgressFn | None = None) -> WriteResult:
    """Write `dump`'s header (unchanged) and the memory `read` returns to `path`."""
    return _write(path, dump.header, read, dump.end_tod, progress)


# ---------------------------------------------------------------------------------------------
# Reading


def _check_magic(head: bytes, file_size: int) -> None:
    if file_size == 0:
        raise DumpFormatError("empty file, not an s390 dump")
    if len(head) < 8:
        raise DumpFormatError(f"not an s390 dump (only {file_size} bytes)")
    magic = int.from_bytes(head[:8], "big")
    if magic == S390_EXT_MAGIC:
        raise DumpFormatError("s390_ext dump format (segmented) is not supported, only s390")
    if magic != S390_MAGIC:
        raise DumpFormatError(f"not an s390 dump (bad magic {magic:#018x})")
    if len(head) < HEADER_SIZE:
        raise DumpFormatError(f"truncated s390 dump header ({file_size} of {HEADER_SIZE} "
                              "bytes)")


def _check_header(header: S390Header) -> None:
    problems = [
        (header.hdr_size != HEADER_SIZE, f"unsupported hdr_size {header.hdr_size:#x}"),
        (header.page_size != PAGE_SIZE, f"unsupported page_size {header.page_size}"),
        (header.arch != ARCH_S390X, f"not a 64-bit dump (arch {header.arch})"),
        (header.mem_end != header.mem_start + header.mem_size,
         (f"inconsistent header: mem_start {header.mem_start:#x} + mem_size "
          f"{header.mem_size:#x} != mem_end {header.mem_end:#x}")),
        (header.mem_size % PAGE_SIZE or header.mem_start % PAGE_SIZE,
         "memory is not page aligned in the header"),
        (header.mem_size > MAX_DUMP_MEMORY or header.mem_end > ADDRESS_LIMIT,
         (f"mem_size {header.mem_size:#x} at {header.mem_start:#x}: more than the "
          f"{MAX_DUMP_MEMORY >> 40} TiB an LPAR can have")),
    ]
    for bad, problem in problems:
        if bad:
            raise DumpFormatError(problem)


def _end_tod(file, header: S390Header, file_size: int) -> int:
    """The TOD of the end marker; files longer than the dump (a device copy) are fine."""
    marker_at = header.hdr_size + header.mem_size
    if file_size < marker_at + END_MARKER_SIZE:
        raise DumpFormatError(f"incomplete dump: no DUMP_END marker (file has {file_size:#x} "
                              f"of {marker_at + END_MARKER_SIZE:#x} bytes)")
    file.seek(marker_at)
    marker = file.read(END_MARKER_SIZE)
    if marker[:8] != END_MARKER_MAGIC:
        raise DumpFormatError(f"incomplete dump: no DUMP_END marker at {marker_at:#x}")
    return int.from_bytes(marker[8:], "big")


def _cpus(path: Path, header: S390Header) -> list[CpuStatus]:
    cpus = []
    for index, prefix in enumerate(header.lc_vec):
        area = prefix + SAVE_AREA_ADDRESS
        if prefix % LOWCORE_SIZE or area < header.mem_start or \
                area + SAVE_AREA_SIZE > header.mem_end:
            raise DumpFormatError(f"lc_vec[{index}] prefix {prefix:#x} is not a lowcore "
                                  "inside the dumped memory")
        cpus.append(CpuStatus.unpack(_read_memory(path, header, area, SAVE_AREA_SIZE)))
    return cpus


def read_s390_dump(path: str | os.PathLike[str]) -> S390Dump:
    """Read an s390 dump's header, end marker, per-CPU save areas (prefix + 0x1200 of each
    lc_vec entry) and the VMCOREINFO reachable through os_info.

    Raises DumpFormatError with a one-line message for a bad magic, a truncated header, an
    inconsistent header, prefixes outside memory, or a missing end marker ("incomplete dump:
    no DUMP_END marker"). OSError (missing file, no permission) passes through.
    """
    file_path = Path(path)
    try:
        with open_user_file(file_path, "dump") as file:
            file_size = os.fstat(file.fileno()).st_size
            head = file.read(HEADER_SIZE)
            _check_magic(head, file_size)
            header = S390Header.unpack(head)
            _check_header(header)
            end_tod = _end_tod(file, header, file_size)
        cpus = _cpus(file_path, header)
    except PARSER_ERRORS as error:
        raise malformed("s390 dump", error) from None

    def read(address: int, length: int) -> bytes:
        """Memory of the dump, zeros outside it (for the os_info lookup)."""
        return _read_memory(file_path, header, address, length, holes_as_zero=True)

    lookup = find_vmcoreinfo(read, header.mem_end) if header.mem_start == 0 else \
        OsInfoLookup(None, "memory does not start at 0")
    return S390Dump(file_path, file_size, header, end_tod, cpus, lookup)


def is_s390_dump(prefix: bytes) -> bool:
    """Whether a file starting with `prefix` claims to be an s390 (or s390_ext) dump."""
    return int.from_bytes(prefix[:8], "big") in (S390_MAGIC, S390_EXT_MAGIC)
