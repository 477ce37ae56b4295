"""Absolute storage: one anonymous mmap, mapped into unicorn with mem_map_ptr.

The guest, the host and the dump writers all see the same bytes with no copy. Pages never
touched cost no host memory, so a 4 GiB LPAR activates instantly. Clearing uses
MADV_DONTNEED, which returns the pages to the host and reads back as zeros.
"""

from __future__ import annotations

import ctypes
import mmap
import resource

PAGE_SIZE = 4096


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
