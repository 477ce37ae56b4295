"""Each hang leaves the CPUs where a real machine would; runs are deterministic; runaway guest
code never keeps the host."""

from __future__ import annotations

import struct
import time

import pytest
from conftest import MS, boot_lpar

from machine.faults import FaultError, inject
from machine.lpar import HmcError

INTERRUPTS_MASK = 0x0300000000000000  # I/O and external


def hang(tmp_path, kind: str, cpus: int = 3):
    b = boot_lpar(tmp_path, cpus=cpus)
    b.lpar.run(25 * MS)
    inject(b.lpar, ["hang", kind])
    event = b.lpar.run_until(lambda e: e.kind == "hang", 50 * MS)
    assert event is not None and event.hang == kind
    b.lpar.run(5 * MS)
    return b, event


def heartbeats_stopped(lpar) -> bool:
    before = lpar.heartbeats()
    lpar.run(25 * MS)  # more than two ticks
    return lpar.heartbeats() == before


def function_of(lpar, address: int) -> str:
    return lpar.program.symbol_at(address)[0]


def test_spin_holds_the_lock_disabled_and_the_others_spin_behind_it(tmp_path):
    b, event = hang(tmp_path, "spin")
    lpar = b.lpar
    assert heartbeats_stopped(lpar)
    lock = lpar.symbol("workload_lock")
    assert event.lock == lock
    assert struct.unpack(">I", lpar.read(lock, 4))[0] == event.cpu + 1  # owner = CPU + 1
    for cpu in lpar.snapshot().cpus:
        assert cpu.state == "operating"
        assert cpu.psw_mask & INTERRUPTS_MASK == 0, f"CPU {cpu.address} is enabled"
        expected = "hang" if cpu.address == event.cpu else "spin_lock"
        assert function_of(lpar, cpu.psw_addr) == expected
    assert lpar.status == "operating"  # the HMC sees nothing wrong: the system is just dead
    # The operator's commands are no longer answered.
    console_before = len(b.console())
    lpar.os_command("status")
    lpar.run(20 * MS)
    assert len(b.console()) == console_before + 1  # only the echo of the command


def test_wait_stops_the_others_and_shows_the_disabled_wait_code(tmp_path):
    b, event = hang(tmp_path, "wait")
    lpar = b.lpar
    assert heartbeats_stopped(lpar)
    snap = lpar.snapshot()
    hung = snap.cpus[event.cpu]
    assert hung.state == "disabled wait"
    assert hung.wait_code == hung.psw_addr == lpar.symbol("hang_wait")
    assert hung.psw_mask & 0x0002000000000000  # the wait bit
    assert [c.state for c in snap.cpus if c.address != event.cpu] == ["stopped", "stopped"]
    assert lpar.status == "exceptions"
    wait = b.log.of_kind("wait")[-1]
    assert (wait.cpu, wait.code) == (event.cpu, lpar.symbol("hang_wait"))


def test_deadlock_leaves_every_cpu_spinning_disabled(tmp_path):
    b, event = hang(tmp_path, "deadlock")
    lpar = b.lpar
    assert heartbeats_stopped(lpar)
    lock_b = lpar.symbol("lock_b")
    partner = (event.cpu + 1) % 3
    assert struct.unpack(">I", lpar.read(lock_b, 4))[0] == partner + 1
    for cpu in lpar.snapshot().cpus:
        assert cpu.state == "operating"
        assert cpu.psw_mask & INTERRUPTS_MASK == 0
        assert function_of(lpar, cpu.psw_addr) == "spin_lock"


def test_loop_keeps_every_cpu_busy_and_enabled_but_the_system_is_dead(tmp_path):
    b, _ = hang(tmp_path, "loop")
    lpar = b.lpar
    assert heartbeats_stopped(lpar)
    for cpu in lpar.snapshot().cpus:
        assert cpu.state == "operating"
        assert cpu.psw_mask & 0x0100000000000000  # external interruptions still enabled
    jiffies = lpar.symbol("jiffies")
    before = lpar.read(jiffies, 8)
    lpar.run(25 * MS)
    assert lpar.read(jiffies, 8) != before  # the timer interrupt still ticks


def test_faults_need_a_running_production_system(booted):
    with pytest.raises(FaultError, match="unknown hang 'forever'"):
        inject(booted.lpar, ["hang", "forever"])
    with pytest.raises(FaultError, match="unknown fault 'explode'"):
        inject(booted.lpar, ["explode"])
    booted.lpar.stop()
    with pytest.raises(HmcError, match="not running"):
        inject(booted.lpar, ["panic"])


def run_script(workdir):
    b = boot_lpar(workdir, cpus=2)
    b.lpar.run(15 * MS)
    b.lpar.os_command("status")
    b.lpar.run(5 * MS)
    inject(b.lpar, ["hang", "spin"])
    b.lpar.run(10 * MS)
    events = [e.to_dict() for e in b.log.events]
    digest = b.lpar.storage_hash()
    snapshot = b.lpar.snapshot()
    b.lpar.close()
    return events, digest, snapshot


def test_the_same_script_gives_the_same_events_and_storage(tmp_path):
    first = run_script(tmp_path / "a")
    second = run_script(tmp_path / "b")
    assert first[0] == second[0]
    assert first[1] == second[1]
    assert first[2] == second[2]


def test_a_program_check_loop_never_keeps_the_host_and_stop_all_works(booted):
    lpar = booted.lpar
    # Break CPU 0's program-check new PSW: every program check now lands on address 0, which
    # faults again, forever (a classic program-check loop).
    prefix = lpar.snapshot().cpus[0].prefix
    lpar.storage.write(prefix + 0x1D0, bytes(16))
    lpar.stop(1)
    lpar.os_command("pgmcheck")
    started = time.monotonic()
    lpar.run(20 * MS)
    assert time.monotonic() - started < 10
    assert any("program-check loop" in e.message for e in booted.log.of_kind("error"))
    assert len(booted.log.of_kind("program_check")) < 10
    lpar.stop()
    assert lpar.status == "not operating"


def test_interrupt_from_another_thread_ends_a_long_run(booted):
    import threading

    lpar = booted.lpar
    inject(lpar, ["hang", "loop"])
    timer = threading.Timer(0.3, lpar.interrupt)
    timer.start()
    started = time.monotonic()
    lpar.run(100_000 * MS)  # 100 s of virtual time: would take minutes
    assert time.monotonic() - started < 5
    timer.cancel()


def test_free_running_mode_boots_and_spins_too(tmp_path):
    from machine.events import EventBus
    from machine.lpar import Lpar
    from machine.profile import Profile

    lpar = Lpar(Profile(cpus=2), tmp_path, EventBus(), free_running=True)
    lpar.activate()
    lpar.load(0x100)
    assert lpar.run_until(lambda e: e.kind == "stage" and e.stage == "workload", 2000 * MS)
    before = lpar.heartbeats()
    lpar.run(30 * MS)
    assert all(a > b for a, b in zip(lpar.heartbeats(), before))
    lpar.close()
