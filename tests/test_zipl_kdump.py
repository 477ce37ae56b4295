"""The kdump kernel's head swaps memory itself (issue 16 item 4), and path D, the shipped
stand-alone kdump (`zipl -d DEVNO -k auto`, item 9): its vmcore against the 2011 path's, and
its failures."""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import MS
from test_sadump import hung_system

from machine import zipl_kdump
from machine.devices import BLOCK_SIZE, Device, DeviceError
from machine.events import EventLog
from machine.formats.elfcore import Vmcore, read_vmcore
from machine.lpar import Lpar
from machine.profile import Profile, ProfileError
from machine.sadump import prepare_dump_device

MEMORY = 128 << 20
CRASHKERNEL = 32 << 20
CRASH_BASE = MEMORY - CRASHKERNEL
PAGE = 4096
MiB = 1 << 20
LOADER_AREA = (0x2000, 0x10000)  # the dumper (path A) or the loader (path D) was IPL'd here
SAVE_AREA = (0x1200, 0x1400)  # in each CPU's lowcore: the dumper copies the stored status there


def hung(workdir: Path, *, dump_tool: str = "dumper", kdump: bool = True,
         faults: tuple[list[str], ...] = (), small: bool = False) -> tuple[Lpar, EventLog]:
    """Boot, (load kdump,) hang on every CPU: the state both stand-alone paths dump. A small
    LPAR (64 MB, 2 CPUs, little workload) where only the loader's checks matter."""
    size = {"cpus": 2, "memory": 64 * MiB, "crashkernel": 16 * MiB, "workload": 5} if small else \
        {"cpus": 3, "memory": MEMORY, "crashkernel": CRASHKERNEL}
    system = hung_system(workdir, kdump=kdump, faults=faults, dump_tool=dump_tool, **size)
    system.lpar.stop()
    return system.lpar, system.log


@dataclass
class StandAloneDump:
    vmcore: Vmcore
    log: EventLog
    swap_pc: list[int] = field(default_factory=list)  # where the CPU was when the swap began
    before_swap: dict[int, bytes] = field(default_factory=dict)  # page -> digest then


def stand_alone_vmcore(workdir: Path, dump_tool: str) -> StandAloneDump:
    """Stop all, Load the dump device with store status, until the vmcore is written; for
    the kexec path, what old memory held when the kdump kernel's head began to swap."""
    lpar, log = hung(workdir, dump_tool=dump_tool)
    swap_pc: list[int] = []
    before: dict[int, bytes] = {}

    def at_swap_start(event) -> None:
        if event.kind == "stage" and event.stage == "swap" and event.status == "running":
            swap_pc.append(lpar.current_pc(lpar.uc))
            view = lpar.storage.view
            before.update({a: hashlib.sha256(view[a:a + PAGE]).digest() for a in range(0, CRASH_BASE, PAGE)})
    lpar.bus.subscribe(at_swap_start)
    try:
        lpar.load(0x200, store_status=True)
        written = lpar.run_until(lambda e: e.kind == "dump_written", 3000 * MS)
        assert written is not None and written.format == "elf", [e.to_dict() for e in log.events[-10:]]
        return StandAloneDump(read_vmcore(written.path), log, swap_pc, before)
    finally:
        lpar.close()


@pytest.fixture(scope="module")
def path_a(tmp_path_factory) -> StandAloneDump:
    """The 2011 design's path: the stand-alone dumper checks, the purgatory enters kdump."""
    return stand_alone_vmcore(tmp_path_factory.mktemp("path-a"), "dumper")


def stages(log: EventLog) -> list[tuple[str, str]]:
    return [(e.stage, e.status) for e in log.events if e.kind == "stage"]


# --- item 4: the kdump kernel's head swaps --------------------------------------------------

def test_the_kdump_head_swaps_memory_itself_and_the_vmcore_holds_old_memory_unchanged(path_a):
    """The purgatory enters the kdump kernel where kexec put it; the kernel's head (running
    there, not at its link address) swaps through its data mover at 0x4000, reports progress
    every MiB, and the vmcore holds every page of old memory exactly as it was before the
    swap, the pages under the mover and its buffer included."""
    vmcore, log = path_a.vmcore, path_a.log
    # The head ran from the crashkernel region, above the kdump kernel's link address.
    assert CRASH_BASE + 0x10000 <= path_a.swap_pc[0] < CRASH_BASE + 0x20000
    order = [("purgatory-load", "done"), ("notes", "done"), ("swap", "running"), ("swap", "done"),
             ("kdump-boot", "running"), ("vmcore", "done")]
    seen = stages(log)
    assert [seen.index(s) for s in order] == sorted(seen.index(s) for s in order)
    progress = [(e.done, e.total) for e in log.of_kind("swap_progress")]
    assert progress == [(n * MiB, CRASHKERNEL) for n in range(1, CRASHKERNEL // MiB + 1)]
    assert vmcore.ranges == [(0, CRASH_BASE)]
    changed = [hex(a) for a in range(0, CRASH_BASE, PAGE)
               if hashlib.sha256(vmcore.read(a, PAGE)).digest() != path_a.before_swap[a]]
    assert changed == []
    # The registers are those stored at the Load, IPL CPU first.
    assert [c.pid for c in vmcore.cpus] == [1, 2, 3]


# --- item 9: path D --------------------------------------------------------------------------

def _differing_runs(a: Vmcore, b: Vmcore, start: int, end: int, step: int = 256) -> list[tuple[int, int]]:
    runs: list[list[int]] = []
    for chunk in range(start, end, MiB):
        x, y = a.read(chunk, MiB), b.read(chunk, MiB)
        if x == y:
            continue
        for offset in range(0, MiB, step):
            if x[offset:offset + step] != y[offset:offset + step]:
                if runs and runs[-1][1] == chunk + offset:
                    runs[-1][1] += step
                else:
                    runs.append([chunk + offset, chunk + offset + step])
    return [(s, e) for s, e in runs]


def test_path_d_and_the_2011_path_give_the_same_vmcore_but_for_the_documented_areas(tmp_path, path_a):
    """The same hang dumped through the 2011 design's dumper -> purgatory and through the
    shipped stand-alone kdump: the same notes (every register), the same VMCOREINFO, the same
    ranges, and the same memory except where the dump tool itself ran (0x2000-0x10000) and the
    CPUs' lowcore save areas, into which only the 2011 dumper copies the stored status
    (docs/FIDELITY.md)."""
    path_d_dump = stand_alone_vmcore(tmp_path, "kdump")
    path_d, log_d = path_d_dump.vmcore, path_d_dump.log
    assert not path_d_dump.swap_pc  # the loader put the kernel at its link address
    path_a = path_a.vmcore
    assert [(n.name, n.type, n.desc) for n in path_d.notes] == [(n.name, n.type, n.desc) for n in path_a.notes]
    assert path_d.vmcoreinfo == path_a.vmcoreinfo and path_d.vmcoreinfo
    assert path_d.ranges == path_a.ranges == [(0, CRASH_BASE)]
    prefixes = [c.prefix for c in path_a.cpus]
    allowed = [LOADER_AREA] + [(p + SAVE_AREA[0], p + SAVE_AREA[1]) for p in prefixes]
    differing = _differing_runs(path_a, path_d, 0, CRASH_BASE)
    outside = [(hex(s), hex(e)) for s, e in differing
               if not any(lo <= s and e <= hi for lo, hi in allowed)]
    assert differing and outside == []
    # Path D: the loader's steps, no purgatory and no swap.
    seen = stages(log_d)
    assert ("checks", "done") in seen and ("oldmem-copy", "done") in seen
    assert not any(stage in ("purgatory-verify", "purgatory-load", "swap") for stage, _ in seen)
    loaded = next(i for i, e in enumerate(log_d.events) if e.kind == "ipl" and e.program == "zipl_kdump")
    checks = [e for e in log_d.events[loaded:] if e.kind == "check" and e.what in zipl_kdump.CHECKS.values()]
    assert [c.what for c in checks] == list(zipl_kdump.CHECKS.values())
    assert all(c.ok and c.guest_ok for c in checks)
    assert "kdump: stand-alone dump: ELF core header built at" in " ".join(
        e.text for e in log_d.of_kind("console"))


def _corrupt_descriptor(lpar: Lpar) -> None:
    device = lpar.devices[0x200]
    device.write_blocks(zipl_kdump.DESCRIPTOR_BLOCK, bytes(BLOCK_SIZE))


PATH_D_FAILURES = [
    pytest.param({"kdump": False}, None, 0x4523, "crashkernel", id="kdump-not-loaded"),
    pytest.param({"faults": (["corrupt", "os_info"],)}, None, 0x4521, "os_info checksum",
                 id="os_info-corrupted"),
    pytest.param({}, lambda lpar: lpar.storage.put_u64(0xE18, 0), 0x4520, "os_info pointer",
                 id="no-os_info-pointer"),
    pytest.param({}, _corrupt_descriptor, 0x4524, "kdump kernel on the device",
                 id="no-kdump-kernel-on-the-device"),
]


@pytest.mark.parametrize(("setup", "damage", "code", "failed_check"), PATH_D_FAILURES)
def test_path_d_failures_end_in_the_documented_wait_code(tmp_path, setup, damage, code, failed_check):
    lpar, log = hung(tmp_path, dump_tool="kdump", small=True, **setup)
    try:
        if damage is not None:
            damage(lpar)
        lpar.load(0x200, store_status=True)
        wait = lpar.run_until(lambda e: e.kind == "wait", 1000 * MS)
        assert wait is not None and not wait.enabled
        assert (wait.code, wait.psw_mask) == (code, 0x0002000080000000)
        console = [e.text for e in log.of_kind("console")]
        assert console[-1] == "Dump failed: Check disabled wait code"
        assert not log.of_kind("dump_written") and not log.of_kind("kdump_boot")
        # The loader stops at its first failed check; the host agrees with it.
        failed = [c for c in log.of_kind("check") if not c.ok]
        assert [(c.what, c.guest_ok) for c in failed] == [(failed_check, False)]
        assert ("dumper", "failed") in stages(log)
        # Old memory is copied only once os_info vouched for the crashkernel region.
        assert (("oldmem-copy", "done") in stages(log)) == (code == 0x4524)
    finally:
        lpar.close()


def test_prepare_dump_device_for_path_d_writes_the_loader_and_the_kdump_kernel(tmp_path):
    device = Device(0x300, "dump", tmp_path / "dev.img", 8 << 20)
    prepare_dump_device(device, kind="kdump")
    program = device.boot_program()
    assert (program.name, program.is_dump_program) == ("zipl_kdump", True)
    magic, first, size, memsz = struct.unpack_from(">4Q", device.read_blocks(zipl_kdump.DESCRIPTOR_BLOCK, 1))
    image, needed = zipl_kdump.kdump_device_image()
    assert (magic, first, size, memsz) == (zipl_kdump.DESCRIPTOR_MAGIC, zipl_kdump.DESCRIPTOR_BLOCK + 1,
                                           len(image), needed)
    assert device.read_blocks(first, -(-size // BLOCK_SIZE))[:size] == image
    line = image[0x480:0x480 + 896].rstrip(b"\0").decode()
    assert "elfcorehdr=" not in line and "dump_level=1" in line
    prepare_dump_device(device)  # the default: the stand-alone dumper again
    assert device.boot_program().name == "dumper"


def test_bad_dump_tool_is_refused_with_a_clear_message(tmp_path):
    device = Device(0x300, "dump", tmp_path / "dev.img", 8 << 20)
    with pytest.raises(DeviceError, match="unknown dump tool 'scsi' \\(known: dumper, kdump\\)"):
        prepare_dump_device(device, kind="scsi")
    small = Device(0x301, "dump", tmp_path / "small.img", 512 << 10)
    with pytest.raises(DeviceError, match="device 0301 is too small for the stand-alone kdump"):
        prepare_dump_device(small, kind="kdump")
    with pytest.raises(DeviceError, match="holds no boot program"):  # nothing half-written
        small.boot_program()
    with pytest.raises(ProfileError, match="dump_tool = 'ipl': must be 'dumper' or 'kdump'"):
        Profile(dump_tool="ipl")
