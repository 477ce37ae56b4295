"""kdump end to end: panic and PSW restart produce a vmcore whose registers and memory are
the old system's; every corruption is caught by the purgatory and no vmcore appears."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import MS

from machine.events import EventBus, EventLog
from machine.faults import inject
from machine.formats.elfcore import read_vmcore
from machine.lpar import Lpar
from machine.profile import Profile

MEMORY = 128 << 20
CRASHKERNEL = 32 << 20
CRASH_BASE = MEMORY - CRASHKERNEL
PAGE = 4096


@dataclass
class CrashRun:
    lpar: Lpar
    log: EventLog
    pages: dict[int, bytes] = field(default_factory=dict)  # page -> sha256 at the crash

    def of_kind(self, kind: str) -> list:
        return self.log.of_kind(kind)

    def checks(self) -> list:
        return self.log.of_kind("check")


def booted_with_kdump(workdir: Path, cpus: int, **profile: object) -> CrashRun:
    bus = EventBus()
    log = EventLog(bus)
    lpar = Lpar(Profile(cpus=cpus, memory=MEMORY, crashkernel=CRASHKERNEL, workload=20, **profile),
                workdir, bus)
    lpar.activate()
    lpar.load(0x100)
    assert lpar.run_until(lambda e: e.kind == "stage" and e.stage == "workload", 2000 * MS)
    lpar.run(30 * MS)  # let the workload fill its share
    lpar.os_command("kdump load")
    loaded = lpar.run_until(lambda e: e.kind == "kexec", 100 * MS)
    assert loaded is not None and loaded.loaded
    return CrashRun(lpar, log)


def snapshot_at_purgatory_load(run: CrashRun) -> None:
    """Hash every page of old memory when the purgatory starts its load mode: what the vmcore
    must contain (the crashkernel region aside)."""
    def take(event) -> None:
        if event.kind == "stage" and event.stage == "purgatory-load" and event.status == "running":
            view = run.lpar.storage.view
            run.pages.update({a: hashlib.sha256(view[a:a + PAGE]).digest() for a in range(0, CRASH_BASE, PAGE)})
    run.lpar.bus.subscribe(take)


def trigger(run: CrashRun, how: str) -> None:
    if how == "panic":
        inject(run.lpar, ["panic", "test crash"])
    else:
        run.lpar.stop()
        run.lpar.psw_restart(0)


def wait_for_vmcore(run: CrashRun):
    written = run.lpar.run_until(lambda e: e.kind == "dump_written", 3000 * MS)
    assert written is not None, [e.to_dict() for e in run.log.events[-20:]]
    return written


def captured_status(run: CrashRun) -> dict[int, dict]:
    """The registers the host captured at the crash, per CPU: the last store status before
    the purgatory's load mode (SIGP for the others, the dumping CPU's own software store)."""
    load = next(e for e in run.of_kind("stage") if e.stage == "purgatory-load")
    stores = [e for e in run.of_kind("store_status") if e.t <= load.t]
    return {e.cpu: e.status for e in stores}


@pytest.mark.parametrize("how", ["panic", "restart"])
@pytest.mark.parametrize("cpus", [1, 2, 4])
def test_vmcore_holds_the_old_registers_and_memory(tmp_path, how, cpus):
    run = booted_with_kdump(tmp_path, cpus)
    snapshot_at_purgatory_load(run)
    trigger(run, how)
    written = wait_for_vmcore(run)
    assert written.format == "elf" and Path(written.path).stat().st_size == written.bytes
    vmcore = read_vmcore(written.path)

    captured = captured_status(run)
    assert len(vmcore.cpus) == cpus == len(captured)
    by_prefix = {status["prefix"]: status for status in captured.values()}
    for pid, notes in enumerate(vmcore.cpus, start=1):
        assert notes.pid == pid
        status = by_prefix[notes.prefix]
        assert notes.psw == (status["psw_mask"], status["psw_addr"])
        assert list(notes.gprs) == status["gprs"]
        assert list(notes.acrs) == status["ars"]
        assert list(notes.fprs) == status["fprs"]
        assert notes.fpc == status["fpc"] == 1
        assert list(notes.ctrs) == status["crs"]
        assert notes.timer == status["cpu_timer"]
        assert notes.todcmp == status["clock_comparator"] >> 8
        # Recognisable values the kernel put there, so equality above is not zeros == zeros.
        assert notes.fprs[3] >> 32 == 0x40000000 and notes.fprs[3] & 0xFFFF == 3
        assert notes.acrs[5] & 0xFFFF == 0xA005
    # The dumping CPU comes first and is the one that crashed (or took the restart).
    dumping = next(e for e in run.of_kind("stage") if e.stage == "crash-kexec").cpu
    assert vmcore.cpus[0].prefix == captured[dumping]["prefix"]

    assert vmcore.ranges == [(0, CRASH_BASE)]
    skipped = 0
    for address, digest in run.pages.items():
        page = vmcore.read(address, PAGE, holes_as_zero=True)
        assert hashlib.sha256(page).digest() == digest, f"page {address:#x} differs"
        skipped += page == bytes(PAGE)
    assert written.pages_skipped == skipped > 0
    assert "OSRELEASE=dumplab-1.0" in vmcore.vmcoreinfo
    run.lpar.close()


def test_dump_level_0_keeps_the_zero_pages(tmp_path):
    run = booted_with_kdump(tmp_path, 2, dump_level=0)
    trigger(run, "panic")
    written = wait_for_vmcore(run)
    assert written.pages_skipped == 0 and written.pages_written == CRASH_BASE // PAGE
    assert written.bytes >= CRASH_BASE
    run.lpar.close()


def test_vmcore_is_small_when_a_fifth_of_memory_is_in_use(tmp_path):
    run = booted_with_kdump(tmp_path, 2)
    trigger(run, "panic")
    written = wait_for_vmcore(run)
    assert written.bytes <= MEMORY // 4
    run.lpar.close()


def test_the_kernel_path_reports_every_step_in_order(tmp_path):
    run = booted_with_kdump(tmp_path, 2)
    trigger(run, "panic")
    wait_for_vmcore(run)
    # kdump re-IPLs the production system, which comes back up.
    assert run.lpar.run_until(lambda e: e.kind == "stage" and e.stage == "workload", 500 * MS)
    stages = [(e.stage, e.status) for e in run.of_kind("stage")]
    order = [("panic", "done"), ("purgatory-verify", "running"), ("purgatory-verify", "done"),
             ("crash-kexec", "done"), ("purgatory-load", "running"), ("purgatory-load", "done"),
             ("notes", "running"), ("notes", "done"), ("swap", "running"), ("swap", "done"),
             ("kdump-boot", "running"), ("kdump-boot", "done"), ("vmcore", "running"),
             ("vmcore", "done"), ("ipl", "done"), ("workload", "done")]
    positions = [stages.index(step, stages.index(order[0])) for step in order]
    assert positions == sorted(positions), stages
    # Every check of both purgatory runs: the guest and the host computed the same values.
    checks = [c for c in run.checks() if c.guest_ok is not None and c.what != "ELF core header"]
    purgatory_checks = [c for c in checks if "SHA-256" in c.what or c.what.startswith(("os_info", "purgatory"))]
    assert len(purgatory_checks) == 2 * 5
    for check in purgatory_checks:
        assert check.ok and check.guest_ok and check.expected == check.computed == check.guest_computed
    assert [e.pid for e in run.of_kind("notes_saved")] == [1, 2]
    assert run.of_kind("kdump_boot")[0].detail.startswith(f"OLDMEM_BASE={CRASH_BASE:#x}")
    console = [e.text for e in run.of_kind("console")]
    assert "kdump: 2 CPUs found in the ELF notes" in console
    assert f"os_info: crashkernel: addr={CRASH_BASE:#x} size={CRASHKERNEL}" in console
    run.lpar.close()


CORRUPTIONS = [
    (["corrupt", "segment", "0"], "segment 0 (kdump kernel) SHA-256"),
    (["corrupt", "segment", "elfcorehdr"], "segment 1 (elfcorehdr) SHA-256"),
    (["corrupt", "segment", "initrd"], "segment 2 (initrd) SHA-256"),
    (["corrupt", "purgatory"], "purgatory checksum"),
    (["corrupt", "os_info"], "os_info checksum"),
]


@pytest.mark.parametrize("fault, failing_check", CORRUPTIONS)
def test_a_corruption_fails_verification_and_runs_the_fallback(tmp_path, fault, failing_check):
    run = booted_with_kdump(tmp_path, 2)
    inject(run.lpar, fault)
    trigger(run, "panic")
    action = run.lpar.run_until(lambda e: e.kind == "shutdown_action", 500 * MS)
    assert action is not None and (action.trigger, action.action) == ("panic", "stop")
    verify = run.of_kind("purgatory")
    assert [(e.mode, e.result) for e in verify] == [("verify", "bad")]
    failed = [c for c in run.checks() if not c.ok]
    assert [c.what for c in failed] == [failing_check]
    for check in run.checks():
        if check.guest_ok is not None:
            assert check.guest_ok == check.ok  # guest and host agree, pass or fail
    assert "kdump: checksum verification failed: kdump is not possible" in [e.text for e in run.of_kind("console")]
    run.lpar.run(20 * MS)
    assert not (tmp_path / "dumps").exists() or not any((tmp_path / "dumps").iterdir())
    assert run.lpar.all_stopped()
    run.lpar.close()


def test_kdump_unloaded_runs_the_fallback(tmp_path):
    run = booted_with_kdump(tmp_path, 2)
    inject(run.lpar, ["unload-kdump"])
    run.lpar.run(5 * MS)
    assert [e.loaded for e in run.of_kind("kexec")] == [True, False]
    trigger(run, "restart")
    action = run.lpar.run_until(lambda e: e.kind == "shutdown_action", 500 * MS)
    assert (action.trigger, action.action) == ("restart", "stop")
    assert not run.of_kind("purgatory")
    assert "kdump: no kdump kernel loaded" in [e.text for e in run.of_kind("console")]
    assert not (tmp_path / "dumps").exists()
    run.lpar.close()


@pytest.mark.skipif(shutil.which("readelf") is None, reason="binutils readelf is not installed")
def test_readelf_lists_the_notes_in_the_kernel_order(tmp_path):
    run = booted_with_kdump(tmp_path, 2)
    trigger(run, "panic")
    written = wait_for_vmcore(run)
    out = subprocess.run(["readelf", "-n", "-W", written.path], capture_output=True, text=True, check=True).stdout
    kinds = [line.split()[2] for line in out.splitlines() if line.strip().startswith(("CORE", "LINUX", "VMCOREINFO"))]
    per_cpu = ["NT_PRSTATUS", "NT_FPREGSET", "NT_S390_TIMER", "NT_S390_TODCMP", "NT_S390_TODPREG",
               "NT_S390_CTRS", "NT_S390_PREFIX"]
    assert kinds == ["NT_PRPSINFO", *per_cpu, *per_cpu, "Unknown"]
    header = subprocess.run(["readelf", "-h", written.path], capture_output=True, text=True, check=True).stdout
    assert "Start of program headers:          64 (bytes into file)" in header
    assert "IBM S/390" in header and "CORE (Core file)" in header
    run.lpar.close()


@pytest.mark.skipif(shutil.which("gdb-multiarch") is None, reason="gdb-multiarch is not installed")
def test_gdb_shows_the_same_psw_and_gprs(tmp_path):
    run = booted_with_kdump(tmp_path, 2)
    trigger(run, "panic")
    written = wait_for_vmcore(run)
    captured = captured_status(run)
    dumping = next(e for e in run.of_kind("stage") if e.stage == "crash-kexec").cpu
    out = subprocess.run(["gdb-multiarch", "-batch", "-ex", "set architecture s390:64-bit",
                          "-ex", "info registers", "-c", written.path],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    values = {line.split()[0]: int(line.split()[1], 16) for line in out.splitlines()
              if line[:1].isalpha() and len(line.split()) >= 2 and line.split()[1].startswith("0x")}
    status = captured[dumping]
    assert values["pswm"] == status["psw_mask"] and values["pswa"] == status["psw_addr"]
    assert [values[f"r{i}"] for i in range(16)] == status["gprs"]
    run.lpar.close()


def test_a_save_killed_midway_leaves_nothing_under_a_final_name(tmp_path):
    """SIGKILL the whole dumplab process while it writes a 1 GiB system's vmcore."""
    import json
    import os
    import signal
    import sys

    command = [sys.executable, "-m", "console.cli", "run", "--scenario", "panic-kdump",
               "--memory", "1G", "--workdir", str(tmp_path), "--json"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True,
                               cwd=Path(__file__).resolve().parent.parent)
    killed_while_writing = False
    for line in process.stdout:
        event = json.loads(line)
        if event["kind"] == "dump_progress" and event["done"] < event["total"]:
            os.kill(process.pid, signal.SIGKILL)
            killed_while_writing = True
            break
    process.wait(timeout=60)
    assert killed_while_writing, "the dump finished before it could be interrupted"
    names = [p.name for p in (tmp_path / "dumps").iterdir()]
    assert names and all(name.startswith(".") and name.endswith(".partial") for name in names), names


def test_kdump_can_be_loaded_at_boot_by_the_profile(tmp_path):
    bus = EventBus()
    log = EventLog(bus)
    lpar = Lpar(Profile(cpus=2, memory=MEMORY, crashkernel=CRASHKERNEL, kdump=True), tmp_path, bus)
    lpar.activate()
    lpar.load(0x100)
    assert lpar.run_until(lambda e: e.kind == "stage" and e.stage == "workload", 2000 * MS)
    loads = log.of_kind("kexec")
    assert [(e.loaded, e.segments) for e in loads] == [(True, 4)]
    assert loads[0].t <= log.of_kind("stage")[-1].t
    lpar.close()


def test_the_same_crash_twice_gives_byte_identical_vmcores(tmp_path):
    paths = []
    for name in ("first", "second"):
        run = booted_with_kdump(tmp_path / name, 2)
        trigger(run, "panic")
        paths.append(Path(wait_for_vmcore(run).path))
        run.lpar.close()
    assert paths[0].name == paths[1].name
    assert paths[0].read_bytes() == paths[1].read_bytes()


def test_the_hand_over_runs_on_the_ipl_cpu(tmp_path):
    """A PSW restart on CPU 1: the checks run there, then (as Linux's smp_call_ipl_cpu) the
    IPL CPU stores every status and enters the purgatory, so its note comes first."""
    run = booted_with_kdump(tmp_path, 2)
    run.lpar.stop()
    run.lpar.psw_restart(1)
    written = wait_for_vmcore(run)
    verify = next(e for e in run.of_kind("stage") if e.stage == "purgatory-verify")
    crash_kexec = next(e for e in run.of_kind("stage") if e.stage == "crash-kexec")
    assert (verify.cpu, crash_kexec.cpu) == (1, 0)
    console = [e.text for e in run.of_kind("console")]
    assert any(t.startswith("restart: PSW restart on CPU 1") for t in console)
    captured = captured_status(run)
    vmcore = read_vmcore(written.path)
    assert [n.prefix for n in vmcore.cpus] == [captured[0]["prefix"], captured[1]["prefix"]]
    # CPU 1 stopped itself after asking the IPL CPU; its registers are in the second note.
    assert vmcore.cpus[1].psw == (captured[1]["psw_mask"], captured[1]["psw_addr"])
    run.lpar.close()
