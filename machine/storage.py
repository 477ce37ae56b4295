"""Absolute storage: one anonymous mmap, mapped into unicorn with mem_map_ptr.

The guest, the host and the dump writers all see the same bytes with no copy. Pages never
touched cost no host memory, so a 4 GiB LPAR activates instantly. Clearing uses
MADV_DONTNEED, which returns the pages to the host and reads back as zeros.

The dump writers ask which pages hold data (nonzero_runs): the host's page table says which
pages were never touched (they are zeros without being read), and the others are compared
with a zero page a block, then a page, at a time, in C (bytes.find on a window exactly the
size of the zero needle is one memcmp), never per byte in Python.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import re
import resource

PAGE_SIZE = 4096
# Zero test granularity above the page: an all-zero block costs one compare.
SCAN_BLOCK = 1 << 20
_ZERO_PAGE = bytes(PAGE_SIZE)
_ZERO_BLOCK = bytes(SCAN_BLOCK)
# /proc/self/pagemap: one little-endian u64 per page; bit 63 present, bit 62 swapped. A page
# of private anonymous memory that is neither was never written (or was given back): zeros.
_PAGEMAP_ENTRY = 8
_PAGEMAP_BATCH = 1 << 16  # entries read at a time (256 MiB of storage, 512 KiB of pagemap)
_IN_USE = bytes(1 if byte & 0xC0 else 0 for byte in range(256))
_ONES = re.compile(rb"\x01+")


def nonzero_page_runs(buffer, start: int, end: int) -> list[tuple[int, int]]:
    """The runs [a, b) of 4 KiB pages of buffer[start:end] that hold a non-zero byte, in
    order. `buffer` is anything with bytes' find (bytes, bytearray, mmap); start and end are
    page multiples apart. Whole zero blocks cost one compare, other pages one compare each."""
    if (end - start) % PAGE_SIZE:
        raise ValueError(f"{start:#x}-{end:#x} is not a whole number of pages")
    is_zero = _zero_test(buffer)
    flags = bytearray()
    for block in range(start, end, SCAN_BLOCK):
        stop = min(block + SCAN_BLOCK, end)
        if stop - block == SCAN_BLOCK and is_zero(_ZERO_BLOCK, block):
            flags += bytes(SCAN_BLOCK // PAGE_SIZE)
            continue
        flags += bytes([not is_zero(_ZERO_PAGE, page) for page in range(block, stop, PAGE_SIZE)])
    return [(start + m.start() * PAGE_SIZE, start + m.end() * PAGE_SIZE)
            for m in _ONES.finditer(flags)]


def _zero_test(buffer):
    """is_zero(zeros, at): whether buffer[at:at + len(zeros)] equals `zeros`, as one memcmp.
    bytes.startswith is one; an mmap has no startswith, but its find() compares a window the
    size of the needle directly (bytes.find would first preprocess the 4 KiB needle)."""
    if isinstance(buffer, (bytes, bytearray)):
        return buffer.startswith
    find = buffer.find
    return lambda zeros, at: find(zeros, at, at + len(zeros)) == at


def _merge_runs(runs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for run in runs:
        if merged and merged[-1][1] == run[0]:
            merged[-1] = (merged[-1][0], run[1])
        else:
            merged.append(run)
    return merged


class StorageError(ValueError):
    """An access outside the configured storage."""


def host_memory_available() -> int | None:
    """Bytes the host can still give: MemAvailable plus free swap (None if unknown)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            fields = dict(line.split(":", 1) for line in meminfo if ":" in line)
        return sum(int(fields[key].split()[0]) * 1024 for key in ("MemAvailable", "SwapFree")
                   if key in fields)
    except (OSError, ValueError):
        return None


def check_host_can_back(size: int) -> None:
    """Refuse storage the host could not back if the guest touched it all: more than the
    host's available memory, or than the address-space limit (RLIMIT_AS). The mmap itself
    costs nothing until touched, so without this check a 64G LPAR activates and the host
    starts killing processes once the guest writes its memory."""
    available = host_memory_available()
    if available is not None and size > available:
        raise StorageError(f"{size >> 20} MiB of storage is more than this host can back "
                           f"({available >> 20} MiB available)")
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY and size > soft:
        raise StorageError(f"{size >> 20} MiB of storage is more than this process may map "
                           f"(RLIMIT_AS {soft >> 20} MiB)")


class Storage:
    """The LPAR's absolute storage."""

    def __init__(self, size: int) -> None:
        if size <= 0 or size % (1 << 20):
            raise StorageError(f"storage size {size:#x} must be a positive multiple of 1 MiB")
        check_host_can_back(size)
        self.size = size
        try:
            self._map = mmap.mmap(-1, size, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        except OSError as error:  # ENOMEM: the kernel's overcommit check said no
            raise StorageError(f"{size >> 20} MiB of storage: the host refused the memory "
                               f"({error.strerror})") from None
        self._anchor = ctypes.c_char.from_buffer(self._map)
        self.address = ctypes.addressof(self._anchor)
        self.view = memoryview(self._map)
        self._watched: dict[tuple[int, int], bytes] = {}

    def check(self, address: int, length: int) -> None:
        if address < 0 or length < 0 or address + length > self.size:
            raise StorageError(
                f"storage range {address:#x}+{length:#x} is outside the {self.size >> 20} MiB of storage"
            )

    def read(self, address: int, length: int) -> bytes:
        self.check(address, length)
        return bytes(self.view[address:address + length])

    def write(self, address: int, data: bytes | memoryview) -> None:
        self.check(address, len(data))
        self.view[address:address + len(data)] = data

    def u64(self, address: int) -> int:
        return int.from_bytes(self.read(address, 8), "big")

    def u32(self, address: int) -> int:
        return int.from_bytes(self.read(address, 4), "big")

    def u16(self, address: int) -> int:
        return int.from_bytes(self.read(address, 2), "big")

    def put_u64(self, address: int, value: int) -> None:
        self.write(address, (value & (1 << 64) - 1).to_bytes(8, "big"))

    def put_u32(self, address: int, value: int) -> None:
        self.write(address, (value & 0xFFFFFFFF).to_bytes(4, "big"))

    def put_u16(self, address: int, value: int) -> None:
        self.write(address, (value & 0xFFFF).to_bytes(2, "big"))

    def nonzero_runs(self, start: int, end: int) -> list[tuple[int, int]]:
        """The runs [a, b) of pages in [start, end) (page aligned) that hold a non-zero
        byte. Pages the host never gave this storage are skipped without being read (so a
        dump of a mostly idle 16 GiB LPAR neither scans nor faults in 13 GiB of zeros)."""
        self.check(start, end - start)
        runs: list[tuple[int, int]] = []
        for low, high in self._resident_runs(start, end):
            runs += nonzero_page_runs(self._map, low, high)
        return _merge_runs(runs)

    def _resident_runs(self, start: int, end: int) -> list[tuple[int, int]]:
        """Runs of pages in [start, end) that the host backs (present or swapped); the whole
        range if the host's page table cannot be read."""
        try:
            fd = os.open("/proc/self/pagemap", os.O_RDONLY)
        except OSError:
            return [(start, end)] if start < end else []
        runs: list[tuple[int, int]] = []
        try:
            first = (self.address + start) // PAGE_SIZE
            for page in range(start // PAGE_SIZE, -(-end // PAGE_SIZE), _PAGEMAP_BATCH):
                count = min(_PAGEMAP_BATCH, -(-end // PAGE_SIZE) - page)
                at = (first + page - start // PAGE_SIZE) * _PAGEMAP_ENTRY
                entries = os.pread(fd, count * _PAGEMAP_ENTRY, at)
                if len(entries) != count * _PAGEMAP_ENTRY:
                    return [(start, end)]
                flags = entries[7::_PAGEMAP_ENTRY].translate(_IN_USE)
                runs += [((page + m.start()) * PAGE_SIZE, (page + m.end()) * PAGE_SIZE)
                         for m in _ONES.finditer(flags)]
        except OSError:
            return [(start, end)]
        finally:
            os.close(fd)
        return [(max(a, start), min(b, end)) for a, b in _merge_runs(runs)]

    def clear(self) -> None:
        """Zero all storage and give the pages back to the host (Load clear, Reset clear)."""
        self._map.madvise(mmap.MADV_DONTNEED)

    def changed_ranges(self, ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """Of the given (address, length) ranges, those whose bytes changed since the last call
        that watched them. Cost is the size of the ranges, not of storage."""
        changed = []
        for address, length in ranges:
            current = self.read(address, length)
            if self._watched.get((address, length)) not in (None, current):
                changed.append((address, length))
            self._watched[(address, length)] = current
        return changed

    def close(self) -> None:
        """Unmap; the engine that mapped this storage must be gone first."""
        del self._anchor
        self.view.release()
        self._map.close()
