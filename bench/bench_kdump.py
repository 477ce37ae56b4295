"""kdump benchmarks (issue 3). Prints figures measured in one run; asserts nothing.

    python bench/bench_kdump.py           panic -> vmcore at 256 MiB and 1 GiB, and the
                                          purgatory's SHA-256 speed in emulated code
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from machine.events import EventBus
from machine.faults import inject
from machine.lpar import Lpar
from machine.profile import Profile, parse_size

MS = 1_000_000


def booted(size: str, workdir: Path) -> Lpar:
    lpar = Lpar(Profile(cpus=4, memory=parse_size(size), workload=20), workdir, EventBus())
    lpar.activate()
    lpar.load(0x100)
    lpar.run_until(lambda e: e.kind == "stage" and e.stage == "workload", 5000 * MS)
    lpar.os_command("kdump load")
    lpar.run_until(lambda e: e.kind == "kexec", 100 * MS)
    lpar.run(400 * MS)  # the workload fills its 20%
    return lpar


def cp_seconds(size: int, directory: Path) -> float:
    """Time `cp` copying a file of size bytes (written first, not timed), synced like ours."""
    source, target = directory / "cp-source", directory / "cp-target"
    with open(source, "wb") as f:
        block = os.urandom(1 << 20)
        f.writelines(block for _ in range(size >> 20))
        f.write(block[: size % (1 << 20)])
    subprocess.run(["sync"], check=True)
    started = time.perf_counter()
    subprocess.run(["cp", str(source), str(target)], check=True)
    subprocess.run(["sync", str(target)], check=True)
    elapsed = time.perf_counter() - started
    source.unlink()
    target.unlink()
    return elapsed


def bench_panic_to_vmcore(size: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        lpar = booted(size, workdir)
        hashed_bytes = sum(s.memsz for s in lpar.kdump.image.hashed)
        timings: dict[str, float] = {}
        checks: list[tuple[float, int, str]] = []

        def watch(event) -> None:
            if event.kind == "check" and "SHA-256" in event.what:
                checks.append((time.perf_counter(), event.t, event.what))
            if event.kind == "stage" and event.stage == "purgatory-verify" and event.status == "running":
                timings["verify"] = time.perf_counter()
                checks.append((timings["verify"], event.t, "start"))

        lpar.bus.subscribe(watch)
        started = time.perf_counter()
        inject(lpar, ["panic", "benchmark"])
        written = lpar.run_until(lambda e: e.kind == "dump_written", 20_000 * MS)
        wall = time.perf_counter() - started
        memory = parse_size(size)
        cp = cp_seconds(written.bytes, workdir)
        print(f"{size}, 4 CPUs, 20% in use: panic -> vmcore saved in {wall:.2f} s wall "
              f"(aim: 1 GiB under 10 s); vmcore {written.bytes / (1 << 20):.0f} MiB = "
              f"{written.bytes / memory:.3f} of memory (aim <= 0.25)")
        print(f"  vmcore write {written.bytes / written.seconds / 1e6:.0f} MB/s, cp of the same size "
              f"{written.bytes / cp / 1e6:.0f} MB/s: ratio {cp / written.seconds:.2f}")
        if size == "256M":
            print_sha_speed(hashed_bytes, checks[: 4])
        lpar.close()


def print_sha_speed(total_bytes: int, checks: list[tuple[float, int, str]]) -> None:
    """From the verify-mode check events: bytes hashed between two events, their wall time and
    their virtual time (one instruction per virtual nanosecond)."""
    wall = checks[-1][0] - checks[0][0]
    instructions = checks[-1][1] - checks[0][1]
    print(f"  purgatory SHA-256 in emulated code: {total_bytes / 1024:.0f} KiB in {wall * 1000:.0f} ms wall "
          f"= {total_bytes / wall / 1e6:.1f} MB/s, {instructions / total_bytes:.1f} instructions per byte")


if __name__ == "__main__":
    if shutil.which("cp") is None:
        raise SystemExit("cp is needed for the comparison")
    for memory_size in ("256M", "1G"):
        bench_panic_to_vmcore(memory_size)
