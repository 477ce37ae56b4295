"""Stand-alone dump benchmarks (issue 4). Prints figures measured in one run; asserts nothing.

    python bench/bench_sadump.py          full dump of 1 GiB and 4 GiB vs cp; kdump through the
                                          dumper vs a full dump at 1 GiB
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_kdump import cp_seconds

from machine.dumptools import zgetdump_image
from machine.events import EventBus
from machine.faults import inject
from machine.lpar import Lpar
from machine.profile import Profile, parse_size

MS = 1_000_000
GiB = 1 << 30


def hung(size: str, workdir: Path, kdump: bool) -> Lpar:
    lpar = Lpar(Profile(cpus=4, memory=parse_size(size), workload=20), workdir, EventBus())
    lpar.activate()
    lpar.load(0x100)
    lpar.run_until(lambda e: e.kind == "stage" and e.stage == "workload", 5000 * MS)
    if kdump:
        lpar.os_command("kdump load")
        lpar.run_until(lambda e: e.kind == "kexec", 100 * MS)
    lpar.run(700 * MS)  # the workload fills its 20%
    inject(lpar, ["hang", "spin"])
    lpar.run(5 * MS)
    lpar.stop()
    return lpar


def timed_full_dump(lpar, out_dir: Path):
    """Load the dump device with store status on a stopped LPAR and time it: (wall seconds
    from Load to the file, the dumper's device write seconds or None, the dump_written event
    of kdump or zgetdump's copy of the full dump, which stays on the device)."""
    marks: dict[str, float] = {}

    def watch(event) -> None:
        if event.kind == "stage" and event.stage == "full-dump" and event.status == "running":
            marks["write"] = time.perf_counter()
        if event.kind == "console" and event.text == "Dump successful":
            marks["written"] = time.perf_counter()

    lpar.bus.subscribe(watch)
    started = time.perf_counter()
    lpar.load(0x200, store_status=True)
    written = lpar.run_until(lambda e: e.kind == "dump_written" or (
        e.kind == "stage" and e.stage == "full-dump" and e.status in ("done", "failed")),
        600_000 * MS)
    assert written is not None and getattr(written, "status", "done") == "done", written
    if written.kind == "stage":  # the full dump stays on the device: copy it off (zgetdump)
        written = zgetdump_image(lpar.devices[0x200].path, out_dir / "dump.s390", "s390")
    wall = time.perf_counter() - started
    device_seconds = marks["written"] - marks["write"] if "written" in marks else None
    return wall, device_seconds, written


def dump_through_the_dumper(size: str, kdump: bool):
    """(wall seconds from Load to the file, the dumper's device write seconds, event)."""
    with tempfile.TemporaryDirectory() as tmp:
        lpar = hung(size, Path(tmp), kdump)
        wall, device_seconds, written = timed_full_dump(lpar, Path(tmp))
        cp = cp_seconds(written.bytes, Path(tmp)) if not kdump else None
        lpar.close()
    return wall, device_seconds, written, cp


def bench_full_dumps() -> None:
    for size in ("1G", "4G"):
        wall, device_seconds, written, cp = dump_through_the_dumper(size, kdump=False)
        gib = parse_size(size) / GiB
        rate = written.bytes / device_seconds / 1e6
        print(f"full dump of {size}: dumper writes the device at {rate:.0f} MB/s "
              f"({device_seconds / gib:.2f} s per GiB), cp {written.bytes / cp / 1e6:.0f} MB/s: "
              f"ratio {cp / device_seconds:.2f} (aim >= 0.5); copy off the device "
              f"{written.seconds / gib:.2f} s per GiB; Load to file {wall:.1f} s")


def bench_kdump_vs_full() -> None:
    kdump_wall, _, kdump_written, _ = dump_through_the_dumper("1G", kdump=True)
    full_wall, _, full_written, _ = dump_through_the_dumper("1G", kdump=False)
    print("1G, 20% in use, hang -> Load of the dump device -> file:")
    print(f"  kdump vmcore via the dumper: {kdump_wall:6.2f} s, {kdump_written.bytes / (1 << 20):7.0f} MiB")
    print(f"  full dump (s390 format)    : {full_wall:6.2f} s, {full_written.bytes / (1 << 20):7.0f} MiB")


if __name__ == "__main__":
    bench_full_dumps()
    bench_kdump_vs_full()
