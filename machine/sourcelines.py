"""The guest programs' C source beside their code: DWARF line tables (the programs are built
with -g, and -ffile-prefix-map so that the paths are relative to assets/), read with
pyelftools.

`SourceMap.line_of(address)` gives the file and line an instruction address belongs to, as
`addr2line` does: the row of the line table with the greatest address not above it, in the
sequence that covers it.
"""

from __future__ import annotations

import bisect
import functools
from dataclasses import dataclass
from pathlib import Path

from elftools.elf.elffile import ELFFile

from machine.paths import assets_dir, program_path


@dataclass(frozen=True)
class SourceLine:
    file: str  # as the line table names it, relative to assets/ (src/purgatory/purgatory.c)
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"

    def text(self) -> str:
        """The source line itself ('' when the file is not at hand)."""
        lines = _source_lines(self.file)
        return lines[self.line - 1].rstrip() if 0 < self.line <= len(lines) else ""


class SourceMap:
    """The line table of one program (addresses as linked)."""

    def __init__(self, path: Path) -> None:
        starts: list[int] = []
        ends: list[int] = []
        rows: list[SourceLine | None] = []
        with open(path, "rb") as f:
            elf = ELFFile(f)
            if elf.has_dwarf_info():
                for unit in elf.get_dwarf_info().iter_CUs():
                    _read_unit(elf.get_dwarf_info(), unit, starts, rows, ends)
        order = sorted(range(len(starts)), key=lambda i: (starts[i], i))
        self._starts = [starts[i] for i in order]
        self._rows = [rows[i] for i in order]

    def line_of(self, address: int) -> SourceLine | None:
        index = bisect.bisect_right(self._starts, address) - 1
        return self._rows[index] if index >= 0 else None

    def __bool__(self) -> bool:
        return bool(self._starts)


def _read_unit(dwarf, unit, starts: list[int], rows: list, ends: list) -> None:
    program = dwarf.line_program_for_CU(unit)
    if program is None:
        return
    header = program.header
    version = header["version"]
    files = header["file_entry"]
    directories = header["include_directory"]

    def name(index: int) -> str:
        entry = files[index if version >= 5 else index - 1]
        directory = entry.dir_index if version >= 5 else entry.dir_index - 1
        base = entry.name.decode()
        if 0 <= directory < len(directories) and not base.startswith("/"):
            prefix = directories[directory].decode()
            base = f"{prefix}/{base}" if prefix not in ("", ".") else base
        return base.removeprefix("./")

    for entry in program.get_entries():
        state = entry.state
        if state is None:
            continue
        starts.append(state.address)
        # The end of a sequence maps nothing: addresses past it belong to no line.
        rows.append(None if state.end_sequence else SourceLine(name(state.file), state.line))


@functools.cache
def _source_lines(file: str) -> list[str]:
    try:
        return (assets_dir() / file).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []


@functools.cache
def source_map(program: str) -> SourceMap:
    """The line table of a built program (assets/bin/PROGRAM.elf)."""
    return SourceMap(program_path(program))


def line_at(program: str, address: int, base: int = 0) -> SourceLine | None:
    """The source line of an address of PROGRAM placed at base (the purgatory: where kexec
    put it; the others: 0, they run where they are linked)."""
    return source_map(program).line_of(address - base)
