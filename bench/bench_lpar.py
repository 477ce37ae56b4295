"""LPAR benchmarks (issue 2). Prints figures measured in one run; asserts nothing.

    python bench/bench_lpar.py            all
    python bench/bench_lpar.py speed      guest speed, 4 CPUs switching vs bare unicorn
    python bench/bench_lpar.py boot       activate + IPL of the default profile to the workload
    python bench/bench_lpar.py memory     RSS of 1 GiB and 4 GiB LPARs (grows with use only)
"""

from __future__ import annotations

import ctypes
import mmap
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from unicorn import UC_PROT_ALL
from unicorn.s390x_const import UC_S390X_REG_PSWM, UC_S390X_REG_R2

from machine.cpu import CpuState
from machine.engine import new_engine
from machine.events import EventBus
from machine.lpar import FREE_SLICE_US, Lpar
from machine.profile import Profile, parse_size

MS = 1_000_000
LOOP_ADDRESS = 0x8000
# Each loop counts its turns in r2; the value is the number of instructions per turn.
TIGHT_LOOP = bytes.fromhex("a72b0001" "a7f4fffe")  # aghi %r2,1 ; j 0x8000
MEMORY_LOOP = bytes.fromhex(  # the shape of the kernel's page fill: store, add, compare, branch
    "a7390000"      # 0x8000 lghi  %r3,0
    "a54e0010"      # 0x8004 llilh %r4,0x10          (r4 = 0x100000)
    "e33340000024"  # 0x8008 stg   %r3,0(%r3,%r4)
    "a73b0008"      # 0x800e aghi  %r3,8
    "a72b0001"      # 0x8012 aghi  %r2,1
    "a73e1000"      # 0x8016 chi   %r3,4096
    "a744fff7"      # 0x801a jl    0x8008
    "a7f4fff1"      # 0x801e j     0x8000
)
LOOPS = {TIGHT_LOOP: 2, MEMORY_LOOP: 5}
PSW_64_DISABLED = 0x0000000180000000


def bare_unicorn_rate(loop: bytes, seconds: float = 1.0) -> float:
    """Instructions per second of the loop on one engine with no hooks, running free."""
    size = 256 << 20
    storage = mmap.mmap(-1, size, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    anchor = ctypes.c_char.from_buffer(storage)
    uc = new_engine()
    uc.mem_map_ptr(0, size, UC_PROT_ALL, ctypes.addressof(anchor))
    storage[LOOP_ADDRESS:LOOP_ADDRESS + len(loop)] = loop
    uc.reg_write(UC_S390X_REG_PSWM, PSW_64_DISABLED)
    started = time.perf_counter()
    uc.emu_start(LOOP_ADDRESS, 0xFFFF_FFFF_FFFF_FFFE, timeout=int(seconds * 1e6))
    elapsed = time.perf_counter() - started
    return LOOPS[loop] * uc.reg_read(UC_S390X_REG_R2) / elapsed


def lpar_rate(loop: bytes, free_running: bool, cpus: int = 4, virtual_ms: int = 100) -> float:
    """Instructions per second of the same loop on every CPU of a booted LPAR."""
    with tempfile.TemporaryDirectory() as workdir:
        lpar = boot(Profile(cpus=cpus), Path(workdir), free_running)
        lpar.stop()
        lpar.storage.write(LOOP_ADDRESS, loop)
        lpar.flush_code()
        for cpu in lpar.cpus:
            cpu.set_psw(PSW_64_DISABLED, LOOP_ADDRESS)
            cpu.set_reg(UC_S390X_REG_R2, 0)
            lpar.set_state(cpu, CpuState.OPERATING)
        started = time.perf_counter()
        lpar.run(virtual_ms * MS)
        elapsed = time.perf_counter() - started
        executed = sum(LOOPS[loop] * cpu.reg(UC_S390X_REG_R2) for cpu in lpar.cpus)
        lpar.close()
    return executed / elapsed


def boot(profile: Profile, workdir: Path, free_running: bool = False) -> Lpar:
    lpar = Lpar(profile, workdir, EventBus(), free_running=free_running)
    lpar.activate()
    lpar.load(profile.boot_devno)
    if lpar.run_until(lambda e: e.kind == "stage" and e.stage == "workload", 5000 * MS) is None:
        raise SystemExit("the kernel did not reach the workload")
    return lpar


def bench_speed() -> None:
    for name, loop in (("tight register loop (aghi; j)", TIGHT_LOOP),
                       ("memory loop (stg; aghi; aghi; chi; jl)", MEMORY_LOOP)):
        bare = bare_unicorn_rate(loop)
        deterministic = lpar_rate(loop, free_running=False)
        free = lpar_rate(loop, free_running=True)
        print(f"guest speed, {name} on every CPU")
        print(f"  bare unicorn, 1 engine, no hooks, free running : {bare / 1e6:8.1f} M instructions/s")
        print(f"  LPAR 4 CPUs, deterministic (20k-instr. slices) : {deterministic / 1e6:8.1f} M/s"
              f"  ratio {deterministic / bare:.2f}")
        print(f"  LPAR 4 CPUs, free running ({FREE_SLICE_US} us slices)      : {free / 1e6:8.1f} M/s"
              f"  ratio {free / bare:.2f}  (aim >= 0.70)")


def bench_boot() -> None:
    with tempfile.TemporaryDirectory() as workdir:
        started = time.perf_counter()
        lpar = boot(Profile.builtin("default"), Path(workdir))
        elapsed = time.perf_counter() - started
        print(f"activate + IPL of the default profile (4 CPUs, 256M) to 'workload running on all "
              f"CPUs': {elapsed:.2f} s (aim < 2 s), virtual {lpar.clock.now / MS:.2f} ms")
        lpar.close()


def rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * mmap.PAGESIZE / (1 << 20)


def bench_memory() -> None:
    for size in ("1G", "4G"):
        with tempfile.TemporaryDirectory() as workdir:
            profile = Profile(memory=parse_size(size), workload=20, dump_size=parse_size("64M"))
            before = rss_mib()
            lpar = Lpar(profile, Path(workdir), EventBus())
            lpar.activate()
            activated = rss_mib()
            lpar.load(0x100)
            lpar.run_until(lambda e: e.kind == "stage" and e.stage == "workload", 5000 * MS)
            lpar.run(400 * MS)  # long enough to fill the workload's share
            used = rss_mib()
            lpar.close()
        print(f"{size} LPAR: RSS {before:7.1f} MiB before, {activated:7.1f} after activate "
              f"(+{activated - before:.1f}), {used:7.1f} with the workload filling 20% "
              f"(+{used - before:.1f}; 20% of {size} = {parse_size(size) * 0.2 / (1 << 20):.0f} MiB)")
    print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


BENCHES = {"speed": bench_speed, "boot": bench_boot, "memory": bench_memory}

if __name__ == "__main__":
    for name in sys.argv[1:] or list(BENCHES):
        BENCHES[name]()
