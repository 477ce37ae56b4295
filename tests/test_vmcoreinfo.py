"""VMCOREINFO as real readers expect it (S390_FACTS §2, §6.5, §6.6): the kernel leaves os_info
entry 0 empty and points 0xE0C at the note; the kdump kernel falls back to that pointer, as
Linux's nt_vmcoreinfo does; the text carries what crash and makedumpfile read first, and
`inspect` shows the release, node name and crash time."""

from __future__ import annotations

import datetime
from pathlib import Path

from elftools.elf.elffile import ELFFile
from test_kdump import booted_with_kdump, trigger, wait_for_vmcore

from machine.clock import ACTIVATION_TIME
from machine.formats import open_dump
from machine.formats.summary import summarize, vmcoreinfo_values
from machine.paths import program_path

KERNEL_KEYS = ("OSRELEASE", "BUILD-ID", "PAGESIZE", "SYMBOL(init_uts_ns)",
               "OFFSET(uts_namespace.name)", "SYMBOL(_stext)", "SYMBOL(lowcore_ptr)",
               "SYMBOL(high_memory)", "LENGTH(lowcore_ptr)", "SAMODE31", "EAMODE31",
               "KERNELOFFSET", "CRASHTIME")


def kernel_elf() -> tuple[str, dict[str, int]]:
    """The production kernel's GNU build id (hex) and its symbols."""
    with open(program_path("kernel"), "rb") as file:
        elf = ELFFile(file)
        build_id = next(note for note in elf.get_section_by_name(".notes").iter_notes()
                        if note["n_type"] == "NT_GNU_BUILD_ID")["n_desc"]
        symbols = {s.name: s["st_value"] for s in elf.get_section_by_name(".symtab").iter_symbols()}
    return build_id, symbols


def test_a_kdump_vmcore_carries_the_kernels_vmcoreinfo(tmp_path: Path) -> None:
    run = booted_with_kdump(tmp_path, cpus=2)
    trigger(run, "panic")
    written = wait_for_vmcore(run)
    consoles = [e.text for e in run.log.of_kind("console")]
    assert any("os_info: entry 0: not available (addr=0x0 size=0)" in t for t in consoles)
    assert any("VMCOREINFO through the lowcore pointer 0xE0C" in t for t in consoles)

    summary = summarize(open_dump(written.path))
    values = vmcoreinfo_values(summary["vmcoreinfo"])
    assert [k for k in KERNEL_KEYS if k not in values] == []
    build_id, symbols = kernel_elf()
    assert values["BUILD-ID"] == build_id
    assert values["OSRELEASE"] == "dumplab-1.0" and values["PAGESIZE"] == "4096"
    for name in ("init_uts_ns", "_stext", "lowcore_ptr", "high_memory"):
        assert int(values[f"SYMBOL({name})"], 16) == symbols[name if name != "_stext" else "_text"]
    assert int(values["SAMODE31"], 16) == symbols["_samode31"]
    assert int(values["EAMODE31"], 16) == symbols["_eamode31"]
    # CRASHTIME: the TOD clock at the crash, as seconds since 1970 (the LPAR starts at 2026-01-01).
    crash_time = int(values["CRASHTIME"])
    elapsed = run.lpar.clock.now // 1_000_000_000
    assert 0 <= crash_time - int(ACTIVATION_TIME.timestamp()) <= elapsed
    assert summary["vmcoreinfo_source"] == "VMCOREINFO note"
    assert summary["system"]["utsname"] == {
        "sysname": "Linux", "nodename": "dumplab", "release": "dumplab-1.0",
        "version": "#1 SMP DumpLab", "machine": "s390x", "domainname": "(none)"}
    assert summary["system"]["crash_time"] == crash_time


def test_inspect_shows_release_node_and_crash_time(tmp_path: Path, capsys) -> None:
    from console.cli import main

    run = booted_with_kdump(tmp_path, cpus=1)
    trigger(run, "panic")
    written = wait_for_vmcore(run)
    assert main(["inspect", str(written.path)]) == 0
    out = capsys.readouterr().out
    crash_time = int(vmcoreinfo_values(summarize(open_dump(written.path))["vmcoreinfo"])["CRASHTIME"])
    when = datetime.datetime.fromtimestamp(crash_time, datetime.UTC)
    assert "System    node dumplab  release dumplab-1.0" in out
    assert f"crashed {when:%Y-%m-%d %H:%M:%S} UTC (CRASHTIME {crash_time})" in out
