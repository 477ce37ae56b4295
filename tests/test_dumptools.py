"""The operator's dump tools at the OS console (zipl -d, lsshut/chshut, lsreipl/chreipl,
dumpconf status, zgetdump) and `dumplab zgetdump`: a dump device is prepared by the operator,
a stand-alone full dump stays on it until zgetdump copies it off after the re-IPL."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import MS, Booted, boot_lpar

from console.cli import main
from machine.dumptools import DUMPDEV_DUMPER, DUMPDEV_HAS_DUMP, DUMPDEV_KDUMP, DUMPDEV_UNPREPARED
from machine.faults import inject
from machine.formats.elfcore import read_vmcore
from machine.formats.s390dump import read_s390_dump
from machine.lpar import HmcError

SMALL = {"memory": 64 << 20, "crashkernel": 16 << 20}


def said(booted: Booted, command: str, ns: int = 5 * MS) -> list[str]:
    """The OS's reply to one command at the OS console (its console lines)."""
    before = len(booted.log.events)
    booted.os_command(command, ns)
    return [e.text for e in booted.log.events[before:]
            if e.kind == "console" and e.source == "os" and not e.text.startswith("workload")]


def state(booted: Booted, devno: int = 0x200) -> int:
    return booted.lpar.dump_tools.device_state(devno)


# --- the commands, their refusals, and that a refusal changes nothing ------------------------

BAD_ARGUMENTS = [
    ("zipl -d 0300", "zipl: Could not find device 0.0.0300"),
    ("zipl -d 0100", "zipl: Device 0.0.0100 holds the running system's boot loader: not a dump device"),
    ("zipl", "zipl: Usage: zipl -d DEVNO [-k auto] (install a dump tool on DEVNO)"),
    ("zipl -d", "zipl: Option '-d' requires an argument (the dump device)"),
    ("zipl -d 02g0", "zipl: '02g0' is not a device number (like 0200 or 0.0.0200)"),
    ("zipl -d 0200 -k manual", "zipl: Option '-k' accepts only 'auto'"),
    ("chshut panic dump", "chshut: Dump device 0.0.0200 has no dump tool (run: zipl -d 0200)"),
    ("chshut restart dump_reipl", "chshut: Dump device 0.0.0200 has no dump tool (run: zipl -d 0200)"),
    ("chshut panic kdump", ("chshut: 'kdump' is not a shutdown action: a loaded kdump kernel always "
                           "runs first (kdump load), lsshut shows it as kdump,ACTION")),
    ("chshut panic vmcmd", "chshut: Invalid action 'vmcmd' for trigger 'panic' (stop, dump, dump_reipl, reipl)"),
    ("chshut halt stop", "chshut: Trigger 'halt' is not supported by this kernel (panic, restart)"),
    ("chshut oops stop", "chshut: Unknown shutdown trigger 'oops' (panic, restart)"),
    ("chshut panic", "chshut: Usage: chshut panic|restart ACTION"),
    ("chreipl ccw 0300", "chreipl: Device 0.0.0300 does not exist"),
    ("chreipl fcp 0100", "chreipl: Re-IPL type 'fcp' is not supported here (ccw only)"),
    ("chreipl ccw", "chreipl: No device specified (chreipl ccw DEVNO)"),
    ("chreipl ccw 12345", "chreipl: '12345' is not a device number (like 0100 or 0.0.0100)"),
    ("dumpconf start", "dumpconf: Usage: dumpconf status"),
    ("lsshut now", "lsshut: takes no arguments"),
    ("zgetdump -i 0200", "zgetdump: No dump found on device 0.0.0200"),
    ("zgetdump -i 0300", "zgetdump: Device 0.0.0300 does not exist"),
    ("zgetdump 0200 x.elf -f pdf", "zgetdump: Invalid target format 'pdf' (elf or s390)"),
    ("zgetdump 0200", "zgetdump: Usage: zgetdump DEVNO FILE [-f elf|s390] | zgetdump -i DEVNO"),
]

LSSHUT_DEFAULT = ["Trigger          Action", "========================", "Halt             stop",
                  "Panic            stop", "Power off        stop", "Reboot           reipl",
                  "Restart          stop"]
LSREIPL_0100 = ["Re-IPL type: ccw", "Device:      0.0.0100", 'Loadparm:    ""', "clear:       0"]


@pytest.fixture(scope="module")
def unprepared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Booted]:
    """A booted LPAR whose dump device carries no dump tool (dump_device_prepared = false)."""
    booted = boot_lpar(tmp_path_factory.mktemp("unprepared"), dump_device_prepared=False, **SMALL)
    yield booted
    booted.lpar.close()


def test_an_unprepared_dump_device_cannot_be_loaded(unprepared: Booted) -> None:
    assert state(unprepared) == DUMPDEV_UNPREPARED
    assert said(unprepared, "dumpconf status")[-1] == "dump device: ccw 0.0.0200 (no dump tool)"
    with pytest.raises(HmcError, match="cannot load: device 0200 holds no boot program"):
        unprepared.lpar.load(0x200, store_status=True)
    assert all(cpu.state == "operating" for cpu in unprepared.lpar.snapshot().cpus)


@pytest.mark.parametrize("command, message", BAD_ARGUMENTS, ids=[c for c, _ in BAD_ARGUMENTS])
def test_a_bad_argument_gets_the_tools_message_and_changes_nothing(unprepared: Booted, command: str,
                                                                   message: str) -> None:
    boot_program = unprepared.lpar.devices[0x100].boot_program().name
    assert said(unprepared, command) == [message]
    assert state(unprepared) == DUMPDEV_UNPREPARED
    assert unprepared.lpar.devices[0x100].boot_program().name == boot_program == "kernel"
    assert said(unprepared, "lsshut") == LSSHUT_DEFAULT
    assert said(unprepared, "lsreipl") == LSREIPL_0100
    assert not (unprepared.lpar.workdir / "dumps").exists()


def test_zgetdump_takes_a_plain_file_name_only(unprepared: Booted) -> None:
    for name in ("../escape.s390", "/tmp/abs.s390", ".hidden"):
        assert said(unprepared, f"zgetdump 0200 {name}")[-1] == (
            "zgetdump: The output must be a plain file name (it goes into the work directory's dumps/)")


def test_zipl_chshut_chreipl_and_dumpconf_set_up_a_dump(tmp_path: Path) -> None:
    booted = boot_lpar(tmp_path, dump_device_prepared=False, **SMALL)
    assert said(booted, "zipl -d 0.0.0200") == [
        "Dump target: device 0.0.0200 with a size of 68 MB",
        ("Installing the stand-alone dumper on 0.0.0200: any dump on it will be overwritten by "
        "the next dump"),
        "Preparing dump device 0.0.0200.", "Done."]
    assert [(e.stage, e.status, e.detail) for e in booted.log.of_kind("stage")][-1] == (
        "zipl", "done", "stand-alone dumper installed on 0200")
    assert state(booted) == DUMPDEV_DUMPER
    assert booted.lpar.devices[0x200].boot_program().is_dump_program
    assert said(booted, "chshut panic dump_reipl") == ["chshut: on_panic action is now dump_reipl"]
    assert said(booted, "chshut restart reipl") == ["chshut: on_restart action is now reipl"]
    assert [e.args[:2] for e in booted.log.of_kind("trace") if e.name == "chshut"] == [(1, 3), (2, 4)]
    assert said(booted, "chreipl ccw 0x100")[:2] == ["Re-IPL type: ccw", "Device:      0.0.0100"]
    assert said(booted, "dumpconf status") == [
        "on_panic action: dump_reipl", "on_restart action: reipl",
        "dump device: ccw 0.0.0200 (stand-alone dumper)"]
    said(booted, "kdump load", 50 * MS)
    assert said(booted, "lsshut")[3::2] == ["Panic            kdump,dump_reipl",
                                           "Reboot           reipl"]
    # The reipl action: a PSW restart with kdump unloaded IPLs the re-IPL device again.
    said(booted, "kdump unload")
    booted.lpar.stop()
    booted.lpar.psw_restart(0)
    ipl = booted.lpar.run_until(lambda e: e.kind == "ipl", 200 * MS)
    assert ipl is not None and (ipl.devno, ipl.program) == (0x100, "kernel")
    assert [(e.trigger, e.action) for e in booted.log.of_kind("shutdown_action")] == [("restart", "reipl")]
    assert booted.lpar.run_until(lambda e: e.kind == "stage" and e.stage == "workload", 2000 * MS)
    # zipl -k auto replaces the dumper with the shipped stand-alone kdump (path D).
    assert said(booted, "zipl -d 0200 -k auto")[1] == (
        "Installing the stand-alone kdump on 0.0.0200: any dump on it will be overwritten by "
        "the next dump")
    assert state(booted) == DUMPDEV_KDUMP
    assert booted.lpar.devices[0x200].boot_program().name == "zipl_kdump"
    assert said(booted, "dumpconf status")[-1] == "dump device: ccw 0.0.0200 (stand-alone kdump)"
    booted.lpar.close()


# --- the dump stays on the device until zgetdump -------------------------------------------

@dataclass
class Collected:
    booted: Booted
    first: Path  # the first dump, copied off at the OS console after the re-IPL
    first_elf: Path
    second_on_device: Path  # the second dump, copied off the device image on the host
    stages_before_zgetdump: list[tuple[str, str]]
    files_before_zgetdump: list[str]


def hang_and_dump(booted: Booted) -> None:
    """Hang, Stop all, Load the dump device with store status, until the dump is on it."""
    inject(booted.lpar, ["hang", "spin"])
    assert booted.lpar.run_until(lambda e: e.kind == "hang", 100 * MS)
    booted.lpar.run(10 * MS)
    booted.lpar.stop()
    booted.lpar.load(0x200, store_status=True)
    done = booted.lpar.run_until(lambda e: e.kind == "stage" and e.stage == "full-dump"
                                 and e.status in ("done", "failed"), 3000 * MS)
    assert done is not None and done.status == "done"


def re_ipl(booted: Booted) -> None:
    booted.lpar.load(0x100)
    assert booted.lpar.run_until(lambda e: e.kind == "stage" and e.stage == "workload", 2000 * MS)


@pytest.fixture(scope="module")
def collected(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collected]:
    root = tmp_path_factory.mktemp("collect")
    booted = boot_lpar(root / "work", **SMALL)  # the default: 0200 prepared at activation
    hang_and_dump(booted)
    stages = [(e.stage, e.status) for e in booted.log.of_kind("stage")]
    files = sorted(p.name for p in (booted.lpar.workdir / "dumps").glob("*")) \
        if (booted.lpar.workdir / "dumps").exists() else []
    re_ipl(booted)
    assert said(booted, "zgetdump 0200 first.s390 -f s390", 10 * MS)[-1] == (
        "Success: Dump has been copied (64 MB)")
    assert said(booted, "zgetdump 0.0.0200 first.elf", 10 * MS)[-1].startswith("Success:")
    hang_and_dump(booted)  # a second hang: the dumper overwrites the first dump
    second = root / "second.s390"
    assert main(["zgetdump", str(booted.lpar.devices[0x200].path), str(second), "-f", "s390"]) == 0
    dumps = booted.lpar.workdir / "dumps"
    yield Collected(booted, dumps / "first.s390", dumps / "first.elf", second, stages, files)
    booted.lpar.close()


def test_the_full_dump_stays_on_the_device_until_zgetdump(collected: Collected) -> None:
    assert ("full-dump", "done") in collected.stages_before_zgetdump
    assert collected.files_before_zgetdump == []  # no file before the operator asks
    events = iter((e.kind, getattr(e, "stage", ""), getattr(e, "status", ""))
                  for e in collected.booted.log.events)
    steps = [("stage", "full-dump", "done"), ("stage", "ipl", "done"),
             ("stage", "zgetdump", "running"), ("dump_written", "", ""),
             ("stage", "zgetdump", "done")]
    assert all(step in events for step in steps)  # in this order (`in` consumes the iterator)
    written = collected.booted.log.of_kind("dump_written")
    assert [(Path(w.path).name, w.format) for w in written] == [("first.s390", "s390"),
                                                                ("first.elf", "elf")]
    assert written[0].bytes == collected.first.stat().st_size == 4096 + (64 << 20) + 16
    # The files belong to the incident of the dump, not to the re-IPL that copied them off.
    incidents = collected.booted.lpar.checkpoints.incidents.items
    assert [i.dumps for i in incidents] == [[w.path for w in written], []]
    assert incidents[1].outcome == "full dump on the dump device (zgetdump copies it off)"


def test_zgetdump_copies_what_the_dumper_wrote(collected: Collected) -> None:
    dump = read_s390_dump(collected.first)
    assert dump.header.mem_size == 64 << 20 and dump.header.cpu_cnt == 2
    elf = read_vmcore(collected.first_elf)
    assert [c.prefix for c in elf.cpus] == list(dump.prefixes)
    for address in (0, 0x10000, 0x22000, 32 << 20):
        assert elf.read(address, 4096) == dump.read(address, 4096)
    assert [p.name for p in collected.first.parent.iterdir() if p.name.startswith(".")] == []


def test_a_second_dump_overwrites_the_first_on_the_device(collected: Collected) -> None:
    first, second = read_s390_dump(collected.first), read_s390_dump(collected.second_on_device)
    assert second.header.tod > first.header.tod
    assert digest(collected.first) != digest(collected.second_on_device)
    # zgetdump -i at the OS console describes the second dump now.
    re_ipl(collected.booted)
    info = said(collected.booted, "zgetdump -i 0200")
    assert info[0] == "General dump info:" and "  CPU count (online).: 2" in info
    assert f"  Dump created (TOD).: {second.header.tod:016x}" in info
    assert info[-1] == "  0000000000000000 - 0000000003ffffff (64 MB)"


def test_dumplab_zgetdump_gives_the_bytes_of_the_os_console_zgetdump(collected: Collected,
                                                                     tmp_path: Path) -> None:
    # The device now holds the second dump; the OS console copied the first. Copy the second
    # both ways and compare.
    booted = collected.booted
    assert said(booted, "zgetdump 0200 again.s390 -f s390", 10 * MS)[-1].startswith("Success")
    host = tmp_path / "host.s390"
    assert main(["zgetdump", str(booted.lpar.devices[0x200].path), str(host), "-f", "s390"]) == 0
    assert digest(host) == digest(booted.lpar.workdir / "dumps" / "again.s390")
    assert state(booted) == DUMPDEV_DUMPER | DUMPDEV_HAS_DUMP


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- dumplab zgetdump on bad input -----------------------------------------------------------

def test_dumplab_zgetdump_refuses_what_is_not_a_dump(collected: Collected, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    device = collected.booted.lpar.devices[0x200].path
    truncated = tmp_path / "truncated.img"
    with open(device, "rb") as source, open(truncated, "wb") as target:
        target.write(source.read((1 << 20) + (32 << 20)))  # the header, half the memory
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    cases = [
        (collected.booted.lpar.devices[0x100].path, "no dump found on"),
        (truncated, "is incomplete (it ends past the end of the device)"),
        (fifo, "a FIFO, not a regular file"),
        (tmp_path / "missing.img", "No such file or directory"),
    ]
    out = tmp_path / "out.s390"
    for image, problem in cases:
        assert main(["zgetdump", str(image), str(out)]) == 1
        _, err = capsys.readouterr()
        assert err.startswith("dumplab zgetdump: ") and problem in err and "Traceback" not in err
        assert err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo", "truncated.img"]
    assert main(["zgetdump", str(device)]) == 2  # neither OUT nor -i
    assert main(["zgetdump", "-i", str(device)]) == 0
    assert "s390 dump (version 5) at offset 0x100000: 64 MB of memory, 2 CPUs" in capsys.readouterr().out
