"""Disassembly (capstone) around the PSW of the selected CPU, with the symbols of the asset
ELFs and their C source lines (DWARF line tables) interleaved. Decoding starts at the start of the function around the PSW, a known instruction
boundary, because s390x instructions are 2, 4 or 6 bytes long and cannot be decoded
backwards."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import ClassVar

import capstone
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.content import Content
from textual.message import Message
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
    # A place a stage card's "Show me" named instead of the PSW: (address, what was named)
    target: tuple[int, str] | None = None


def _code_target(lpar: Lpar, where: str) -> int:
    """The address a card names: hex, or a code symbol (`purgatory:purgatory_main` is the
    loaded crash image's purgatory, where kexec put it)."""
    if re.fullmatch(r"0x[0-9a-fA-F]+", where):
        return int(where, 16)
    address = lpar.code_address(where)
    if address is None:
        raise ValueError(f"code: no symbol {where} in what is loaded now")
    return address


def code_probe(cpu_index: int, at: str | None = None):  # type: ignore[no-untyped-def]
    """A probe reading the code around the PSW of one CPU, or around `at` (an address or a
    code symbol) when a stage card asked to show that place (machine thread)."""
    def probe(lpar: Lpar, snapshot: Snapshot) -> CodeWindow | None:
        if cpu_index >= len(snapshot.cpus):
            return None
        psw = snapshot.cpus[cpu_index].psw_addr
        target = _code_target(lpar, at) if at else None
        centre = psw if target is None else target
        start = symbols.function_start(centre, snapshot.program)
        if start is None or not 0 <= centre - start <= MAX_BACK:
            start = centre
        end = min(centre + AHEAD, lpar.profile.memory)
        data = lpar.read(start, end - start) if end > start else b""
        return CodeWindow(cpu_index, psw, start, data, snapshot.program,
                          lpar.breakpoints.addresses, _sources(lpar, start, end),
                          None if target is None else (target, at or ""))
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
        named = window.target is not None and insn.address == window.target[0]
        mark = "▶" if here else "→" if named else ("●" if insn.address in breakpoints else " ")
        comment = _target_comment(insn.op_str, window.program)
        text = (f"{mark} {insn.address:08x}  {insn.bytes.hex():<12}  "
                f"{insn.mnemonic:<7} {insn.op_str}{comment}")
        style = "bold reverse" if here else "bold underline" if named else ""
        lines.append(Content.styled(text, style) if style else Content(text))
    return lines


def _target_comment(op_str: str, program: str | None) -> str:
    match = _TARGET.search(op_str)
    if match is None:
        return ""
    name = symbols.symbolize(int(match.group(1), 16), program)
    return f"  <{name}>" if name else ""


class DisassemblyView(VerticalScroll, can_focus=True):
    """The instructions around the PSW; ▶ marks the PSW, ● a breakpoint, → the place a stage
    card's "Show me" named (Home: back to the PSW)."""

    HELP_TOPIC = "disassembly"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("home", "follow_psw", "Back to the PSW", id="code.follow-psw", show=False,
                tooltip="Show the code around the PSW again after a card's Show me"),
    ]

    class FollowPsw(Message):
        """The operator wants the code around the PSW again."""

    def action_follow_psw(self) -> None:
        self.post_message(self.FollowPsw())

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._body = Static(id="disasm-body")

    def compose(self):  # type: ignore[no-untyped-def]
        yield self._body

    def show(self, result: object) -> None:
        if isinstance(result, ProbeError):
            # Through update_static too: its memory of what is drawn must stay true, or the
            # same window shown again after this message would be skipped as unchanged.
            update_static(self._body, Content.from_markup("[bold $error]$e[/]", e=result.message))
            return
        if not isinstance(result, CodeWindow):
            update_static(self._body, Content("Disassembly appears once a CPU has a PSW "
                                              "(Activate and Load)."))
            return
        header = Content.from_markup(
            "[b]CPU $cpu[/] PSW address $psw $where", cpu=str(result.cpu),
            psw=f"{result.psw:016x}", where=symbols.symbolize(result.psw, result.program) or "")
        if result.target is not None:
            header += Content.from_markup("\n[b]→ $name[/] at $address (Home: back to the PSW)",
                                          name=result.target[1], address=f"{result.target[0]:08x}")
        lines = disassemble(result, result.breakpoints)
        if not lines:
            lines = [Content("(no instructions decoded here)")]
        update_static(self._body, Content("\n").join([header, *lines]))
        self._scroll_to_psw(lines)

    def _scroll_to_psw(self, lines: list[Content]) -> None:
        """Scroll to the PSW's line, or to the named place's when there is one."""
        marks = ("→",) if any(line.plain.startswith("→") for line in lines) else ("▶",)
        for index, line in enumerate(lines):
            if line.plain.startswith(marks):
                self.scroll_to(y=max(0, index - self.size.height // 3), animate=False)
                return
