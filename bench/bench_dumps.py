"""Dump speed and size against the disk (issue 17). Prints one table measured in one run;
asserts nothing.

    python bench/bench_dumps.py                       256M 1G 4G 8G, 4 CPUs
    python bench/bench_dumps.py --sizes 16G --cpus 16

For each size a child process (so that its peak RSS is its own) boots two LPARs with the
workload filling 20 % of memory: one panics with kdump loaded (panic -> vmcore), the other
hangs and is dumped by the stand-alone dumper (Load of the dump device -> s390 file). The copy
figures are taken in the same child right after, on the same byte count: `cp` then `sync` of
the vmcore file, and `dd bs=4M conv=fsync` of it (the fair peer: our writer fsyncs too).

Columns: panic -> vmcore wall seconds; vmcore MB/s (its bytes over the writer's own time) and
its ratio to cp+sync and to dd (peer seconds / ours: > 1 is faster than the peer; medians of 3
rounds), dd's MB/s with its range (how fast the shared disk was just then); full dump seconds
per GiB for the dumper's device write, the copy off the device, the whole Load-to-file, and
the CPU seconds (user + system) of Load-to-file, which the disk's swings do not move; peak
RSS and the guest memory in use; dump file sizes, apparent / on disk (MiB).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

MS = 1_000_000
GiB = 1 << 30
MiB = 1 << 20
WORKLOAD_PERCENT = 20


def _file_sizes(path: str) -> tuple[int, int]:
    status = os.stat(path)
    return status.st_size, status.st_blocks * 512


def _timed(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def copy_peers(source: str, directory: Path, rounds: int = 3) -> dict[str, float]:
    """cp then sync, and dd bs=4M conv=fsync, of the bytes of `source`, `rounds` times each
    (this disk is shared and its speed swings several-fold within seconds): the medians, and
    dd's slowest and fastest. Every copy goes to a new file and all are removed only at the
    end: on this VM a write into page-cache pages freed a moment before (a copy just deleted)
    runs ~10x faster than one into fresh pages, which the dump writer always gets."""
    cps, dds, targets = [], [], []
    for n in range(rounds):
        subprocess.run(["sync"], check=True)
        targets += [directory / f"peer-cp-{n}", directory / f"peer-dd-{n}"]
        cps.append(_timed(["sh", "-c", f'cp "{source}" "{targets[-2]}" && sync "{targets[-2]}"']))
        dds.append(_timed(["dd", f"if={source}", f"of={targets[-1]}", "bs=4M", "conv=fsync"]))
    for target in targets:
        target.unlink()
    return {"cp": statistics.median(cps), "dd": statistics.median(dds), "dd_min": min(dds),
            "dd_max": max(dds)}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def booted(size: str, cpus: int, workdir: Path, kdump: bool):
    """An LPAR running its workload (20 % of memory filled), kdump loaded or not."""
    from machine.events import EventBus
    from machine.lpar import Lpar
    from machine.profile import Profile, parse_size

    lpar = Lpar(Profile(cpus=cpus, memory=parse_size(size), workload=WORKLOAD_PERCENT),
                workdir, EventBus())
    lpar.activate()
    lpar.load(0x100)
    lpar.run_until(lambda e: e.kind == "stage" and e.stage == "workload", 20_000 * MS)
    if kdump:
        lpar.os_command("kdump load")
        lpar.run_until(lambda e: e.kind == "kexec", 100 * MS)
    lpar.run(700 * MS)  # the workload fills its 20 %
    return lpar


def kdump_figures(size: str, cpus: int, workdir: Path) -> dict:
    from machine.faults import inject

    lpar = booted(size, cpus, workdir, kdump=True)
    started = time.perf_counter()
    inject(lpar, ["panic", "benchmark"])
    written = lpar.run_until(lambda e: e.kind == "dump_written", 60_000 * MS)
    wall = time.perf_counter() - started
    lpar.close()
    peers = copy_peers(written.path, workdir)
    apparent, on_disk = _file_sizes(written.path)
    os.unlink(written.path)
    rate = written.bytes / written.seconds
    return {"vmcore_wall": wall, "vmcore_bytes": written.bytes, "vmcore_rate": rate,
            "vs_cp": peers["cp"] / written.seconds, "vs_dd": peers["dd"] / written.seconds,
            "dd_rate": written.bytes / peers["dd"],
            "dd_range": (written.bytes / peers["dd_max"], written.bytes / peers["dd_min"]),
            "vmcore_apparent": apparent, "vmcore_disk": on_disk}


def full_dump_figures(size: str, cpus: int, workdir: Path) -> dict:
    from bench_sadump import timed_full_dump

    from machine.faults import inject
    from machine.profile import parse_size

    lpar = booted(size, cpus, workdir, kdump=False)
    inject(lpar, ["hang", "spin"])
    lpar.run(5 * MS)
    lpar.stop()
    cpu = cpu_seconds()
    total, device_seconds, written = timed_full_dump(lpar, workdir)
    cpu = cpu_seconds() - cpu
    lpar.close()
    gib = parse_size(size) / GiB
    apparent, on_disk = _file_sizes(written.path)
    return {"device_per_gib": device_seconds / gib,
            "copy_per_gib": written.seconds / gib, "total_per_gib": total / gib,
            "cpu_per_gib": cpu / gib,
            "s390_apparent": apparent, "s390_disk": on_disk}


def one_size(size: str, cpus: int) -> dict:
    """Every figure of one size (run in a child process)."""
    with tempfile.TemporaryDirectory(prefix="dumplab-bench-") as tmp:
        figures = {"size": size, "cpus": cpus}
        kdump_dir, full_dir = Path(tmp) / "kdump", Path(tmp) / "full"
        kdump_dir.mkdir()
        full_dir.mkdir()
        figures.update(kdump_figures(size, cpus, kdump_dir))
        figures.update(full_dump_figures(size, cpus, full_dir))
    figures["rss_peak"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return figures


def print_table(rows: list[dict]) -> None:
    from machine.profile import parse_size

    print(f"{'size':>5} {'CPUs':>4} | {'panic->vmcore s':>15} {'vmcore MB/s':>11} "
          f"{'/cp':>5} {'/dd':>5} {'dd MB/s (range)':>17} | "
          f"{'full s/GiB: device':>18} {'copy':>5} {'total':>6} {'CPU':>5} | "
          f"{'RSS MiB':>7} {'in use':>6} | {'vmcore MiB app/disk':>19} {'s390 MiB app/disk':>17}")
    for r in rows:
        used = parse_size(r["size"]) * WORKLOAD_PERCENT // 100
        vmcore = f"{r['vmcore_apparent'] / MiB:.0f}/{r['vmcore_disk'] / MiB:.0f}"
        s390 = f"{r['s390_apparent'] / MiB:.0f}/{r['s390_disk'] / MiB:.0f}"
        low, high = r["dd_range"]
        dd = f"{r['dd_rate'] / 1e6:.0f} ({low / 1e6:.0f}-{high / 1e6:.0f})"
        print(f"{r['size']:>5} {r['cpus']:>4} | {r['vmcore_wall']:>15.2f} "
              f"{r['vmcore_rate'] / 1e6:>11.0f} {r['vs_cp']:>5.2f} {r['vs_dd']:>5.2f} {dd:>17} | "
              f"{r['device_per_gib']:>18.2f} {r['copy_per_gib']:>5.2f} {r['total_per_gib']:>6.2f} "
              f"{r['cpu_per_gib']:>5.2f} | "
              f"{r['rss_peak'] / MiB:>7.0f} {used / MiB:>6.0f} | {vmcore:>19} {s390:>17}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["256M", "1G", "4G", "8G"])
    parser.add_argument("--cpus", type=int, default=4)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # the child's job: one size, JSON out
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_size(args.one, args.cpus)))
        return 0
    rows = []
    for size in args.sizes:
        child = subprocess.run([sys.executable, __file__, "--one", size, "--cpus", str(args.cpus)],
                               check=False, capture_output=True, text=True, cwd=ROOT)
        if child.returncode:
            print(f"{size}: the child failed:\n{child.stderr[-2000:]}", file=sys.stderr)
            continue
        rows.append(json.loads(child.stdout.strip().splitlines()[-1]))
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
