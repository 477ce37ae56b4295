"""Registers of one CPU: the PSW decoded, GPRs, CRs, ARs, FPRs, prefix and timers. Values
that changed at the last change of this CPU are shown reversed, so a step shows its effect."""

from __future__ import annotations

import re

from textual.containers import VerticalScroll
from textual.content import Content
from textual.widgets import Static

from console.tui.widgets.inspect import symbols
from console.tui.widgets.inspect.psw import Psw, state_flags, wait_code_meaning
from console.tui.widgets.render import update_static
from machine.lpar import CpuSnapshot, Snapshot

CELL = 23  # "GR00 0123456789abcdef  "


def changed_fields(old: CpuSnapshot | None, new: CpuSnapshot) -> set[str]:
    """Names of the values that differ (`gprs.3`, `psw`, `prefix`, ...)."""
    if old is None or old.address != new.address:
        return set()
    changed = set()
    for name in ("gprs", "crs", "ars", "fprs"):
        changed |= {f"{name}.{i}" for i, (a, b) in
                    enumerate(zip(getattr(old, name), getattr(new, name), strict=True)) if a != b}
    for name in ("psw_mask", "psw_addr", "prefix", "fpc", "cpu_timer", "clock_comparator"):
        if getattr(old, name) != getattr(new, name):
            changed.add(name)
    return changed


def _value(text: str, changed: bool, focused: bool = False) -> str:
    # Reverse video marks a change: visible in every theme, even without colour. The value a
    # stage card pointed at ("Show me") is underlined and marked, changed or not.
    shown = f"[reverse $accent]{text}[/]" if changed else text
    return f"[bold underline $warning]▸{shown}[/]" if focused else shown


# How a stage card names a register (`r2`, `cr0`, `a1`, `f4`, `psw`, `prefix`) -> field names.
_REGISTER_NAME = re.compile(r"(r|gr|cr|a|ar|f|fpr)(\d{1,2})")
_FAMILY = {"r": "gprs", "gr": "gprs", "cr": "crs", "a": "ars", "ar": "ars", "f": "fprs",
           "fpr": "fprs"}


def register_field(name: str) -> str | None:
    """The field a register name means (`r2` -> `gprs.2`, `psw` -> `psw_addr`), or None."""
    name = name.lower()
    if name in ("psw", "psw_addr", "psw_mask", "prefix", "fpc", "cpu_timer", "clock_comparator"):
        return "psw_addr" if name == "psw" else name
    match = _REGISTER_NAME.fullmatch(name)
    if match and int(match.group(2)) < 16:
        return f"{_FAMILY[match.group(1)]}.{int(match.group(2))}"
    return None


def register_rows(label: str, name: str, values: tuple[int, ...], digits: int,
                  changed: set[str], per_row: int, focus: str | None = None) -> list[str]:
    cells = [f"{label}{i:02d} " + _value(f"{v:0{digits}x}", f"{name}.{i}" in changed,
                                         f"{name}.{i}" == focus)
             for i, v in enumerate(values)]
    return ["  ".join(cells[i:i + per_row]) for i in range(0, len(cells), per_row)]


def registers_markup(cpu: CpuSnapshot, program: str | None, changed: set[str],
                     width: int, focus: str | None = None) -> Content:
    """The register display of one CPU, laid out for width cells; `focus` (a field name,
    `gprs.2`) is the value a stage card pointed at."""
    psw = Psw(cpu.psw_mask, cpu.psw_addr)
    where = symbols.symbolize(cpu.psw_addr, program) or ""
    per_row = max(1, min(4, width // CELL))
    lines = [f"[b]CPU {cpu.address}[/]  {state_flags(cpu.state, cpu.psw_mask)}  "
             f"({cpu.state})  prefix " + _value(f"{cpu.prefix:08x}", "prefix" in changed,
                                               focus == "prefix")]
    if cpu.wait_code is not None:
        meaning = wait_code_meaning(cpu.wait_code, program, symbols.symbolize(cpu.wait_code, program))
        lines.append(f"[bold $error]disabled wait code {cpu.wait_code:#x}[/] $wait_meaning")
    else:
        meaning = ""
    lines += [
        "PSW  " + _value(f"{cpu.psw_mask:016x}", "psw_mask" in changed, focus == "psw_mask") + " "
        + _value(f"{cpu.psw_addr:016x}", "psw_addr" in changed, focus == "psw_addr")
        + "  [$accent]$where[/]",
        "     $psw_summary",
        "FPC " + _value(f"{cpu.fpc:08x}", "fpc" in changed, focus == "fpc")
        + "  CPU timer " + _value(f"{cpu.cpu_timer:016x}", "cpu_timer" in changed,
                                  focus == "cpu_timer"),
        "clock comparator " + _value(f"{cpu.clock_comparator:016x}", "clock_comparator" in changed,
                                     focus == "clock_comparator"),
        "[b]General registers[/]",
        *register_rows("GR", "gprs", cpu.gprs, 16, changed, per_row, focus),
        "[b]Control registers[/]",
        *register_rows("CR", "crs", cpu.crs, 16, changed, per_row, focus),
        "[b]Access registers[/]",
        *register_rows("AR", "ars", cpu.ars, 8, changed, min(8, per_row * 2), focus),
        "[b]Floating-point registers[/]",
        *register_rows("FPR", "fprs", cpu.fprs, 16, changed, per_row, focus),
    ]
    return Content.from_markup("\n".join(lines), where=where, psw_summary=psw.summary(),
                               wait_meaning=f"({meaning})" if meaning else "")


class RegistersView(VerticalScroll, can_focus=True):
    """The selected CPU's registers ([ and ] choose the CPU)."""

    HELP_TOPIC = "registers"

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._last: dict[int, CpuSnapshot] = {}
        self._changed: dict[int, set[str]] = {}
        self._body = Static(id="registers-body")
        self.focus_field: str | None = None  # the value a stage card's "Show me" pointed at

    def compose(self):  # type: ignore[no-untyped-def]
        yield self._body

    def show(self, snapshot: Snapshot | None, cpu_index: int) -> None:
        if snapshot is None or not snapshot.cpus:
            update_static(self._body, Content("No CPUs: the LPAR is not activated."))
            return
        for cpu in snapshot.cpus:
            diff = changed_fields(self._last.get(cpu.address), cpu)
            if diff:  # keep the last change highlighted until the CPU changes again
                self._changed[cpu.address] = diff
            self._last[cpu.address] = cpu
        cpu = snapshot.cpus[min(cpu_index, len(snapshot.cpus) - 1)]
        width = self.size.width or 80
        markup = registers_markup(cpu, snapshot.program, self._changed.get(cpu.address, set()),
                                  width, self.focus_field)
        update_static(self._body, markup)
        self._scroll_to_focus(markup)

    def _scroll_to_focus(self, markup: Content) -> None:
        """Keep the value a card pointed at in sight (on 24 lines the FPRs are below)."""
        if self.focus_field is None:
            return
        for index, line in enumerate(markup.plain.splitlines()):
            if "▸" in line:
                if not self.scroll_y <= index < self.scroll_y + self.size.height:
                    self.scroll_to(y=max(0, index - 2), animate=False)
                return
