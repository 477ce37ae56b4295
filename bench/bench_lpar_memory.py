"""Native memory of a running LPAR over time (issue 12). Prints figures; asserts nothing.

    python bench/bench_lpar_memory.py                      1 minute, 256M LPAR, RSS every 10 s
    python bench/bench_lpar_memory.py --minutes 10 --every 60
    python bench/bench_lpar_memory.py --tcg-buffer 1024    unicorn's default buffer, to compare

A headless `dumplab run` activates the LPAR, IPLs the production kernel and runs its workload
(free-running, so it translates as much code per second as it can); this script samples the
child's RSS from /proc. The engine's translation buffer is capped by machine/engine.py
(TCG_BUFFER_SIZE); without the cap the RSS grew ~10 MB/s towards 1 GiB.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Runs the console's `run` with the buffer cap overridden (MiB, first argument).
CHILD = ("import sys, machine.engine as e\n"
         "e.TCG_BUFFER_SIZE = int(sys.argv.pop(1)) << 20\n"
         "from console.cli import main\n"
         "sys.exit(main(sys.argv[1:]))\n")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks of 10 ms


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=1.0, help="wall time (default: 1)")
    parser.add_argument("--every", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--memory", default="256M", help="the LPAR's storage (default: 256M)")
    parser.add_argument("--tcg-buffer", type=int, default=0, metavar="MIB",
                        help="override the engine's translation-buffer cap (MiB)")
    args = parser.parse_args()
    from machine.engine import TCG_BUFFER_SIZE
    cap = args.tcg_buffer or TCG_BUFFER_SIZE >> 20
    with tempfile.TemporaryDirectory(prefix="dumplab-bench-") as workdir:
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(cap), "run", "--memory", args.memory,
             "--workdir", workdir, "-c",
             "activate; load 0100; wait-for stage workload; run 1000000s"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print(f"LPAR {args.memory}, translation buffer cap {cap} MiB, "
              f"{args.minutes:g} min, pid {child.pid}")
        print(f"{'wall s':>7} {'RSS MiB':>8} {'CPU s':>7}")
        started = time.monotonic()
        try:
            while (elapsed := time.monotonic() - started) < args.minutes * 60:
                time.sleep(min(args.every, args.minutes * 60 - elapsed))
                if child.poll() is not None:
                    print(f"the LPAR process ended early ({child.returncode})")
                    return 1
                print(f"{time.monotonic() - started:7.0f} {rss_mib(child.pid):8.1f} "
                      f"{cpu_seconds(child.pid):7.1f}", flush=True)
        finally:
            child.kill()
            child.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
