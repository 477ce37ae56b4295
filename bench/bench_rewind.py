"""Checkpoint, rewind and step-back benchmarks (issue 13). Prints figures measured in one
run; asserts nothing.

    python bench/bench_rewind.py [SIZE ...]    default: 256M 1G; 4 CPUs, 20 % in use

For each size: the cost of a checkpoint (ms, MiB of host memory it holds), rewind to the
first stage of the dump workflow, `step back 1` latency, and guest speed with automatic
checkpoints on against off (the same run, virtual ns per host second).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from console.control.session import Session

MIB = 1 << 20


def _ok(session: Session, line: str) -> None:
    result = session.execute(line)
    if not result.ok:
        raise SystemExit(f"{line}: {result.message}")


def _booted(size: str, workdir: Path, automatic: bool = True) -> Session:
    session = Session(workdir, "production", {"cpus": 4, "memory": _bytes(size), "workload": 20})
    _ok(session, "activate")
    session.lpar.checkpoints.automatic = automatic
    _ok(session, "load 0100")
    _ok(session, "wait-for stage workload-filled timeout=60s")
    return session


def _bytes(size: str) -> int:
    return int(size[:-1]) << {"M": 20, "G": 30}[size[-1]]


def _speed(size: str, workdir: Path, automatic: bool) -> float:
    """Virtual ns per host second with every CPU busy (`fault hang loop`)."""
    session = _booted(size, workdir, automatic)
    _ok(session, "fault hang loop")
    _ok(session, "run 1ms")
    started, t0 = time.perf_counter(), session.lpar.clock.now
    _ok(session, "run 10ms")
    rate = (session.lpar.clock.now - t0) / (time.perf_counter() - started)
    session.close()
    return rate


def bench(size: str) -> None:
    with tempfile.TemporaryDirectory(prefix="dumplab-bench-") as temporary:
        work = Path(temporary)
        session = _booted(size, work / "a", automatic=False)
        checkpoints = session.lpar.checkpoints
        started = time.perf_counter()
        node = checkpoints.save("filled")
        first = time.perf_counter() - started
        _ok(session, "run 2ms")
        started = time.perf_counter()
        later = checkpoints.save("later")
        second = time.perf_counter() - started
        print(f"{size}: checkpoint after the workload filled memory: {first * 1000:.0f} ms, "
              f"{node.delta_bytes / MIB:.1f} MiB; 2 ms later: {second * 1000:.0f} ms, "
              f"{later.delta_bytes / MIB:.2f} MiB; the shadow copy of storage costs what is in use")
        checkpoints.automatic = True
        _ok(session, "stop all")
        _ok(session, "restart 0")
        _ok(session, "wait-for event dump_written timeout=60s")
        started = time.perf_counter()
        _ok(session, "rewind purgatory-verify")
        print(f"{size}: rewind to purgatory-verify from the written vmcore: "
              f"{time.perf_counter() - started:.3f} s")
        started = time.perf_counter()
        _ok(session, "step back 1")
        print(f"{size}: step back 1: {time.perf_counter() - started:.3f} s")
        print(f"{size}: all checkpoints hold {checkpoints.host_bytes() / MIB:.1f} MiB")
        session.close()
        # Alternated and repeated: the host is shared, one pair alone is noise.
        rates: dict[bool, list[float]] = {False: [], True: []}
        for automatic in (False, True, False, True):
            rates[automatic].append(_speed(size, work / f"s{len(rates[automatic])}{automatic}",
                                           automatic))
        off, on = max(rates[False]), max(rates[True])
        print(f"{size}: guest speed, automatic checkpoints on/off: {on / off:.2f} "
              f"({on / 1e6:.1f} vs {off / 1e6:.1f} virtual ms per host s)")


if __name__ == "__main__":
    for size in sys.argv[1:] or ["256M", "1G"]:
        bench(size)
