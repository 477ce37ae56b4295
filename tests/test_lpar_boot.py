"""The production kernel boots on every CPU count, each CPU with its own lowcore, and runs."""

from __future__ import annotations

import struct

import pytest
from conftest import MS, boot_lpar

from machine.checksums import cksm

LC_CPU_NR = 0x380
LC_EXT_NEW_PSW = 0x1B0
LC_RESTART_PSW = 0x1A0
OS_INFO_MAGIC = 0x4F53494E464F535A


@pytest.mark.parametrize("cpus", [1, 2, 4, 8])
def test_every_cpu_reaches_the_workload_with_its_own_prefix(tmp_path, cpus):
    b = boot_lpar(tmp_path, cpus=cpus)
    lpar = b.lpar
    online = b.log.of_kind("cpu_online")
    assert sorted(e.cpu for e in online) == list(range(cpus))
    prefixes = [e.prefix for e in sorted(online, key=lambda e: e.cpu)]
    assert len(set(prefixes)) == cpus
    snapshot = lpar.snapshot()
    for cpu, prefix in enumerate(prefixes):
        assert prefix >= 0x10000 and prefix % 0x2000 == 0
        assert snapshot.cpus[cpu].prefix == prefix
        # The lowcore behind the prefix is this CPU's: its number and its new PSWs are there.
        assert struct.unpack(">I", lpar.read(prefix + LC_CPU_NR, 4))[0] == cpu
        ext_new = struct.unpack(">QQ", lpar.read(prefix + LC_EXT_NEW_PSW, 16))
        assert ext_new[1] == lpar.symbol("ext_int_handler")
        assert struct.unpack(">Q", lpar.read(prefix + LC_RESTART_PSW + 8, 8))[0] == lpar.symbol(
            "restart_int_handler"
        )
    starts = b.log.of_kind("trace")
    assert sorted(e.cpu for e in starts if e.name == "workload_start") == list(range(cpus))

    before = lpar.heartbeats()
    lpar.run(40 * MS)
    after = lpar.heartbeats()
    assert all(a > b for a, b in zip(after, before)), (before, after)
    assert lpar.status == "operating"
    lpar.close()


def test_os_info_is_checksummed_and_found_through_absolute_0xe18(booted):
    lpar = booted.lpar
    address = struct.unpack(">Q", lpar.read(0xE18, 8))[0]
    assert address % 4096 == 0
    page = lpar.read(address, 4096)
    magic, csum, major, minor = struct.unpack_from(">QIHH", page)
    assert (magic, major, minor) == (OS_INFO_MAGIC, 1, 1)
    assert csum == cksm(page[0x0C:])
    check = booted.log.of_kind("check")[0]
    assert check.what == "os_info checksum" and check.ok and check.expected == f"{csum:08x}"
    # Entry 0 stays empty, as upstream Linux leaves it; 0xE0C points at the VMCOREINFO note.
    assert struct.unpack_from(">QQI", page, 0x20) == (0, 0, 0)
    note_addr = struct.unpack(">Q", lpar.read(0xE0C, 8))[0]
    note = lpar.read(note_addr, 4096)
    namesz, descsz, note_type = struct.unpack_from(">III", note)
    assert (namesz, note_type, note[12:23]) == (11, 0, b"VMCOREINFO\0")
    text = note[24:24 + descsz].decode()
    assert text.startswith("OSRELEASE=dumplab-1.0\n")
    assert f"SYMBOL(heartbeat)={lpar.symbol('heartbeat'):x}\n" in text


def test_workload_fills_its_share_with_recognisable_pages(tmp_path):
    b = boot_lpar(tmp_path, cpus=2, workload=10)
    lpar = b.lpar
    lpar.run(30 * MS)
    start = next(e.args[1] for e in b.log.of_kind("trace") if e.name == "workload_start" and e.cpu == 0)
    header = lpar.read(start, 64).split(b"\0")[0].decode()
    assert header.startswith("DUMPLAB cpu 00 page 00000000")
    # Memory past the workload and below the crashkernel stays zero.
    crash_base = lpar.storage.size - lpar.profile.crashkernel
    assert lpar.read(crash_base - 4096, 4096) == bytes(4096)
    assert any("workload: CPU 1 filled" in t for t in b.console())
    lpar.close()


def test_boot_messages_and_command_line(booted):
    text = "\n".join(booted.console())
    assert "Linux version dumplab-1.0" in text
    assert "Kernel command line: crashkernel=64M workload=20 on_panic=stop on_restart=stop" in text
    assert "setup: Reserving 64MB of memory at 192MB for crashkernel (System RAM: 192MB)" in text
    assert "smp: Brought up 1 node, 2 CPUs" in text


def test_os_commands_are_answered(booted):
    booted.os_command("status")
    text = "\n".join(booted.console())
    assert "status: dumplab-1.0" in text and "status: CPU 1 heartbeat" in text
    booted.os_command("nonsense")
    assert booted.console()[-1] == "oscmd: unknown command 'nonsense' (try help)"
    booted.os_command("help")
    assert any(line.startswith("commands: help | status") for line in booted.console())
