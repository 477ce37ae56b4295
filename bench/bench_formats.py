"""Dump-file benchmarks: write throughput of write_vmcore and write_s390_dump against `cp`.
Prints figures measured in one run; asserts nothing.

    python bench/bench_formats.py [SIZE_MIB] [DIR]     default 1024 MiB, in a temporary dir

The memory image is SIZE_MIB of anonymous memory (like the LPAR's storage) in which 20% of the
pages, chosen at random, hold data and the rest are zero. The same bytes are written to a file
and copied with `cp` (page cache to page cache), then with `cp` plus `sync FILE` (our writers
fsync before the rename, so that is the like-for-like figure). Each writer's time is given as
a ratio to each `cp` time: below 1.0 is faster than cp, the target is at most 2.0.
"""

from __future__ import annotations

import mmap
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from machine.formats import vmcore_notes, write_s390_dump, write_vmcore
from machine.status import CpuStatus

PAGE = 4096
NONZERO_SHARE = 0.20


def memory_image(size: int, seed: int = 1) -> mmap.mmap:
    """Anonymous memory with NONZERO_SHARE of its pages filled with data."""
    image = mmap.mmap(-1, size, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    rng = random.Random(seed)
    pattern = rng.randbytes(PAGE)
    for page in range(size // PAGE):
        if rng.random() < NONZERO_SHARE:
            image[page * PAGE:(page + 1) * PAGE] = pattern
            image[page * PAGE:page * PAGE + 8] = page.to_bytes(8, "big")
    return image


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def best_of(runs: int, action) -> float:
    return min(timed(action) for _ in range(runs))


def cp_times(image: mmap.mmap, folder: Path) -> tuple[float, float]:
    """Seconds for `cp` of a file of the image's bytes, without and with `sync FILE`."""
    source, target = folder / "image.raw", folder / "image.copy"
    source.write_bytes(image)
    subprocess.run(["sync", str(source)], check=True)

    def cp() -> None:
        target.unlink(missing_ok=True)
        subprocess.run(["cp", str(source), str(target)], check=True)

    def cp_sync() -> None:
        cp()
        subprocess.run(["sync", str(target)], check=True)

    plain, synced = best_of(3, cp), best_of(3, cp_sync)
    source.unlink()
    target.unlink()
    return plain, synced


def status(prefix: int) -> CpuStatus:
    return CpuStatus(psw_mask=0x0706C00180000000, psw_addr=0x3D1326,
                     gprs=tuple(range(16)), crs=(0,) * 16, ars=(0,) * 16, fprs=(0,) * 16,
                     fpc=0, prefix=prefix, cpu_timer=0, clock_comparator=0,
                     tod_programmable=0)


def main() -> None:
    size = int(sys.argv[1]) << 20 if len(sys.argv) > 1 else 1 << 30
    with tempfile.TemporaryDirectory(dir=sys.argv[2] if len(sys.argv) > 2 else None) as name:
        folder = Path(name)
        image = memory_image(size)
        view = memoryview(image)

        def read(address: int, length: int) -> memoryview:
            return view[address:address + length]

        plain, synced = cp_times(image, folder)
        notes = vmcore_notes([status(0x10000), status(0x12000)], "OSRELEASE=bench\n")
        writers = {
            "write_vmcore (zero pages filtered)": lambda: write_vmcore(
                folder / "vmcore", notes, [(0, size)], read),
            "write_vmcore (unfiltered)": lambda: write_vmcore(
                folder / "vmcore", notes, [(0, size)], read, filter_zero_pages=False),
            "write_s390_dump": lambda: write_s390_dump(
                folder / "dump.s390", read, size, prefixes=[0x10000, 0x12000]),
        }
        mib = size >> 20
        print(f"memory: {mib} MiB, {NONZERO_SHARE:.0%} of the pages non-zero (random pages)")
        print(f"cp:              {plain:7.3f} s  {mib / plain:8.0f} MiB/s")
        print(f"cp + sync FILE:  {synced:7.3f} s  {mib / synced:8.0f} MiB/s")
        for label, write in writers.items():
            results = [write() for _ in range(3)]
            best = min(results, key=lambda result: result.seconds)
            print(f"{label}: {best.seconds:7.3f} s  {mib / best.seconds:8.0f} MiB/s of memory, "
                  f"file {best.bytes_written >> 20} MiB; ratio to cp {best.seconds / plain:.2f},"
                  f" to cp + sync {best.seconds / synced:.2f}")
        view.release()
        image.close()


if __name__ == "__main__":
    main()
