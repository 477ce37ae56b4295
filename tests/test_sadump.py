"""The stand-alone dumper: from a hung system to a kdump vmcore when the kdump code can be
trusted, to a full s390-format dump with the reason when it cannot."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import MS
from full_dumps import copy_full_dump, full_dump_done, wait_for_full_dump

from machine.checksums import cksm
from machine.dumptools import DUMPDEV_DUMPER
from machine.events import EventBus, EventLog
from machine.faults import inject
from machine.formats.convert import convert
from machine.formats.elfcore import read_vmcore
from machine.formats.s390dump import read_s390_dump
from machine.lpar import Lpar, Snapshot
from machine.profile import Profile

MEMORY = 128 << 20
CRASHKERNEL = 32 << 20
PAGE = 4096
DUMPER = (0x2000, 0x10000)


@dataclass
class Hung:
    lpar: Lpar
    log: EventLog
    at_hang: Snapshot | None = None
    at_ipl: dict[int, bytes] = field(default_factory=dict)  # page -> digest when the dumper was loaded

    def console(self) -> list[str]:
        return [e.text for e in self.log.of_kind("console")]


def hung_system(workdir: Path, hang: str = "spin", kdump: bool = True, cpus: int = 3,
                faults: tuple[list[str], ...] = (), cpu_addresses: tuple[int, ...] = (),
                **profile) -> Hung:
    """Boot, (load kdump,) inject the faults, hang: what the stand-alone dump tools dump.
    `profile` overrides the profile's other fields (memory, crashkernel, dump_tool...)."""
    bus = EventBus()
    log = EventLog(bus)
    fields = {"memory": MEMORY, "crashkernel": CRASHKERNEL, **profile}
    lpar = Lpar(Profile(cpus=cpus, cpu_addresses=cpu_addresses, **fields), workdir, bus)
    lpar.activate()
    lpar.load(0x100)
    assert lpar.run_until(lambda e: e.kind == "stage" and e.stage == "workload", 2000 * MS)
    lpar.run(30 * MS)
    if kdump:
        lpar.os_command("kdump load")
        assert lpar.run_until(lambda e: e.kind == "kexec", 100 * MS)
    for fault in faults:
        inject(lpar, fault)
    inject(lpar, ["hang", hang])
    assert lpar.run_until(lambda e: e.kind == "hang", 100 * MS)
    lpar.run(20 * MS)
    return Hung(lpar, log)


def stop_and_load_dumper(hung: Hung, *, store: bool = True, clear: bool = False) -> None:
    """What the operator does: Stop all, then Load the dump device."""
    lpar = hung.lpar
    lpar.stop()
    hung.at_hang = lpar.snapshot()

    def remember(event) -> None:
        if event.kind == "ipl" and event.program == "dumper":
            view = lpar.storage.view
            hung.at_ipl.update({a: hashlib.sha256(view[a:a + PAGE]).digest()
                                for a in range(0, lpar.storage.size, PAGE)})
    lpar.bus.subscribe(remember)
    lpar.load(0x200, store_status=store, clear=clear)


def wait_for_dump(hung: Hung):
    """The vmcore kdump wrote, or the full dump the dumper left on the device (copied off)."""
    ended = hung.lpar.run_until(lambda e: e.kind == "dump_written" or full_dump_done(e), 3000 * MS)
    assert ended is not None, [e.to_dict() for e in hung.log.events[-15:]]
    if ended.kind == "dump_written":
        return ended
    assert ended.status == "done", ended
    return copy_full_dump(hung.lpar)


def assert_registers_equal(notes, cpu) -> None:
    assert notes.psw == (cpu.psw_mask, cpu.psw_addr)
    assert tuple(notes.gprs) == cpu.gprs
    assert tuple(notes.acrs) == cpu.ars
    assert tuple(notes.fprs) == cpu.fprs
    assert tuple(notes.ctrs) == cpu.crs
    assert notes.prefix == cpu.prefix
    assert notes.timer == cpu.cpu_timer
    assert notes.todcmp == cpu.clock_comparator >> 8


@pytest.mark.parametrize("hang", ["spin", "wait", "deadlock", "loop"])
def test_every_hang_ends_in_a_kdump_vmcore_with_the_registers_at_the_hang(tmp_path, hang):
    hung = hung_system(tmp_path, hang)
    stop_and_load_dumper(hung)
    written = wait_for_dump(hung)
    assert written.format == "elf"
    vmcore = read_vmcore(written.path)
    at_hang = {cpu.prefix: cpu for cpu in hung.at_hang.cpus}
    assert len(vmcore.cpus) == 3
    assert vmcore.cpus[0].prefix == hung.at_hang.cpus[0].prefix  # the IPL CPU first
    for notes in vmcore.cpus:
        assert_registers_equal(notes, at_hang[notes.prefix])
    stages = [(e.stage, e.status) for e in hung.log.of_kind("stage")]
    for step in [("dumper", "done"), ("checks", "done"), ("kdump", "running"),
                 ("purgatory-load", "done"), ("swap", "done"), ("vmcore", "done")]:
        assert step in stages
    assert all(c.ok and c.guest_ok is not False for c in hung.log.of_kind("check"))
    hung.lpar.close()


def corrupt_os_info_pointer(lpar: Lpar) -> None:
    lpar.storage.put_u64(0xE18, 0)


def corrupt_os_info_magic(lpar: Lpar) -> None:
    address = lpar.storage.u64(0xE18)
    lpar.storage.put_u64(address, 0x4F53494E464F5358)


def os_info_version_2(lpar: Lpar) -> None:
    """Version 2 with a correct checksum, so that only the version check fails."""
    address = lpar.storage.u64(0xE18)
    lpar.storage.put_u16(address + 0x0C, 2)
    lpar.storage.put_u32(address + 8, cksm(lpar.storage.read(address + 0x0C, 4096 - 0x0C)))


FAILED_CHECKS = [
    # (how, kdump loaded, failing check, message, reason code)
    (corrupt_os_info_pointer, True, "os_info pointer", "(EOS_INFO_MISSING)", 0x4520),
    (corrupt_os_info_magic, True, "os_info magic", "(EOS_INFO_MISSING)", 0x4520),
    (["corrupt", "os_info"], True, "os_info checksum", "(EOS_INFO_CSUM_FAILED)", 0x4521),
    (os_info_version_2, True, "os_info version", "(EOS_INFO_VERSION)", 0x4522),
    (None, False, "crashkernel", "(EOS_INFO_NOCRASHKERNEL)", 0x4523),
    (["corrupt", "purgatory"], True, "purgatory checksum", "the kdump code was overwritten", 0x4530),
    (["corrupt", "segment", "initrd"], True, "purgatory verify", "failed its SHA-256 check", 0x4531),
]


@pytest.mark.parametrize("how, kdump, failing, message, code", FAILED_CHECKS,
                         ids=[case[2].replace(" ", "-") for case in FAILED_CHECKS])
def test_a_failed_check_gives_its_reason_and_a_full_dump(tmp_path, how, kdump, failing, message, code):
    hung = hung_system(tmp_path, "spin", kdump=kdump, faults=(how,) if isinstance(how, list) else ())
    if callable(how):
        how(hung.lpar)
    stop_and_load_dumper(hung)
    written = wait_for_dump(hung)
    assert written.format == "s390"
    failed = [c for c in hung.log.of_kind("check") if not c.ok]
    assert [c.what for c in failed][-1] == failing
    assert all(c.guest_ok == c.ok for c in hung.log.of_kind("check") if c.guest_ok is not None)
    console = hung.console()
    assert any(line.startswith("FAILED:") and message in line for line in console)
    assert f"Taking a full dump instead (reason {code:04x}): all 128 MB of memory" in console
    assert console[-1] == "Dump successful" and "00000128 / 00000128 MB" in console
    wait = hung.log.of_kind("wait")[-1]
    assert (wait.code, wait.psw_mask) == (0, 0x0002000080000000)

    dump = read_s390_dump(written.path)
    assert dump.header.cpu_cnt == 3 and dump.header.mem_size == MEMORY
    at_hang = {cpu.prefix: cpu for cpu in hung.at_hang.cpus}
    for status in dump.cpus:  # every prefix page holds its CPU's status at the hang
        cpu = at_hang[status.prefix]
        assert (status.psw_mask, status.psw_addr, status.gprs) == (cpu.psw_mask, cpu.psw_addr, cpu.gprs)
        assert (status.crs, status.ars, status.fprs) == (cpu.crs, cpu.ars, cpu.fprs)
    assert_memory_is_the_hung_system(hung, dump)
    hung.lpar.close()


def assert_memory_is_the_hung_system(hung: Hung, dump) -> None:
    """Every page as it was when the dumper was loaded, but the dumper's own 0x2000-0x10000,
    the save areas it filled in the prefix pages, and the purgatory's stack if it ran."""
    skip = set(range(*DUMPER, PAGE)) | {cpu.prefix + 0x1000 for cpu in hung.at_hang.cpus}
    image = hung.lpar.kdump.image
    if image is not None and hung.log.of_kind("purgatory"):
        purgatory = image.segment("purgatory")
        bss = purgatory.mem + image.purgatory.symbols["__bss_start"]
        skip |= set(range(bss & ~(PAGE - 1), purgatory.mem + purgatory.memsz, PAGE))
    differing = [a for a, digest in hung.at_ipl.items()
                 if a not in skip and hashlib.sha256(dump.read(a, PAGE)).digest() != digest]
    assert differing == []


def test_load_clear_finds_memory_gone_and_says_so(tmp_path):
    hung = hung_system(tmp_path, "spin")
    stop_and_load_dumper(hung, clear=True)
    written = wait_for_dump(hung)
    console = hung.console()
    assert "Memory is empty: a Load clear erased the system. Use a normal Load." in console
    assert any(line.startswith("CPU 0: no status stored") for line in console)  # wiped too
    assert written.format == "s390"
    hung.lpar.close()


def test_load_without_store_status_loses_the_ipl_cpu(tmp_path):
    hung = hung_system(tmp_path, "spin")
    stop_and_load_dumper(hung, store=False)
    written = wait_for_dump(hung)
    assert "CPU 0: no status stored (was the Load done without store status?)" in hung.console()
    vmcore = read_vmcore(written.path)
    ipl_prefix = hung.at_hang.cpus[0].prefix
    assert [n.prefix for n in vmcore.cpus] == [c.prefix for c in hung.at_hang.cpus[1:]]
    assert ipl_prefix not in {n.prefix for n in vmcore.cpus}
    hung.lpar.close()


def test_convert_s390_to_elf_and_back_keeps_memory(tmp_path):
    hung = hung_system(tmp_path, "spin", kdump=False, cpus=2)
    stop_and_load_dumper(hung)
    written = wait_for_dump(hung)
    elf, back = tmp_path / "dump.elf", tmp_path / "back.s390"
    convert(written.path, elf)
    convert(elf, back)
    original, restored = read_s390_dump(written.path), read_s390_dump(back)
    for address in range(0, MEMORY, 16 << 20):
        assert original.read(address, 16 << 20) == restored.read(address, 16 << 20)
    vmcore = read_vmcore(elf)
    assert [n.prefix for n in vmcore.cpus] == [c.prefix for c in hung.at_hang.cpus]
    if shutil.which("gdb-multiarch"):
        out = subprocess.run(["gdb-multiarch", "-batch", "-ex", "set architecture s390:64-bit",
                              "-ex", "info registers", "-c", str(elf)],
                             capture_output=True, text=True, timeout=60, check=True).stdout
        pswa = next(int(line.split()[1], 16) for line in out.splitlines() if line.startswith("pswa"))
        assert pswa == hung.at_hang.cpus[0].psw_addr
    if shutil.which("readelf"):
        notes = subprocess.run(["readelf", "-n", str(elf)], capture_output=True, text=True, check=True).stdout
        assert notes.count("NT_PRSTATUS") == 2 and "NT_S390_PREFIX" in notes
    hung.lpar.close()


def test_the_dumper_refuses_a_device_too_small(tmp_path):
    bus = EventBus()
    log = EventLog(bus)
    lpar = Lpar(Profile(cpus=2, memory=MEMORY, crashkernel=CRASHKERNEL, dump_size=64 << 20), tmp_path, bus)
    lpar.activate()
    lpar.load(0x100)
    assert lpar.run_until(lambda e: e.kind == "stage" and e.stage == "workload", 2000 * MS)
    lpar.stop()
    lpar.load(0x200, store_status=True)
    wait = lpar.run_until(lambda e: e.kind == "wait", 500 * MS)
    assert wait.code == 0x4600
    console = [e.text for e in log.of_kind("console")]
    assert console[-2:] == ["Device too small", "Dump failed"]
    assert not (tmp_path / "dumps").exists()
    # Nothing on the device for zgetdump: the dumper wrote no header before it gave up.
    assert lpar.dump_tools.device_state(0x200) == DUMPDEV_DUMPER
    lpar.close()


def test_the_same_hang_twice_gives_byte_identical_full_dumps(tmp_path):
    digests = []
    for name in ("first", "second"):
        hung = hung_system(tmp_path / name, "deadlock", kdump=False, cpus=2)
        stop_and_load_dumper(hung)
        written = wait_for_dump(hung)
        digests.append(hashlib.sha256(Path(written.path).read_bytes()).hexdigest())
        hung.lpar.close()
    assert digests[0] == digests[1]


def panic_with_shutdown_action(workdir: Path, action: str) -> tuple[Lpar, EventLog]:
    """A system without kdump whose on_panic action IPLs the stand-alone dumper."""
    bus = EventBus()
    log = EventLog(bus)
    lpar = Lpar(Profile(cpus=2, memory=MEMORY, crashkernel=CRASHKERNEL, on_panic=action),
                workdir, bus)
    lpar.activate()
    lpar.load(0x100)
    assert lpar.run_until(lambda e: e.kind == "stage" and e.stage == "workload", 2000 * MS)
    inject(lpar, ["panic", "test crash"])
    written = wait_for_full_dump(lpar)
    assert read_s390_dump(written.path).read(0x10000, 8) != bytes(8)
    return lpar, log


def test_dump_reipl_re_ipls_the_system_after_the_full_dump(tmp_path):
    """Linux's dump_reipl: the kernel leaves its re-IPL block at 0xE00 (checksum at 0xE08),
    and the dumper, once the dump is written, IPLs the production system again."""
    lpar, log = panic_with_shutdown_action(tmp_path, "dump_reipl")
    assert lpar.run_until(lambda e: e.kind == "stage" and e.stage == "workload", 2000 * MS)
    console = [e.text for e in log.of_kind("console")]
    assert "dump_reipl: the dumper will re-IPL device 0100" in console
    assert "Re-IPL of the dumped system (dump_reipl)" in console
    assert [(e.trigger, e.action) for e in log.of_kind("shutdown_action")] == [("panic", "dump_reipl")]
    kinds = [(e.kind, getattr(e, "stage", None)) for e in log.events]
    after_dump = kinds[kinds.index(("stage", "full-dump")):]
    assert ("ipl", None) in after_dump  # the kernel again, from 0100
    lpar.close()


def test_dump_without_reipl_stops_after_the_full_dump(tmp_path):
    lpar, log = panic_with_shutdown_action(tmp_path, "dump")
    lpar.run(50 * MS)
    assert "Re-IPL of the dumped system (dump_reipl)" not in [e.text for e in log.of_kind("console")]
    assert lpar.all_stopped() and [e.code for e in log.of_kind("wait")][-1] == 0
    lpar.close()


ADDRESSES_WITH_GAPS = (0, 1, 4, 5)


@pytest.mark.parametrize("kdump", [True, False])
def test_cpu_addresses_with_gaps_are_all_found(tmp_path, kdump):
    """CPUs at 0, 1, 4 and 5: the kernel brings all four up (it looks at every address), and
    the dumper, which steps over the addresses with no CPU, stores all four statuses: in the
    vmcore's notes (kdump) or in the full dump's lc_vec (no kdump)."""
    hung = hung_system(tmp_path, kdump=kdump, cpus=4, cpu_addresses=ADDRESSES_WITH_GAPS)
    assert [c.address for c in hung.lpar.snapshot().cpus] == list(ADDRESSES_WITH_GAPS)
    online = [e.cpu for e in hung.log.of_kind("cpu_online")]
    assert sorted(online) == list(ADDRESSES_WITH_GAPS)
    stop_and_load_dumper(hung)
    written = wait_for_dump(hung)
    prefixes = {c.address: c.prefix for c in hung.at_hang.cpus}
    if kdump:
        dumped = [cpu.prefix for cpu in read_vmcore(written.path).cpus]
    else:
        dumped = list(read_s390_dump(written.path).header.lc_vec)
    assert sorted(dumped) == sorted(prefixes.values()) and 0 not in dumped
    hung.lpar.close()


def test_a_cpu_address_with_no_cpu_is_refused(tmp_path):
    hung = hung_system(tmp_path, kdump=False, cpus=4, cpu_addresses=ADDRESSES_WITH_GAPS)
    with pytest.raises(Exception, match=r"no CPU 2 \(this LPAR has CPUs 0, 1, 4, 5\)"):
        hung.lpar.psw_restart(2)
    hung.lpar.close()
