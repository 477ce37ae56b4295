"""Disassembly (capstone) around the PSW of the selected CPU, with the symbols of the asset
ELFs and their C source lines (DWARF line tables) interleaved. Decoding starts at the start of the function around the PSW, a known instruction
boundary, because s390x instructions are 2, 4 or 6 bytes long and cannot be decoded
backwards."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import capstone
from textual.containers import VerticalScroll
from textual.content import Content
from textual.widgets import Static

from console.control.commands import source_line
from console.control.runner import ProbeError
from console.tui.widgets.inspect import symbols
from console.tui.widgets.render import update_static
from machine.lpar import Lpar, Snapshot

MAX_BACK = 0x600  # farthest before the PSW decoding may start
AHEAD = 0x80
_TARGET = re.compile(r"0x([0-9a-f]+)")


@dataclass(frozen=True)
class CodeWindow:
    """Storage around a CPU's PSW, read by the probe."""

    cpu: int
    psw: int
    start: int
    data: bytes
    program: str | None
    breakpoints: frozenset[int] = frozenset()
    # (address, "file:line  text") where a new C source line begins (the DWARF line table)
    sources: tuple[tuple[int, str], ...] = ()


def code_probe(cpu_index: int):  # type: ignore[no-untyped-def]
    """A probe reading the code around the PSW of one CPU (machine thread)."""
    def probe(lpar: Lpar, snapshot: Snapshot) -> CodeWindow | None:
        if cpu_index >= len(snapshot.cpus):
            return None
        psw = snapshot.cpus[cpu_index].psw_addr
        start = symbols.function_start(psw, snapshot.program)
        if start is None or not 0 <= psw - start <= MAX_BACK:
            start = psw
        end = min(psw + AHEAD, lpar.profile.memory)
        data = lpar.read(start, end - start) if end > start else b""
        return CodeWindow(cpu_index, psw, start, data, snapshot.program,
                          lpar.breakpoints.addresses, _sources(lpar, start, end))
    return probe


def _sources(lpar: Lpar, start: int, end: int) -> tuple[tuple[int, str], ...]:
    """Where each source line begins in [start, end) (instructions start at even addresses)."""
    found, previous = [], None
    for address in range(start, end, 2):
        line = source_line(lpar, address)
        if line is not None and line != previous:
            found.append((address, f"{line}  {line.text().strip()}"))
        previous = line
    return tuple(found)


@functools.lru_cache(maxsize=1)
def _engine() -> capstone.Cs:
    return capstone.Cs(capstone.CS_ARCH_SYSZ, capstone.CS_MODE_BIG_ENDIAN)


def disassemble(window: CodeWindow, breakpoints: set[int]) -> list[Content]:
    """One line per instruction (and a label line where a symbol starts)."""
    lines: list[Content] = []
    sources = dict(window.sources)
    for insn in _engine().disasm(window.data, window.start):
        name = symbols.symbolize(insn.address, window.program)
        if name and "+" not in name:
            lines.append(Content.from_markup("[b $accent]$name:[/]", name=name))
        if insn.address in sources:
            lines.append(Content.from_markup("[$foreground-muted]    $s[/]",
                                             s=sources[insn.address]))
        here = insn.address == window.psw
        mark = "▶" if here else ("●" if insn.address in breakpoints else " ")
        comment = _target_comment(insn.op_str, window.program)
        text = (f"{mark} {insn.address:08x}  {insn.bytes.hex():<12}  "
                f"{insn.mnemonic:<7} {insn.op_str}{comment}")
        lines.append(Content.styled(text, "bold reverse") if here else Content(text))
    return lines


def _target_comment(op_str: str, program: str | None) -> str:
    match = _TARGET.search(op_str)
    if match is None:
        return ""
    name = symbols.symbolize(int(match.group(1), 16), program)
    return f"  <{name}>" if name else ""


class DisassemblyView(VerticalScroll, can_focus=True):
    """The instructions around the PSW; ▶ marks the PSW, ● a breakpoint."""

    HELP_TOPIC = "disassembly"

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._body = Static(id="disasm-body")

    def compose(self):  # type: ignore[no-untyped-def]
        yield self._body

    def show(self, result: object) -> None:
        if isinstance(result, ProbeError):
            self._body.update(Content.from_markup("[bold $error]$e[/]", e=result.message))
            return
        if not isinstance(result, CodeWindow):
            self._body.update("Disassembly appears once a CPU has a PSW (Activate and Load).")
            return
        header = Content.from_markup(
            "[b]CPU $cpu[/] PSW address $psw $where", cpu=str(result.cpu),
            psw=f"{result.psw:016x}", where=symbols.symbolize(result.psw, result.program) or "")
        lines = disassemble(result, result.breakpoints)
        if not lines:
            lines = [Content("(no instructions decoded here)")]
        update_static(self._body, Content("\n").join([header, *lines]))
        self._scroll_to_psw(lines)

    def _scroll_to_psw(self, lines: list[Content]) -> None:
        for index, line in enumerate(lines):
            if line.plain.startswith("▶"):
                self.scroll_to(y=max(0, index - self.size.height // 3), animate=False)
                return
