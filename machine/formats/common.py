"""What the dump writers and readers share: the error type, the write result, atomic output
(machine/userfiles.py), chunked memory walks with progress, and the fast all-zero page test."""

from __future__ import annotations

import errno
import os
import struct
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from machine.userfiles import atomic_output  # noqa: F401  (re-exported for the writers)

PAGE_SIZE = 4096
# Memory is read and written in chunks of this size: large enough that the per-chunk Python
# cost vanishes next to the copy, small enough to stay in the CPU caches' neighbourhood.
CHUNK_SIZE = 4 << 20
PROGRESS_STEP = 32 << 20
# os.writev takes at most IOV_MAX buffers (1024 on Linux).
IOV_MAX = 1024

ReadFn = Callable[[int, int], "bytes | bytearray | memoryview"]
ProgressFn = Callable[[int, int], None]

_ZERO_CHUNK = bytes(CHUNK_SIZE)


class DumpFormatError(ValueError):
    """A file that is not a valid dump of the expected format; the message is one line."""


# Bounds on what a dump file may claim, so that a crafted header cannot make a reader or a
# converter allocate, scan or write without limit (docs/FIDELITY.md "Dump files").
MAX_DUMP_MEMORY = 1 << 40  # 1 TiB: the largest LPAR a profile can define
MAX_NOTES_SIZE = 16 << 20  # one PT_NOTE; a real one is a few KiB per CPU
ADDRESS_LIMIT = 1 << 64


def malformed(what: str, error: BaseException) -> DumpFormatError:
    """The format error for a crafted field that overflowed a parser (struct.error,
    OverflowError, RecursionError, MemoryError): one line, never a traceback."""
    reason = {RecursionError: "nested too deeply", MemoryError: "a size too large to hold"}.get(
        type(error), str(error) or type(error).__name__)
    return DumpFormatError(f"malformed {what}: {reason}")


PARSER_ERRORS = (struct.error, OverflowError, RecursionError, MemoryError)


class AddressNotDumped(ValueError):
    """A read of old memory outside what the dump holds."""


@dataclass(frozen=True)
class WriteResult:
    """What a dump writer did: the final file, its size, the time taken and the pages."""

    path: Path
    bytes_written: int
    seconds: float
    pages_written: int
    pages_skipped: int

    @property
    def throughput(self) -> float:
        """Bytes of file per second."""
        return self.bytes_written / self.seconds if self.seconds > 0 else float("inf")


def partial_files(path: str | os.PathLike[str]) -> list[Path]:
    """The temporary files a write of `path` leaves while it runs: `.NAME.XXXX.partial`."""
    final = Path(path)
    return sorted(final.parent.glob(f".{final.name}.*.partial"))


def write_all(fd: int, buffers: Sequence[bytes | bytearray | memoryview]) -> int:
    """Write every buffer in order with as few system calls as possible; return the bytes."""
    total = 0
    pending = [memoryview(b).cast("B") for b in buffers if len(b)]
    while pending:
        batch = pending[:IOV_MAX]
        done = os.writev(fd, batch)
        total += done
        # Drop what was written; a short write leaves the tail of one buffer to retry.
        index = 0
        while index < len(batch) and done >= len(batch[index]):
            done -= len(batch[index])
            index += 1
        pending = pending[index:]
        if done:
            pending[0] = pending[0][done:]
    return total


def write_sparse(fd: int, data: bytes | bytearray | memoryview) -> int:
    """Write `data` at the file position, or, if it is all zeros, only move the position: the
    output is always a fresh regular file (machine/userfiles.AtomicFile), where skipped bytes
    read as zeros and cost no disk. A writer that may end on a skip calls end_sparse()."""
    raw = data if isinstance(data, (bytes, bytearray)) else _as_bytes(data)
    zero = _ZERO_CHUNK if len(raw) == CHUNK_SIZE else bytes(len(raw))
    if len(raw) >= PAGE_SIZE and raw == zero:
        os.lseek(fd, len(raw), os.SEEK_CUR)
        return len(raw)
    return write_all(fd, [raw])


def zero_bytes(length: int) -> bytes:
    """`length` zero bytes; a whole chunk is one shared object, which write_sparse() knows
    at once (an identity test), so that gigabytes of dumped-as-zero memory cost no time."""
    return _ZERO_CHUNK if length == CHUNK_SIZE else bytes(length)


def _as_bytes(view: memoryview) -> bytes:
    """The bytes under a memoryview, without a copy when it spans a whole bytes object."""
    whole = view.obj
    if isinstance(whole, bytes) and len(whole) == view.nbytes and view.c_contiguous:
        return whole
    return bytes(view)


def is_file_hole(fd: int, offset: int, length: int) -> bool:
    """Whether [offset, offset + length) of the file is all hole (reads as zeros, costs no
    reading): no data from `offset` on before its end (SEEK_DATA)."""
    try:
        return os.lseek(fd, offset, os.SEEK_DATA) >= offset + length
    except OSError as error:
        # ENXIO: no data after `offset` at all; anything else (no SEEK_DATA): read it.
        return error.errno == errno.ENXIO and os.fstat(fd).st_size >= offset + length


def end_sparse(fd: int) -> None:
    """Give the file the size of its position, in case the last bytes were skipped zeros."""
    os.ftruncate(fd, os.lseek(fd, 0, os.SEEK_CUR))


def read_exact(read: ReadFn, address: int, length: int) -> memoryview:
    """`read(address, length)` as a byte memoryview, checked to be `length` long."""
    data = memoryview(read(address, length)).cast("B")
    if len(data) != length:
        raise ValueError(f"memory read at {address:#x} returned {len(data):#x} bytes, "
                         f"expected {length:#x}")
    return data


def chunks(start: int, end: int, size: int = CHUNK_SIZE) -> Iterator[tuple[int, int]]:
    """(address, length) pieces of [start, end), each at most `size` long."""
    for address in range(start, end, size):
        yield address, min(size, end - address)


class Progress:
    """Calls `callback(done, total)` about every PROGRESS_STEP bytes, and once at the end."""

    def __init__(self, callback: ProgressFn | None, total: int) -> None:
        self.callback = callback
        self.total = total
        self.done = 0
        self._next = PROGRESS_STEP

    def advance(self, count: int) -> None:
        """Count `count` more bytes done; report if another step was passed."""
        self.done += count
        if self.callback is not None and self.done >= self._next:
            self.callback(self.done, self.total)
            self._next = (self.done // PROGRESS_STEP + 1) * PROGRESS_STEP

    def finish(self) -> None:
        """The final report (done, total)."""
        if self.callback is not None:
            self.callback(self.done, self.total)


class Stopwatch:
    """Seconds since creation, from the monotonic high-resolution clock."""

    def __init__(self) -> None:
        self._started = time.perf_counter()

    def seconds(self) -> float:
        """Seconds elapsed."""
        return time.perf_counter() - self._started


def page_align(value: int) -> int:
    """`value` rounded up to a multiple of PAGE_SIZE."""
    return -(-value // PAGE_SIZE) * PAGE_SIZE


def read_bytes(read: ReadFn, address: int, length: int) -> bytes | bytearray:
    """`read(address, length)` as bytes (copied only if it was not bytes already), checked to
    be `length` long. bytes.startswith and == compare with memcmp; memoryviews do not."""
    data = read(address, length)
    if not isinstance(data, (bytes, bytearray)):
        data = bytes(data)
    if len(data) != length:
        raise ValueError(f"memory read at {address:#x} returned {len(data):#x} bytes, "
                         f"expected {length:#x}")
    return data
