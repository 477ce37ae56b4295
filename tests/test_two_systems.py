"""Two systems in one dump: kdump fails after the swap (the vmcore target is full), the
operator takes a stand-alone dump, and `--select prod|kdump` takes the dump apart again the
way zgetdump does (S390_FACTS.md §4.5)."""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import MS
from full_dumps import wait_for_full_dump

from console.cli import main
from machine.events import EventBus, EventLog
from machine.faults import inject
from machine.formats import AddressNotDumped, DumpFormatError, read_vmcore, write_s390_dump
from machine.formats.s390dump import S390Dump, read_s390_dump
from machine.formats.select import ONE_SYSTEM, SystemView, find_kdump_kernel, select_system
from machine.lpar import Lpar
from machine.paths import program_path
from machine.profile import Profile

MEMORY = 128 << 20
CRASHKERNEL = 32 << 20
CRASH_BASE = MEMORY - CRASHKERNEL
PAGE = 4096
MIB = 1 << 20
DUMPER = (0x2000, 0x10000)
WAIT_SAVE_FAILED = 0x4B02


@dataclass
class TwoSystems:
    """The whole run, once per module: the events, the production memory at the crash and
    the full dump the stand-alone dumper wrote afterwards."""

    log: EventLog
    at_crash: dict[int, bytes] = field(default_factory=dict)  # page -> sha256
    dump_path: Path | None = None
    lc_vec: tuple[int, ...] = ()

    def of_kind(self, kind: str) -> list:
        return self.log.of_kind(kind)

    def console(self) -> list[str]:
        return [e.text for e in self.log.of_kind("console")]

    def dump(self) -> S390Dump:
        assert self.dump_path is not None
        return read_s390_dump(self.dump_path)


def booted_with_kdump(workdir: Path, **profile: object) -> tuple[Lpar, EventLog]:
    bus = EventBus()
    log = EventLog(bus)
    lpar = Lpar(Profile(cpus=3, memory=MEMORY, crashkernel=CRASHKERNEL, **profile), workdir, bus)
    lpar.activate()
    lpar.load(0x100)
    assert lpar.run_until(lambda e: e.kind == "stage" and e.stage == "workload", 2000 * MS)
    lpar.run(30 * MS)  # let the workload fill its share
    lpar.os_command("kdump load")
    loaded = lpar.run_until(lambda e: e.kind == "kexec", 100 * MS)
    assert loaded is not None and loaded.loaded
    return lpar, log


def remember_memory_at_purgatory_load(lpar: Lpar, run: TwoSystems) -> None:
    """Hash every page of [0, crash_base) when the purgatory starts its load mode: the
    production system as kdump was to dump it."""
    def take(event) -> None:
        if event.kind == "stage" and event.stage == "purgatory-load" and event.status == "running":
            view = lpar.storage.view
            run.at_crash.update({a: hashlib.sha256(view[a:a + PAGE]).digest()
                                 for a in range(0, CRASH_BASE, PAGE)})
    lpar.bus.subscribe(take)


@pytest.fixture(scope="module")
def two_systems(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoSystems]:
    lpar, log = booted_with_kdump(tmp_path_factory.mktemp("two-systems"), kdump_failure="halt")
    run = TwoSystems(log)
    remember_memory_at_purgatory_load(lpar, run)
    inject(lpar, ["kdump-save-fails"])
    inject(lpar, ["panic", "test crash"])
    wait = lpar.run_until(lambda e: e.kind == "wait", 3000 * MS)
    assert wait is not None, [e.to_dict() for e in log.events[-15:]]
    # The operator sees the disabled wait, stops everything and takes a stand-alone dump.
    lpar.stop()
    lpar.load(0x200, store_status=True)
    written = wait_for_full_dump(lpar)
    run.dump_path = Path(written.path)
    lpar.close()
    yield run


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


# ---------------------------------------------------------------------------------------------
# The run


def test_the_save_fails_after_the_swap_and_the_kdump_kernel_stops(two_systems):
    errors = [e.message for e in two_systems.of_kind("error")]
    assert len(errors) == 1
    assert errors[0].startswith("vmcore: cannot write ")
    assert errors[0].endswith(": No space left on device (injected)")
    stages = [(e.stage, e.status) for e in two_systems.of_kind("stage")]
    assert stages.index(("swap", "done")) < stages.index(("vmcore", "failed"))
    assert ("vmcore", "done") not in stages
    assert "kdump: saving the vmcore failed (-5)" in two_systems.console()
    kdump_wait = two_systems.of_kind("wait")[0]
    assert (kdump_wait.code, kdump_wait.enabled) == (WAIT_SAVE_FAILED, False)
    assert [e.fault for e in two_systems.of_kind("fault")] == ["kdump-save-fails", "panic"]
    dumps = two_systems.dump_path.parent
    assert not [p.name for p in dumps.iterdir() if p.name.startswith(("vmcore", ".vmcore"))]


def test_the_dumper_finds_no_os_info_and_writes_a_full_dump(two_systems):
    failed = [c.what for c in two_systems.of_kind("check") if c.what.startswith("os_info")
              and not c.ok]
    assert failed == ["os_info pointer"]  # the kdump kernel's world has none at 0xE18
    console = two_systems.console()
    assert "FAILED: no os_info pointer at 0xE18 (EOS_INFO_MISSING)" in console
    assert "Taking a full dump instead (reason 4520): all 128 MB of memory" in console
    assert console[-1] == "Dump successful"
    dump = two_systems.dump()
    assert dump.header.mem_size == MEMORY
    kdump = find_kdump_kernel(dump)
    assert kdump is not None and (kdump.base, kdump.size) == (CRASH_BASE, CRASHKERNEL)


# ---------------------------------------------------------------------------------------------
# --select prod


def pages_the_dumper_wrote(dump: S390Dump) -> set[int]:
    """Production addresses of the save areas the dumper filled in the kdump world."""
    pages = set()
    for prefix in dump.prefixes:
        page = prefix + 0x1000
        pages.add(page + CRASH_BASE if page < CRASHKERNEL else page)
    return pages


def test_prod_is_the_production_memory_at_the_crash(two_systems):
    view = select_system(two_systems.dump(), "prod")
    assert isinstance(view, SystemView)
    assert view.ranges == [(0, CRASH_BASE)]  # the crashkernel region is kdump's
    skip = set(range(*DUMPER, PAGE)) | pages_the_dumper_wrote(view.dump)
    differing = []
    for start in range(0, CRASH_BASE, MIB):
        chunk = view.read(start, MIB)
        for offset in range(0, MIB, PAGE):
            address = start + offset
            digest = hashlib.sha256(chunk[offset:offset + PAGE]).digest()
            if address not in skip and digest != two_systems.at_crash[address]:
                differing.append(hex(address))
    assert differing == []
    assert "OSRELEASE=dumplab-1.0" in view.vmcoreinfo
    # Found as the kdump kernel finds it: os_info entry 0 is empty, so through 0xE0C.
    assert view.os_info.source == "lowcore 0xe0c"
    assert "BUILD-ID=" in view.vmcoreinfo and "SYMBOL(init_uts_ns)=" in view.vmcoreinfo


def production_status(two_systems: TwoSystems) -> dict[int, dict]:
    """The registers each production CPU stored before the purgatory's load mode."""
    load = next(e for e in two_systems.of_kind("stage") if e.stage == "purgatory-load")
    stores = [e for e in two_systems.of_kind("store_status") if e.t <= load.t]
    return {e.cpu: e.status for e in stores}


def test_prod_cpus_are_the_production_registers_stored_before_the_swap(two_systems):
    view = select_system(two_systems.dump(), "prod")
    captured = production_status(two_systems)
    assert len(captured) == 3
    assert view.cpu_origins == ["lowcore_ptr[0]", "lowcore_ptr[1]", "lowcore_ptr[2]"]
    for cpu, status in enumerate(view.cpus):
        stored = captured[cpu]
        assert (status.psw_mask, status.psw_addr) == (stored["psw_mask"], stored["psw_addr"])
        assert list(status.gprs) == stored["gprs"]
        assert list(status.crs) == stored["crs"]
        assert list(status.ars) == stored["ars"]
        assert list(status.fprs) == stored["fprs"]
        assert status.cpu_timer == stored["cpu_timer"]
        assert status.clock_comparator >> 8 == stored["clock_comparator"] >> 8
    panicked = next(e for e in two_systems.of_kind("stage") if e.stage == "crash-kexec").cpu
    assert view.cpus[panicked].psw_addr != view.cpus[(panicked + 1) % 3].psw_addr


def test_prod_reads_the_crashkernel_region_as_copy_oldmem_would(two_systems):
    dump = two_systems.dump()
    view = select_system(dump, "prod")
    assert view.read(CRASH_BASE + 0x10000, 64) == dump.read(0x10000, 64)
    assert view.read(CRASHKERNEL - 32, 64) == dump.read(MEMORY - 32, 32) + dump.read(CRASHKERNEL, 32)
    with pytest.raises(AddressNotDumped):
        view.read(MEMORY - 8, 16)


# ---------------------------------------------------------------------------------------------
# --select kdump


def kdump_kernel_image() -> bytes:
    """The first 0x400 bytes of kdump.elf's first PT_LOAD (at 0x10000): its code before the
    parm area, which the purgatory filled in."""
    data = program_path("kdump").read_bytes()
    phoff, = struct.unpack_from(">Q", data, 32)
    phentsize, phnum = struct.unpack_from(">HH", data, 54)
    for index in range(phnum):
        kind, _, offset, _, paddr, filesz = struct.unpack_from(">IIQQQQ", data,
                                                                phoff + index * phentsize)
        if kind == 1:
            assert paddr == 0x10000 and filesz >= 0x400
            return data[offset:offset + 0x400]
    raise AssertionError("kdump.elf has no PT_LOAD")


def test_kdump_is_the_kdump_kernels_memory(two_systems):
    dump = two_systems.dump()
    view = select_system(dump, "kdump")
    assert view.ranges == [(0, CRASHKERNEL)] and view.memory_size == CRASHKERNEL
    assert view.read(0x10000, 0x400) == kdump_kernel_image()
    assert struct.unpack(">QQ", view.read(0x10418, 16)) == (CRASH_BASE, CRASHKERNEL)
    with pytest.raises(AddressNotDumped):
        view.read(CRASHKERNEL - 8, 16)
    assert view.vmcoreinfo is None  # the kdump kernel keeps no os_info
    # First the kdump kernel's own CPU, in its disabled wait (prefix 0: not in lc_vec), then
    # the CPUs the dumper found with a prefix inside the kdump system's memory.
    kdump_cpu = view.cpus[0]
    assert (kdump_cpu.psw_mask, kdump_cpu.psw_addr) == (0x0002000180000000, WAIT_SAVE_FAILED)
    assert view.cpu_origins[0] == "absolute 0x1200"
    assert 0 not in dump.prefixes
    lc_vec = [(f"lc_vec[{i}]", p) for i, p in enumerate(dump.prefixes) if p < CRASHKERNEL]
    assert list(zip(view.cpu_origins[1:], [s.prefix for s in view.cpus[1:]])) == lc_vec


# ---------------------------------------------------------------------------------------------
# The command line


def test_inspect_names_the_two_systems_and_shows_the_one_selected(two_systems, capsys):
    path = str(two_systems.dump_path)
    status, out, _ = run_cli(capsys, "inspect", path)
    assert status == 0
    assert "Systems   two, a kdump kernel at 0x10418: OLDMEM_BASE 0x6000000, OLDMEM_SIZE 32 MiB" in out
    status, out, _ = run_cli(capsys, "inspect", path, "--select", "prod")
    assert status == 0 and "Selected  prod: the production system, the swap undone" in out
    assert "CPU 1 (lowcore_ptr[0])" in out and "OSRELEASE=dumplab-1.0" in out
    status, out, _ = run_cli(capsys, "inspect", path, "--select", "kdump", "--json")
    summary = json.loads(out)
    assert summary["selection"]["select"] == "kdump"
    assert summary["selection"]["two_systems"] == {"oldmem_base": CRASH_BASE,
                                                   "oldmem_size": CRASHKERNEL}
    assert summary["memory"]["ranges"] == [{"start": 0, "end": CRASHKERNEL, "size": CRASHKERNEL}]


def test_convert_writes_the_production_system_as_an_elf_core(two_systems, capsys, tmp_path):
    out_path = tmp_path / "prod.elf"
    status, out, _ = run_cli(capsys, "convert", str(two_systems.dump_path), str(out_path),
                             "--select", "prod")
    assert status == 0 and "(s390, prod system)" in out
    vmcore = read_vmcore(out_path)
    view = select_system(two_systems.dump(), "prod")
    assert vmcore.ranges == [(0, CRASH_BASE)]
    assert [n.prefix for n in vmcore.cpus] == [s.prefix for s in view.cpus]
    assert vmcore.vmcoreinfo == view.vmcoreinfo
    for address in range(0, CRASH_BASE, 16 * MIB):
        assert vmcore.read(address, 16 * MIB) == view.read(address, 16 * MIB)


def test_a_dump_of_one_system_refuses_a_selection(tmp_path, capsys):
    path = tmp_path / "one.s390"
    write_s390_dump(path, lambda address, length: bytes(length), 2 * MIB)
    dump = read_s390_dump(path)
    assert find_kdump_kernel(dump) is None
    assert select_system(dump, "all") is dump
    with pytest.raises(DumpFormatError, match=ONE_SYSTEM):
        select_system(dump, "prod")
    for select in ("prod", "kdump"):
        status, out, err = run_cli(capsys, "inspect", str(path), "--select", select)
        assert (status, out) == (1, "")
        assert err == f"dumplab inspect: {path}: {ONE_SYSTEM}\n"
    status, _, err = run_cli(capsys, "convert", str(path), str(tmp_path / "out"), "--select", "kdump")
    assert status == 1 and err.endswith(f"{ONE_SYSTEM}\n") and not (tmp_path / "out").exists()
    status, out, _ = run_cli(capsys, "inspect", str(path))
    assert status == 0 and "Systems" not in out


# ---------------------------------------------------------------------------------------------
# The kdump kernel's failure action (kdump-tools' FAILURE_ACTION), when the save fails


def failed_save(workdir: Path, action: str) -> tuple[Lpar, EventLog]:
    lpar, log = booted_with_kdump(workdir, kdump_failure=action)
    inject(lpar, ["kdump-save-fails"])
    inject(lpar, ["panic", "test crash"])
    failed = lpar.run_until(lambda e: e.kind == "kdump_boot" and e.step == "save failed", 3000 * MS)
    assert failed is not None and failed.detail == f"failure action: {action}"
    return lpar, log


def test_failure_action_reboot_re_ipls_the_production_system(tmp_path: Path) -> None:
    lpar, log = failed_save(tmp_path, "reboot")
    assert lpar.run_until(lambda e: e.kind == "stage" and e.stage == "workload", 2000 * MS)
    assert "kdump: failure action: reboot" in [e.text for e in log.of_kind("console")]
    assert log.of_kind("dump_written") == [] and log.of_kind("wait") == []
    lpar.close()


def test_failure_action_halt_waits_for_the_operator(tmp_path: Path) -> None:
    lpar, log = failed_save(tmp_path, "halt")
    lpar.run(50 * MS)
    assert [e.code for e in log.of_kind("wait")] == [WAIT_SAVE_FAILED]
    assert log.of_kind("ipl")[-1].t < log.of_kind("kdump_boot")[-1].t  # no re-IPL since
    lpar.close()


def test_failure_action_dump_takes_a_full_dump_of_both_systems(tmp_path: Path) -> None:
    lpar, _ = failed_save(tmp_path, "dump")
    written = wait_for_full_dump(lpar)
    kdump = find_kdump_kernel(read_s390_dump(written.path))
    assert kdump is not None and (kdump.base, kdump.size) == (CRASH_BASE, CRASHKERNEL)
    lpar.close()
