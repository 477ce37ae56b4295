"""`dumplab inspect` and `dumplab convert`: dump files on the command line.

Both report a bad file as one line on stderr naming the file and the problem, with exit
status 1, never a traceback; an interrupted convert (Ctrl+C, SIGTERM) leaves no output file
(console/cli.py reports it).
"""

from __future__ import annotations

import argparse
import datetime
import json
from collections.abc import Iterator
from typing import Any, TextIO

from console.control.exits import EXIT_FAILED, EXIT_OK
from machine.formats import DumpFormatError, convert, open_dump
from machine.formats.common import PARSER_ERRORS, malformed
from machine.formats.select import select_system
from machine.formats.summary import summarize
from machine.userfiles import UserFileError, shown_path

MIB = 1 << 20


def _problem(path: str, error: BaseException) -> str:
    """One line naming the file and what is wrong with it (control characters in a file
    name escaped, so that it stays one line)."""
    if isinstance(error, PARSER_ERRORS):
        error = malformed("dump", error)
    if isinstance(error, OSError):
        return f"{shown_path(error.filename or path)}: {error.strerror or error}"
    return f"{shown_path(path)}: {error}"


def inspect_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """`dumplab inspect FILE [--select prod|kdump|all] [--json]`."""
    try:
        summary = summarize(select_system(open_dump(args.file), args.select))
    except (DumpFormatError, OSError, ValueError, *PARSER_ERRORS) as error:
        err.write(f"dumplab inspect: {_problem(args.file, error)}\n")
        return EXIT_FAILED
    if args.json:
        out.write(json.dumps(summary) + "\n")
    else:
        out.writelines(line + "\n" for line in render(summary))
    return EXIT_OK


def convert_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """`dumplab convert IN OUT [--format elf|s390] [--select prod|kdump]`."""
    try:
        result = convert(args.input, args.output, args.format, select=args.select)
    except UserFileError as error:  # names the input or the output itself
        err.write(f"dumplab convert: {error}\n")
        return EXIT_FAILED
    except (DumpFormatError, OSError, ValueError, *PARSER_ERRORS) as error:
        err.write(f"dumplab convert: {_problem(args.input, error)}\n")
        return EXIT_FAILED
    write = result.write
    source = result.in_format
    if result.select != "all":
        source += f", {result.select} system"
    out.write(f"{args.input} ({source}) -> {args.output} ({result.out_format}): "
              f"{write.bytes_written} bytes in {write.seconds:.2f} s, "
              f"{write.pages_written} pages written, {write.pages_skipped} zero pages left "
              "out\n")
    return EXIT_OK


# ---------------------------------------------------------------------------------------------
# The text form of `dumplab inspect`


def _size(count: int) -> str:
    if count >= MIB and count % MIB == 0:
        return f"{count // MIB} MiB"
    return f"{count} bytes" if count < 1024 or count % 1024 else f"{count // 1024} KiB"


def _format_line(summary: dict[str, Any]) -> str:
    if summary["format"] == "elf":
        elf = summary["elf"]
        return (f"ELF vmcore (ELF64 big-endian, ET_CORE, EM_S390): {elf['phnum']} program "
                f"headers, {len(elf['loads'])} PT_LOAD, {len(elf['notes'])} notes")
    s390 = summary["s390"]
    return (f"s390 dump format, version {s390['version']}, arch {s390['arch']} (64-bit), "
            f"dump level {s390['dump_level']}")


def _s390_lines(s390: dict[str, Any]) -> Iterator[str]:
    yield (f"Header    tod {s390['tod']:016x}  cpu_id {s390['cpu_id']:016x}  "
           f"mem_size_real {_size(s390['mem_size_real'])}  build_arch {s390['build_arch']}")
    yield (f"          cpu_cnt {s390['cpu_cnt']}  real_cpu_cnt {s390['real_cpu_cnt']}  "
           f"end marker DUMP_END, tod {s390['end_tod']:016x}")


SYSTEM_NAMES = {"prod": "the production system, the swap undone",
                "kdump": "the kdump kernel's system"}


def _selection_lines(selection: dict[str, Any]) -> Iterator[str]:
    """Which system is shown, when the dump holds two (nothing for a dump of one system)."""
    two = selection.get("two_systems")
    if two is None:
        return
    where = (f"a kdump kernel at 0x10418: OLDMEM_BASE {two['oldmem_base']:#x}, OLDMEM_SIZE "
             f"{_size(two['oldmem_size'])}")
    select = selection["select"]
    if select == "all":
        yield f"Systems   two, {where}"
        yield "          shown as dumped; --select prod or --select kdump shows one of them"
        return
    yield f"Selected  {select}: {SYSTEM_NAMES[select]} ({where})"
    yield f"          CPUs from {selection['cpus_source']}"


def _system_lines(system: dict[str, Any]) -> Iterator[str]:
    """Release, node name and crash time, when VMCOREINFO (and uname in memory) give them."""
    uts = system.get("utsname") or {}
    if system.get("release") is None and not uts:
        return
    node = f"node {uts['nodename']}  " if uts.get("nodename") else ""
    yield f"System    {node}release {system.get('release') or uts.get('release') or '?'}"
    if system.get("build_id"):
        yield f"          build id {system['build_id']}"
    if system.get("crash_time") is not None:
        when = datetime.datetime.fromtimestamp(system["crash_time"], datetime.UTC)
        yield f"          crashed {when:%Y-%m-%d %H:%M:%S} UTC (CRASHTIME {system['crash_time']})"


def _memory_lines(memory: dict[str, Any]) -> Iterator[str]:
    label = "Memory"
    for item in memory["ranges"] or [{"start": 0, "end": 0, "size": 0}]:
        yield (f"{label:<10}{item['start']:#018x}-{max(item['end'] - 1, 0):#018x}  "
               f"{_size(item['size'])}")
        label = ""
    filtered = memory["pages_filtered"]
    note = (f", {filtered} all-zero pages filtered out (read as zeros)" if filtered
            else ", none filtered")
    yield f"          {memory['pages']} pages{note}"


def describe_psw(psw: dict[str, Any]) -> str:
    """The PSW's mask bits in words."""
    mode = f"{psw['addressing']}-bit" if psw["addressing"] else "invalid addressing mode"
    parts = [f"key {psw['key']}", mode, f"CC {psw['cc']}",
             f"I/O {'enabled' if psw['io'] else 'disabled'}",
             f"EXT {'enabled' if psw['ext'] else 'disabled'}",
             "problem state" if psw["problem_state"] else "supervisor state"]
    if psw["dat"]:
        parts.append(f"DAT on ({psw['asc']})")
    if psw["mcheck"]:
        parts.append("machine checks enabled")
    if psw["per"]:
        parts.append("PER")
    state = psw["state"]
    if state == "disabled wait":
        state += f", code {psw['address']:#x}"
    return ", ".join(parts) + f"; {state}"


def _cpu_lines(cpu: dict[str, Any], dump_format: str, origin: str | None = None) -> Iterator[str]:
    psw = cpu["psw"]
    # A vmcore numbers its CPUs by pr_pid; an s390 dump lists their prefixes in lc_vec; a
    # selected system says where it found each CPU (origin).
    if origin is None:
        origin = f"pr_pid {cpu['pid']}" if dump_format == "elf" else f"lc_vec[{cpu['pid'] - 1}]"
    yield f"CPU {cpu['pid']} ({origin})  prefix {cpu['prefix']:#010x}"
    yield f"  PSW   {psw['mask']:016x} {psw['address']:016x}"
    yield f"        {describe_psw(psw)}"
    gprs = cpu["gprs"]
    for row in range(0, 16, 4):
        cells = "  ".join(f"r{n:<2} {gprs[n]:016x}" for n in range(row, row + 4))
        yield f"  {cells}"
    yield (f"  CPU timer {cpu['cpu_timer']:016x}  clock comparator "
           f"{cpu['clock_comparator']:016x} (as stored: the value >> 8)")
    yield f"  TOD programmable register {cpu['tod_programmable']:08x}  FPC {cpu['fpc']:08x}"


def render(summary: dict[str, Any]) -> Iterator[str]:
    """The lines `dumplab inspect` prints for a summary (machine.formats.summary)."""
    yield f"File      {summary['file']} ({summary['size']} bytes)"
    yield f"Format    {_format_line(summary)}"
    if summary["format"] == "s390":
        yield from _s390_lines(summary["s390"])
    selection = summary.get("selection", {})
    yield from _selection_lines(selection)
    yield from _system_lines(summary["system"])
    yield from _memory_lines(summary["memory"])
    yield f"CPUs      {len(summary['cpus'])}"
    origins = selection.get("cpu_origins") or [None] * len(summary["cpus"])
    for cpu, origin in zip(summary["cpus"], origins, strict=True):
        yield ""
        yield from _cpu_lines(cpu, summary["format"], origin)
    yield ""
    text = summary["vmcoreinfo"]
    if text is None:
        yield f"VMCOREINFO: none ({summary['vmcoreinfo_source']})"
        return
    yield f"VMCOREINFO ({summary['vmcoreinfo_source']}, {len(text)} bytes):"
    yield from (f"  {line}" for line in text.splitlines())
