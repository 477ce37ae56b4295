"""An idle LPAR costs the host a handful of engine entries a second; a spinning one still costs
what it runs (issue 12). Counts, not timings: the regression shows on any host."""

from __future__ import annotations

import struct
from pathlib import Path

from conftest import MS, Booted, boot_lpar

from machine.faults import inject
from machine.lpar import SLICE_INSTRUCTIONS, CpuState, Lpar

CPUS = 4
IDLE_SECONDS = 10
# Each CPU wakes once a second for its heartbeat; a wake-up is an external interruption and a
# few emulated instructions (STCK, SCKC, LPSWE), each one more entry into the engine.
MAX_ENTRIES_PER_WAKEUP = 10


def count_engine_entries(lpar: Lpar) -> list[int]:
    """Count the LPAR's emu_start calls from now on (every entry into unicorn)."""
    calls = [0]
    real = lpar.uc.emu_start

    def counted(*args, **kwargs):
        calls[0] += 1
        return real(*args, **kwargs)

    lpar.uc.emu_start = counted
    return calls


def settled(tmp_path: Path) -> Booted:
    """A booted LPAR whose workload filled its memory: every CPU idles."""
    b = boot_lpar(tmp_path, cpus=CPUS, memory=64 << 20, crashkernel=16 << 20)
    lpar = b.lpar
    assert lpar.run_until(lambda e: e.kind == "stage" and e.stage == "workload-filled", 2000 * MS)
    while any(cpu.state != CpuState.WAIT for cpu in lpar.cpus):
        lpar.run(SLICE_INSTRUCTIONS)
    return b


def heartbeats(lpar: Lpar) -> list[int]:
    return list(lpar.heartbeats() or ())


def test_an_idle_lpar_enters_the_engine_a_few_times_per_heartbeat(tmp_path: Path) -> None:
    b = settled(tmp_path)
    lpar = b.lpar
    before = heartbeats(lpar)
    entries = count_engine_entries(lpar)
    lpar.run(IDLE_SECONDS * 1000 * MS)
    # Before tickless idle: a 10 ms tick on every CPU, 16 000 entries for these 10 s.
    assert entries[0] <= CPUS * IDLE_SECONDS * MAX_ENTRIES_PER_WAKEUP, entries[0]
    # ... and the idle CPUs still live: one heartbeat a second each, whole seconds since boot.
    after = heartbeats(lpar)
    assert [a - b for a, b in zip(after, before)] == [IDLE_SECONDS] * CPUS
    assert all(cpu.state == CpuState.WAIT for cpu in lpar.cpus)
    # jiffies (10 ms ticks since boot) is caught up from the clock, though no CPU ticked.
    jiffies = struct.unpack(">Q", lpar.read(lpar.symbol("jiffies"), 8))[0]
    assert jiffies >= IDLE_SECONDS * 100
    lpar.close()


def test_a_command_wakes_an_idle_cpu_at_once(tmp_path: Path) -> None:
    b = settled(tmp_path)
    b.lpar.run(300 * MS)
    b.os_command("status", 2 * MS)  # far less than the time to the next heartbeat
    assert any(line.startswith("status: dumplab-1.0") for line in b.console())
    b.lpar.close()


def test_a_spinning_lpar_still_costs_what_it_runs(tmp_path: Path) -> None:
    """A hang on a settled system: the others wake on the hung CPU's signal and pile up
    behind its lock at once (not at their next heartbeat), and every round enters the engine
    for every CPU, as a spinning machine should."""
    b = settled(tmp_path)
    lpar = b.lpar
    inject(lpar, ["hang", "spin"])
    event = lpar.run_until(lambda e: e.kind == "hang", 50 * MS)
    assert event is not None
    lpar.run(2 * MS)
    for cpu in lpar.snapshot().cpus:
        function = lpar.program.symbol_at(cpu.psw_addr)[0]
        assert (cpu.state, function) == ("operating", "hang" if cpu.address == event.cpu else "spin_lock")
    entries = count_engine_entries(lpar)
    lpar.run(10 * MS)
    rounds = 10 * MS // SLICE_INSTRUCTIONS
    assert entries[0] >= CPUS * rounds, entries[0]
    lpar.close()
