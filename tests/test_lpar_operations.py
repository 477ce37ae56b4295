"""HMC operations and interruptions, checked against registers and lowcore bytes."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from conftest import MS, boot_lpar
from full_dumps import copy_full_dump, full_dump_done

from machine.formats.s390dump import read_s390_dump
from machine.lpar import HmcError
from machine.status import CpuStatus

ARCH_MODE_ID = 0xA3
INTERRUPTS_MASK = 0x0300000000000000  # I/O and external


def test_stop_all_and_store_status_write_the_save_area_exactly(tmp_path):
    b = boot_lpar(tmp_path, cpus=4)
    lpar = b.lpar
    lpar.run(25 * MS)
    lpar.stop()
    assert lpar.status == "not operating"
    for cpu in range(4):
        lpar.store_status(cpu)
        saved = CpuStatus.unpack(lpar.read(0x1200, 512))
        host = lpar.snapshot().cpus[cpu]
        assert (saved.psw_mask, saved.psw_addr) == (host.psw_mask, host.psw_addr)
        assert saved.gprs == host.gprs
        assert saved.crs == host.crs
        assert saved.ars == host.ars
        assert saved.fprs == host.fprs
        assert saved.fpc == host.fpc == 1
        assert saved.prefix == host.prefix
        assert saved.cpu_timer == host.cpu_timer
        assert saved.clock_comparator == host.clock_comparator & ~0xFF
        # The kernel gives every CPU recognisable access and floating-point registers, so
        # the comparison above cannot pass by accident with all zeros.
        assert saved.ars[5] == cpu << 16 | 0xA005
        assert saved.fprs[7] == 0x4000000000000000 | cpu << 16 | 7
        assert saved.crs[0] & 0x800  # clock-comparator subclass enabled
    assert lpar.read(ARCH_MODE_ID, 1) == b"\x01"
    lpar.close()


def test_store_status_needs_a_stopped_cpu(booted):
    with pytest.raises(HmcError, match=r"CPU 1: it is operating \(Stop it first\)"):
        booted.lpar.store_status(1)


def test_psw_restart_swaps_through_the_prefixed_lowcore(booted):
    lpar = booted.lpar
    lpar.stop(1)
    before = lpar.snapshot().cpus[1]
    lpar.psw_restart(1)
    lpar.step(1, 1)  # delivers the restart, then runs its first instruction
    prefix = before.prefix
    old_mask, old_addr = struct.unpack(">QQ", lpar.read(prefix + 0x120, 16))
    assert (old_mask, old_addr) == (before.psw_mask, before.psw_addr)
    _, new_addr = struct.unpack(">QQ", lpar.read(prefix + 0x1A0, 16))
    after = lpar.snapshot().cpus[1]
    # stmg r0,r15,0x300 is 6 bytes long: the CPU ran exactly the handler's first instruction.
    assert after.psw_addr == new_addr + 6 == lpar.symbol("restart_int_handler") + 6
    saved_gprs = struct.unpack(">16Q", lpar.read(prefix + 0x300, 128))
    assert saved_gprs == before.gprs
    restart = booted.log.of_kind("restart")[-1]
    assert (restart.cpu, restart.old_psw_addr, restart.source) == (1, before.psw_addr, "operator")


def test_psw_restart_runs_the_on_restart_action(booted):
    lpar = booted.lpar
    lpar.psw_restart(0)
    lpar.run(5 * MS)
    console = booted.console()
    old = booted.log.of_kind("restart")[-1].old_psw_addr
    assert f"restart: PSW restart on CPU 0, interrupted at {old:016x}" in console
    action = booted.log.of_kind("shutdown_action")[-1]
    assert (action.trigger, action.action) == ("restart", "stop")
    snap = lpar.snapshot()
    assert snap.cpus[0].state == "disabled wait"
    assert snap.cpus[0].wait_code == lpar.symbol("stop_run")
    assert snap.cpus[1].state == "stopped"


def test_program_check_is_delivered_with_its_code_and_the_handler_returns(booted):
    lpar = booted.lpar
    booted.os_command("pgmcheck")
    event = booted.log.of_kind("program_check")[-1]
    insn = lpar.symbol("pgm_test_insn")
    assert (event.code, event.address, event.ilen) == (1, insn, 2)
    prefix = lpar.snapshot().cpus[event.cpu].prefix
    assert struct.unpack(">HH", lpar.read(prefix + 0x8C, 4)) == (2, 1)  # ilc, operation exception
    _, old_addr = struct.unpack(">QQ", lpar.read(prefix + 0x150, 16))
    assert old_addr == insn + 2
    console = booted.console()
    assert any(line.startswith(f"pgmcheck: program check 0001 (operation) at {insn:016x}") for line in console)
    assert "pgmcheck: back after the program check, code 0001" in console
    assert lpar.status == "operating"


def test_svc_is_delivered_and_returns(booted):
    booted.os_command("svc")
    console = booted.console()
    assert any(line.startswith("svc: SVC 42 handled on CPU") for line in console)
    assert "svc: back after SVC 42 (1 handled)" in console


def test_panic_stops_the_others_and_waits_disabled(booted):
    lpar = booted.lpar
    booted.os_command("panic out of cheese")
    assert "Kernel panic - not syncing: out of cheese" in booted.console()
    panic = booted.log.of_kind("panic")[-1]
    assert panic.message == "out of cheese"
    snap = lpar.snapshot()
    panicking = snap.cpus[panic.cpu]
    assert panicking.state == "disabled wait" and panicking.wait_code == lpar.symbol("stop_run")
    assert all(c.state == "stopped" for c in snap.cpus if c.address != panic.cpu)
    assert lpar.status == "exceptions"
    wait = booted.log.of_kind("wait")[-1]
    assert (wait.cpu, wait.code, wait.enabled) == (panic.cpu, lpar.symbol("stop_run"), False)


def test_on_panic_dump_reipls_the_dumper_which_takes_a_full_dump(booted):
    booted.os_command("on_panic dump")
    booted.os_command("panic x", 50 * MS)
    assert full_dump_done(booted.log.of_kind("stage")[-1])  # on the device, not yet a file
    assert booted.log.of_kind("dump_written") == []
    written = copy_full_dump(booted.lpar)
    ipl = booted.log.of_kind("ipl")[-1]
    assert (ipl.devno, ipl.program) == (0x200, "dumper")
    assert read_s390_dump(written.path).header.mem_size == booted.lpar.storage.size
    failed = [c for c in booted.log.of_kind("check") if not c.ok]
    assert [c.what for c in failed] == ["crashkernel"]  # kdump was never loaded
    # The dump re-IPL stored CPU 0's status, so the dumper has every CPU's registers.
    assert not [line for line in booted.console() if "no status stored" in line]
    assert sum(1 for e in booted.log.of_kind("stage") if e.stage == "cpu-status" and e.status == "done") == 2


def test_on_panic_dump_without_a_dumper_says_so_and_stops(booted):
    lpar = booted.lpar
    lpar.devices[0x200].write_blocks(0, bytes(4096))  # an unprepared dump device
    booted.os_command("on_panic dump")
    booted.os_command("panic x")
    errors = booted.log.of_kind("error")
    assert errors and "re-IPL failed: device 0200 holds no boot program" in errors[-1].message
    assert lpar.all_stopped()


def test_load_normal_keeps_memory_and_load_clear_zeroes_it(booted):
    lpar = booted.lpar
    start = next(e.args[1] for e in booted.log.of_kind("trace") if e.name == "workload_start")
    lpar.run(20 * MS)
    page = lpar.read(start, 4096)
    assert page.startswith(b"DUMPLAB cpu")
    lpar.load(0x100)
    assert lpar.read(start, 4096) == page
    lpar.load(0x100, clear=True)
    assert lpar.read(start, 4096) == bytes(4096)
    assert lpar.snapshot().cpus[1].gprs == (0,) * 16


def test_load_with_store_status_saves_the_ipl_cpu_first(booted):
    lpar = booted.lpar
    lpar.stop()
    before = lpar.snapshot().cpus[0]
    lpar.load(0x100, store_status=True)
    saved = CpuStatus.unpack(lpar.read(0x1200, 512))
    assert (saved.psw_addr, saved.gprs, saved.prefix) == (before.psw_addr, before.gprs, before.prefix)
    # The other CPUs kept their registers through the CPU reset of a normal load.
    assert lpar.snapshot().cpus[1].prefix != 0


def test_reset_normal_keeps_storage_reset_clear_clears_it(booted):
    lpar = booted.lpar
    os_info = lpar.read(0xE18, 8)
    lpar.reset()
    assert lpar.status == "not operating" and lpar.read(0xE18, 8) == os_info
    lpar.reset(clear=True)
    assert lpar.read(0xE18, 8) == bytes(8)


@pytest.mark.parametrize(
    "operation, message",
    [
        (lambda l: l.load(0x300), "no device 0300"),
        (lambda l: (l.devices[0x200].write_blocks(0, bytes(4096)), l.load(0x200)),
         "device 0200 holds no boot program"),
        (lambda l: l.load(0x100, parm="TOOLONGPARM"), "bad load parameter"),
        (lambda l: l.stop(7), "no CPU 7"),
        (lambda l: l.psw_restart(2), "no CPU 2"),
        (lambda l: l.os_command("   "), "empty OS command"),
        (lambda l: l.os_command("x" * 300), "at most 240"),
        (lambda l: l.activate(), "already activated"),
    ],
)
def test_refused_operations_leave_the_machine_unchanged(booted, operation, message):
    lpar = booted.lpar
    before = (lpar.snapshot(), lpar.storage_hash(), len(booted.log.events))
    with pytest.raises(HmcError, match=message):
        operation(lpar)
    assert (lpar.snapshot(), lpar.storage_hash(), len(booted.log.events)) == before


def test_operations_before_activation_are_refused(tmp_path):
    from machine.lpar import Lpar
    from machine.profile import Profile

    lpar = Lpar(Profile(), tmp_path)
    for operation in (lambda: lpar.load(0x100), lambda: lpar.stop(), lambda: lpar.psw_restart(),
                      lambda: lpar.run(1), lambda: lpar.os_command("status")):
        with pytest.raises(HmcError, match="not activated"):
            operation()
    assert lpar.status == "not activated"


def test_diag308_reipl_loads_the_kernel_again_from_its_ipl_device(booted):
    lpar = booted.lpar
    lpar.run(10 * MS)
    first_boot_messages = booted.console().count("smp: Brought up 1 node, 2 CPUs")
    booted.os_command("reipl", 60 * MS)
    ipls = booted.log.of_kind("ipl")
    assert [(e.devno, e.program) for e in ipls] == [(0x100, "kernel"), (0x100, "kernel")]
    stage = [e for e in booted.log.of_kind("stage") if e.stage == "ipl"][-1]
    assert stage.detail == "kernel from 0100 (diag308)"
    assert booted.console().count("smp: Brought up 1 node, 2 CPUs") == first_boot_messages + 1
    workload = [e for e in booted.log.of_kind("stage") if e.stage == "workload"]
    assert len(workload) == 2 and workload[1].t > ipls[1].t


def test_the_production_profile_boots_with_kdump_loaded(tmp_path: Path) -> None:
    """`activate production`: kdump is loaded at boot, and a PSW Restart takes it to a vmcore
    with no operator command to the OS."""
    from console.control.session import Session
    from machine.events import EventLog

    with Session(tmp_path, overrides={"cpus": 2, "memory": 128 << 20}) as session:
        log = EventLog(session.bus)
        for line in ("activate production", "load 0100", "wait-for stage workload-filled"):
            assert session.execute(line).ok, line
        loaded = log.of_kind("kexec")
        assert loaded and loaded[-1].loaded and loaded[-1].segments == 4
        assert not any(e.kind == "console" and e.source == "operator" for e in log.events)
        for line in ("stop all", "restart 0", "wait-for event dump_written timeout=60s"):
            assert session.execute(line).ok, line
        assert log.of_kind("dump_written")[-1].format == "elf"
