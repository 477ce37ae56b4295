"""The fast dump paths (issue 17) write exactly what the plain algorithm writes.

Each fast path is compared, on the same memory, with a reference kept here: today's
algorithm written plainly (every page compared in Python, every byte written). The storage
scan, the sparse device writes, the vmcore save and the copy off the device are covered."""

from __future__ import annotations

import os
import random
import struct
from pathlib import Path

import pytest
from full_dumps import wait_for_full_dump
from test_sadump import hung_system, stop_and_load_dumper

from machine.devices import BLOCK_SIZE, Device
from machine.formats.elfcore import write_vmcore
from machine.formats.notes import vmcore_notes
from machine.kdump import OldMemory
from machine.storage import Storage, nonzero_page_runs

PAGE = 4096
MEMORY = 16 << 20
ZERO_PAGE = bytes(PAGE)
DUMP_AREA_BLOCK = 256  # assets/src/dumper/dumper.c: the dump starts 1 MiB into the device


# --- the reference: today's algorithm, plainly --------------------------------------------------
def plain_nonzero_runs(memory: bytes, start: int, end: int) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for page in range(start, end, PAGE):
        if memory[page:page + PAGE] == ZERO_PAGE:
            continue
        if runs and runs[-1][1] == page:
            runs[-1] = (runs[-1][0], page + PAGE)
        else:
            runs.append((page, page + PAGE))
    return runs


def plain_vmcore(notes: bytes, ranges: list[tuple[int, int]], memory: bytes) -> bytes:
    """The ELF core of elfcore's docstring: a PT_LOAD per non-zero run, the zero pages after
    it in its memsz, a leading zero stretch as a PT_LOAD with no file bytes."""
    segments = []  # (start, filesz, memsz)
    for start, end in ranges:
        runs = plain_nonzero_runs(memory, start, end)
        if not runs:
            segments.append((start, 0, end - start))
            continue
        if runs[0][0] > start:
            segments.append((start, 0, runs[0][0] - start))
        for index, (a, b) in enumerate(runs):
            following = runs[index + 1][0] if index + 1 < len(runs) else end
            segments.append((a, b - a, following - a))
    phnum = 1 + len(segments)
    note_offset = -(-(64 + 56 * phnum) // PAGE) * PAGE
    offset = -(-(note_offset + len(notes)) // PAGE) * PAGE
    head = struct.pack(">16sHHIQQQIHHHHHH", b"\x7fELF\x02\x02\x01" + bytes(9), 4, 22, 1, 0, 64,
                       0, 0, 64, 56, phnum, 0, 0, 0)
    head += struct.pack(">IIQQQQQQ", 4, 0, note_offset, 0, 0, len(notes), len(notes), 0)
    body = b""
    for start, filesz, memsz in segments:
        head += struct.pack(">IIQQQQQQ", 1, 7, offset + len(body), start, start, filesz, memsz,
                            PAGE)
        body += memory[start:start + filesz]
    head = head.ljust(note_offset, b"\0") + notes
    return head.ljust(offset, b"\0") + body


def scattered_storage(seed: int) -> Storage:
    """Storage with data pages, zero pages written over, whole zero MiBs, untouched stretches
    and pages given back to the host (cleared)."""
    rng = random.Random(seed)
    storage = Storage(MEMORY)
    for _ in range(120):
        at = rng.randrange(0, MEMORY - 3 * PAGE)
        storage.write(at, bytes(rng.randrange(1, 256) for _ in range(rng.choice((1, 9, 300)))))
    storage.write(5 << 20, os.urandom(2 << 20))          # dense data
    storage.write(6 << 20, bytes(PAGE * 3))               # ... with written zero pages in it
    storage.write(9 << 20, bytes(1 << 20))                # a touched, all-zero MiB
    storage.view[12 << 20:13 << 20] = os.urandom(1 << 20)
    return storage


def test_the_storage_scan_finds_exactly_the_pages_a_plain_compare_finds():
    storage = scattered_storage(17)
    plain = bytes(storage.view)
    for start, end in [(0, MEMORY), (PAGE, 7 << 20), (6 << 20, (6 << 20) + 5 * PAGE)]:
        expected = plain_nonzero_runs(plain, start, end)
        assert storage.nonzero_runs(start, end) == expected
        # The same scan on bytes and on a bytearray (the device's and the writers' path).
        assert [(a + start, b + start) for a, b in nonzero_page_runs(plain[start:end], 0, end - start)] == expected
        assert [(a + start, b + start) for a, b in nonzero_page_runs(bytearray(plain[start:end]), 0, end - start)] == expected
    storage.clear()  # given back: reads as zeros, and the scan says so
    assert storage.nonzero_runs(0, MEMORY) == []
    storage.close()


def test_the_vmcore_from_the_page_scan_is_byte_identical_to_the_plain_writer(tmp_path):
    storage = scattered_storage(3)
    # A swap as the purgatory leaves it: [0, 2 MiB) now lives at 8 MiB and back.
    old = OldMemory(storage, 8 << 20, 2 << 20)
    ranges = [(0, 8 << 20), (10 << 20, MEMORY)]  # the crashkernel region [8, 10) MiB left out
    plain_memory = b"".join(bytes(old.read(a, PAGE)) for a in range(0, MEMORY, PAGE))
    notes = vmcore_notes([], "OSRELEASE=test\n")
    fast = write_vmcore(tmp_path / "fast", notes, ranges, old.read, nonzero_runs=old.nonzero_runs)
    assert (tmp_path / "fast").read_bytes() == plain_vmcore(notes, ranges, plain_memory)
    # The read-only scan (no storage behind the reader) gives the same file too.
    write_vmcore(tmp_path / "read", notes, ranges, lambda a, n: plain_memory[a:a + n])
    assert (tmp_path / "read").read_bytes() == (tmp_path / "fast").read_bytes()
    assert fast.pages_skipped > 0
    storage.close()


def test_a_device_write_is_sparse_and_reads_back_as_a_plain_write(tmp_path):
    device = Device(0x200, "dump", tmp_path / "dev.img", 8 << 20)
    storage = scattered_storage(5)
    plain = bytearray(8 << 20)
    for block, source in [(0, 0), (256, 5 << 20), (0, 9 << 20), (100, 12 << 20)]:
        data = storage.view[source:source + (1 << 20)]
        runs = storage.nonzero_runs(source, source + (1 << 20))
        device.write_blocks(block, data, [(a - source, b - source) for a, b in runs])
        plain[block * BLOCK_SIZE:block * BLOCK_SIZE + (1 << 20)] = data
        data.release()
    device.write_blocks(1024, bytes(PAGE) + b"x" * PAGE)  # no scan given: the device's own
    plain[1024 * BLOCK_SIZE:1026 * BLOCK_SIZE] = bytes(PAGE) + b"x" * PAGE
    assert device.path.read_bytes() == bytes(plain)
    # Block 0.. was written with data, then with a zero MiB: punched back into a hole.
    assert device.data_extents(0, 100 * BLOCK_SIZE) == []
    on_disk = os.stat(device.path).st_blocks * 512
    assert on_disk <= sum(b - a for a, b in device.data_extents(0, 8 << 20)) + (1 << 20)
    held = device.data_blocks(0, device.blocks)
    assert {b: bytes(plain[b * BLOCK_SIZE:(b + 1) * BLOCK_SIZE]) for b in held} == held
    assert set(held) == {b for b in range(device.blocks)
                         if plain[b * BLOCK_SIZE:(b + 1) * BLOCK_SIZE] != ZERO_PAGE}
    storage.close()


@pytest.mark.timeout(120)
def test_the_full_dump_file_is_the_device_and_memory_byte_for_byte_and_sparse(tmp_path):
    hung = hung_system(tmp_path, kdump=False, cpus=2)
    stop_and_load_dumper(hung)
    written = wait_for_full_dump(hung.lpar)  # copied off the device as zgetdump does
    lpar = hung.lpar
    device = lpar.devices[lpar.profile.dump_devno]
    data = Path(written.path).read_bytes()
    # The plain copy: every byte of the device's dump area, holes read as zeros.
    assert device.read_blocks(DUMP_AREA_BLOCK, -(-len(data) // BLOCK_SIZE))[:len(data)] == data
    # Beyond the dumper's own pages, the memory image is storage as the dumper left it.
    size = lpar.storage.size
    assert len(data) > size
    assert data[0x1000 + 0x10000:0x1000 + size] == bytes(lpar.storage.view[0x10000:size])
    assert os.stat(written.path).st_blocks * 512 < len(data) // 2  # mostly zeros: holes
    lpar.close()

