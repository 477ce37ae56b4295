"""A dump file opened for the viewer: machine.formats reads it, and this module turns what it
read into text for the viewer's panels. Pure: no Textual, tested on good and broken files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from console.control.dumpfiles import describe_psw, render
from machine.formats import S390Dump, Vmcore, open_dump
from machine.formats.summary import summarize
from machine.lpar import CpuSnapshot, Snapshot

MAX_FILE_PROBLEM = 300


class DumpOpenError(Exception):
    """The file is not a dump the viewer can show; str() is one line for the operator."""


@dataclass(frozen=True)
class OpenedDump:
    """A dump and its summary (machine.formats.summary)."""

    path: Path
    dump: Vmcore | S390Dump
    summary: dict[str, Any]

    @property
    def cpus(self) -> list[dict[str, Any]]:
        return list(self.summary["cpus"])

    def title(self) -> str:
        kind = "ELF vmcore (kdump)" if self.summary["format"] == "elf" else "s390 dump (full)"
        return (f"{self.path.name}: {kind}, {self.summary['size']:,} bytes, "
                f"{len(self.cpus)} CPUs")

    def read(self, address: int, length: int) -> bytes:
        """Old memory; what the dump does not hold reads as zeros."""
        return self.dump.read(address, length, holes_as_zero=True)


def open_dump_file(path: str | Path) -> OpenedDump:
    """Read a dump's headers, notes and VMCOREINFO. Any problem with the file, including
    truncated or random bytes, is a DumpOpenError naming the file and the problem."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DumpOpenError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    try:
        dump = open_dump(path)
        return OpenedDump(path, dump, summarize(dump))
    except OSError as error:
        raise DumpOpenError(f"{path}: {error.strerror or error}") from None
    except Exception as error:  # noqa: BLE001 - a damaged file must never crash the console
        text = " ".join(str(error).split())[:MAX_FILE_PROBLEM] or type(error).__name__
        raise DumpOpenError(f"{path}: not a dump DumpLab can read ({text})") from None


def summary_lines(opened: OpenedDump) -> list[str]:
    """Headers and memory ranges (the CPUs and VMCOREINFO have panels of their own)."""
    lines = []
    for line in render(opened.summary):
        if line.startswith("CPUs"):
            break
        if line.startswith("File "):  # the name only: the directory is the work directory
            line = f"File      {opened.path.name} ({opened.summary['size']} bytes)"
        lines.append(line)
    lines.append(f"CPUs      {len(opened.cpus)} (see the CPUs panel)")
    return lines


def vmcoreinfo_text(opened: OpenedDump) -> str:
    text = opened.summary.get("vmcoreinfo")
    if text is None:
        return f"No VMCOREINFO ({opened.summary.get('vmcoreinfo_source', 'not found')})."
    return f"VMCOREINFO ({opened.summary.get('vmcoreinfo_source')}):\n{text}"


@dataclass(frozen=True)
class RegisterRow:
    """One register in the dump and, if there is one, in the pre-dump snapshot."""

    name: str
    in_dump: int
    in_snapshot: int | None

    @property
    def differs(self) -> bool:
        return self.in_snapshot is not None and self.in_snapshot != self.in_dump


def _dump_registers(cpu: dict[str, Any]) -> list[tuple[str, int]]:
    psw = cpu["psw"]
    rows = [("psw mask", psw["mask"]), ("psw addr", psw["address"]), ("prefix", cpu["prefix"])]
    rows += [(f"r{i}", value) for i, value in enumerate(cpu["gprs"])]
    rows += [(f"cr{i}", value) for i, value in enumerate(cpu["crs"])]
    rows += [(f"ar{i}", value) for i, value in enumerate(cpu["acrs"])]
    rows += [("fpc", cpu["fpc"]), ("cpu timer", cpu["cpu_timer"])]
    return rows


def _snapshot_registers(cpu: CpuSnapshot) -> dict[str, int]:
    values = {"psw mask": cpu.psw_mask, "psw addr": cpu.psw_addr, "prefix": cpu.prefix,
              "fpc": cpu.fpc, "cpu timer": cpu.cpu_timer}
    values.update({f"r{i}": v for i, v in enumerate(cpu.gprs)})
    values.update({f"cr{i}": v for i, v in enumerate(cpu.crs)})
    values.update({f"ar{i}": v for i, v in enumerate(cpu.ars)})
    return values


def compare_cpu(cpu: dict[str, Any], snapshot: Snapshot | None) -> list[RegisterRow]:
    """The dump's registers of one CPU beside the same CPU in the snapshot (pr_pid N is the
    CPU with address N-1, the order the notes are written in)."""
    theirs: dict[str, int] = {}
    if snapshot is not None:
        address = cpu["pid"] - 1
        match = [c for c in snapshot.cpus if c.address == address]
        theirs = _snapshot_registers(match[0]) if match else {}
    return [RegisterRow(name, value, theirs.get(name) if theirs else None)
            for name, value in _dump_registers(cpu)]


def cpu_heading(cpu: dict[str, Any]) -> str:
    psw = cpu["psw"]
    return (f"CPU pr_pid {cpu['pid']}  prefix {cpu['prefix']:#010x}\n"
            f"PSW {psw['mask']:016x} {psw['address']:016x}\n    {describe_psw(psw)}")
