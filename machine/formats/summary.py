"""What `dumplab inspect` shows about a dump, as one JSON-ready dict (the text form is the
console's business)."""

from __future__ import annotations

from typing import Any

from machine.formats.common import PAGE_SIZE, DumpFormatError
from machine.formats.elfcore import Vmcore
from machine.formats.notes import NOTE_NAMES, CpuNotes
from machine.formats.s390dump import S390Dump
from machine.formats.select import SystemView, find_kdump_kernel
from machine.psw import (
    PSW_ASC_SHIFT,
    PSW_BA,
    PSW_CC_SHIFT,
    PSW_DAT,
    PSW_EA,
    PSW_EXT,
    PSW_IO,
    PSW_KEY_SHIFT,
    PSW_MCHECK,
    PSW_PER,
    PSW_PROBLEM,
    PSW_WAIT,
)

ASC_NAMES = ("primary", "access-register", "secondary", "home")


def addressing_mode(mask: int) -> int | None:
    """24, 31 or 64 from the EA and BA bits; None for the invalid EA-without-BA."""
    return {(False, False): 24, (False, True): 31, (True, True): 64}.get(
        (bool(mask & PSW_EA), bool(mask & PSW_BA)))


def run_state(mask: int) -> str:
    """"running", "enabled wait" or "disabled wait" (no I/O, external or machine-check
    interruption can end it)."""
    if not mask & PSW_WAIT:
        return "running"
    return "enabled wait" if mask & (PSW_IO | PSW_EXT | PSW_MCHECK) else "disabled wait"


def decode_psw(mask: int, address: int) -> dict[str, Any]:
    """The PSW's fields by name."""
    return {
        "mask": mask, "address": address,
        "key": (mask >> PSW_KEY_SHIFT) & 0xF,
        "per": bool(mask & PSW_PER), "dat": bool(mask & PSW_DAT),
        "io": bool(mask & PSW_IO), "ext": bool(mask & PSW_EXT),
        "mcheck": bool(mask & PSW_MCHECK), "wait": bool(mask & PSW_WAIT),
        "problem_state": bool(mask & PSW_PROBLEM),
        "asc": ASC_NAMES[(mask >> PSW_ASC_SHIFT) & 3],
        "cc": (mask >> PSW_CC_SHIFT) & 3,
        "addressing": addressing_mode(mask),
        "state": run_state(mask),
    }


def cpu_summary(cpu: CpuNotes) -> dict[str, Any]:
    """One CPU's registers; the clock comparator as stored (the comparator >> 8)."""
    return {
        "pid": cpu.pid, "prefix": cpu.prefix, "psw": decode_psw(*cpu.psw),
        "gprs": list(cpu.gprs), "acrs": list(cpu.acrs), "crs": list(cpu.ctrs),
        "fprs": list(cpu.fprs), "fpc": cpu.fpc, "cpu_timer": cpu.timer,
        "clock_comparator": cpu.todcmp, "tod_programmable": cpu.todpreg,
    }


def _memory(dump: Vmcore | S390Dump | SystemView) -> dict[str, Any]:
    ranges = dump.ranges
    return {
        "ranges": [{"start": start, "end": end, "size": end - start} for start, end in ranges],
        "bytes": dump.memory_size,
        "pages": dump.memory_size // PAGE_SIZE,
        "pages_filtered": dump.pages_filtered,
    }


def _elf_details(dump: Vmcore) -> dict[str, Any]:
    return {
        "phnum": dump.header.phnum,
        "notes_segments": [{"offset": o, "size": s} for o, s in dump.note_segments],
        "notes": [{"name": n.name, "type": n.type, "type_name": NOTE_NAMES.get(n.type),
                   "descsz": len(n.desc), "offset": n.offset} for n in dump.notes],
        "loads": [{"offset": ld.offset, "paddr": ld.paddr, "filesz": ld.filesz,
                   "memsz": ld.memsz} for ld in dump.loads],
    }


def _s390_details(dump: S390Dump) -> dict[str, Any]:
    header = dump.header
    return {
        "version": header.version, "dump_level": header.dump_level, "arch": header.arch,
        "mem_size": header.mem_size, "mem_start": header.mem_start, "mem_end": header.mem_end,
        "num_pages": header.num_pages, "tod": header.tod, "cpu_id": header.cpu_id,
        "build_arch": header.build_arch, "mem_size_real": header.mem_size_real,
        "cpu_cnt": header.cpu_cnt, "real_cpu_cnt": header.real_cpu_cnt,
        "lc_vec": list(header.lc_vec), "end_tod": dump.end_tod,
    }


def _two_systems(dump: Vmcore | S390Dump | SystemView) -> dict[str, Any] | None:
    """OLDMEM_BASE and OLDMEM_SIZE when the dump holds a kdump kernel and the production
    system it was to dump (zgetdump's test), else None."""
    kdump = dump.kdump if isinstance(dump, SystemView) else find_kdump_kernel(dump)
    return None if kdump is None else {"oldmem_base": kdump.base, "oldmem_size": kdump.size}


UTS_FIELD = 65  # each field of struct new_utsname
UTS_FIELDS = ("sysname", "nodename", "release", "version", "machine", "domainname")


def vmcoreinfo_values(text: str | None) -> dict[str, str]:
    """VMCOREINFO's KEY=value lines as a dict (the last of a repeated key wins)."""
    values: dict[str, str] = {}
    for line in (text or "").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key] = value
    return values


def system_identity(dump: Vmcore | S390Dump | SystemView) -> dict[str, Any]:
    """What crash shows first: release (OSRELEASE), node name (uname from init_uts_ns in the
    dumped memory, found through VMCOREINFO) and crash time (CRASHTIME, seconds since 1970)."""
    values = vmcoreinfo_values(dump.vmcoreinfo)
    crash_time = values.get("CRASHTIME", "")
    return {"release": values.get("OSRELEASE"), "build_id": values.get("BUILD-ID"),
            "crash_time": int(crash_time) if crash_time.isdecimal() else None,
            **_utsname(dump, values)}


def _utsname(dump: Vmcore | S390Dump | SystemView, values: dict[str, str]) -> dict[str, Any]:
    try:
        address = int(values["SYMBOL(init_uts_ns)"], 16) + int(values.get(
            "OFFSET(uts_namespace.name)", "0"))
        raw = dump.read(address, UTS_FIELD * len(UTS_FIELDS))
    except (KeyError, ValueError, DumpFormatError, OverflowError):
        return {"utsname": None}
    fields = [raw[i * UTS_FIELD:(i + 1) * UTS_FIELD].split(b"\0")[0].decode("ascii", "replace")
              for i in range(len(UTS_FIELDS))]
    return {"utsname": dict(zip(UTS_FIELDS, fields, strict=True))}


def _cpus_and_source(dump: Vmcore | S390Dump | SystemView) -> tuple[list[CpuNotes], str | None]:
    """The CPUs (numbered from 1) and where VMCOREINFO was found."""
    if isinstance(dump, Vmcore):
        source = "VMCOREINFO note" if dump.vmcoreinfo is not None else "no VMCOREINFO note"
        return dump.cpus, source
    cpus = [CpuNotes.from_status(status, pid) for pid, status in enumerate(dump.cpus, start=1)]
    return cpus, dump.os_info.describe()


def _selection(dump: Vmcore | S390Dump | SystemView) -> dict[str, Any]:
    """Which system of the dump the summary shows, and where its CPUs come from."""
    if not isinstance(dump, SystemView):
        return {"select": "all", "two_systems": _two_systems(dump)}
    return {"select": dump.select, "two_systems": _two_systems(dump),
            "cpus_source": dump.cpus_source, "cpu_origins": list(dump.cpu_origins)}


def summarize(dump: Vmcore | S390Dump | SystemView) -> dict[str, Any]:
    """Everything `dumplab inspect` reports, JSON-ready (integers stay integers). A
    SystemView (`--select prod|kdump`) reports its own memory, CPUs and VMCOREINFO with the
    file's header."""
    source = dump.dump if isinstance(dump, SystemView) else dump
    details = _elf_details(source) if isinstance(source, Vmcore) else _s390_details(source)
    cpus, vmcoreinfo_source = _cpus_and_source(dump)
    return {
        "file": str(dump.path), "size": dump.file_size, "format": dump.format,
        dump.format: details,
        "memory": _memory(dump),
        "cpus": [cpu_summary(cpu) for cpu in cpus],
        "vmcoreinfo": dump.vmcoreinfo,
        "vmcoreinfo_source": vmcoreinfo_source,
        "system": system_identity(dump),
        "selection": _selection(dump),
    }
