"""The top of the HMC screen: the LPAR's status line and one badge per CPU.

Both draw only what the latest frame says. Every state shows as a word as well as a colour
(`OPER`, `DWAIT 0x4521`, ...), so they read on any terminal, in any theme, and for anyone.
"""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static

from console.control.runner import SPEED_BY_NAME, Frame
from console.tui.widgets.inspect import symbols
from console.tui.widgets.inspect.psw import state_flags, wait_code_meaning
from console.tui.widgets.render import update_static
from machine.lpar import CpuSnapshot

# LPAR status (as the HMC shows it) -> style of its badge.
STATUS_STYLES = {"not activated": "$foreground-muted", "not operating": "bold $warning",
                 "operating": "bold $success", "exceptions": "bold reverse $error"}
NARROW_COLUMNS = 110  # as MainScreen's -narrow: CPU badges abbreviated below
TITLE_COLUMNS = 100  # the status line leaves out its title below
CPU_STYLES = {"stopped": "$warning", "operating": "bold $success", "wait": "$primary",
              "disabled wait": "bold reverse $error", "check stop": "bold reverse $error"}


def format_virtual_time(ns: int) -> str:
    """Virtual time for the status line, in the unit that reads best."""
    if ns < 1_000_000:
        return f"{ns / 1_000:.3f} µs"
    if ns < 1_000_000_000:
        return f"{ns / 1_000_000:.3f} ms"
    return f"{ns / 1_000_000_000:.3f} s"


def status_markup(frame: Frame | None, lpar_name: str, *, narrow: bool = False) -> Content:
    """The status line: LPAR, status, run state and speed with the key that changes it, then
    program and virtual time (first what must stay visible on 80 columns; the title only
    when there is room)."""
    title = [] if narrow else ["[b]DumpLab HMC[/]"]
    if frame is None:
        return Content.from_markup("  ".join([*title, "LPAR $name  starting…"]),
                                   name=lpar_name)
    snapshot = frame.snapshot
    status = frame.status
    parts = [*title, "LPAR [b]$name[/]", f"[{STATUS_STYLES.get(status, 'bold')}] $status [/]"]
    run = "▶ running" if frame.running else "⏸ held"
    keys = "F5 hold" if frame.running else "F5 run, F6 step"
    parts.append(f"[{'$success' if frame.running else 'bold $warning'}]{run}[/] · $speed "
                 f"[$foreground-muted]({keys})[/]")
    if frame.gdb:  # before what a narrow screen may cut: gdb can stop the machine under us
        parts.append("[bold $accent]gdb attached[/]")
    if snapshot is not None:
        parts.append("program [b]$program[/]" if snapshot.program else "no program")
        parts.append("t=$time")
    if frame.running and snapshot is not None and frame.guest_rate > 0:
        parts.append("[$foreground-muted]$rate[/]")
    if frame.busy:
        parts.append("[bold $accent]busy:[/] $busy")
    return Content.from_markup(
        "  ".join(parts), name=lpar_name, status=status.upper(),
        program=snapshot.program if snapshot and snapshot.program else "",
        time=format_virtual_time(snapshot.t) if snapshot else "",
        speed=SPEED_BY_NAME[frame.speed].name, busy=frame.busy or "",
        rate=f"{format_virtual_time(int(frame.guest_rate))}/s")


def cpu_badge(cpu: CpuSnapshot, program: str | None, *, short: bool = False) -> Content:
    """One CPU: address, state word, P/S and addressing mode, and a disabled-wait code;
    `short` (narrow screens: eight CPUs on one line of 80 columns) keeps the state word and
    the code. Spaces inside are non-breaking: a badge wraps whole."""
    flags = state_flags(cpu.state, cpu.psw_mask)
    code = f" {cpu.wait_code:#x}" if cpu.state == "disabled wait" and cpu.wait_code is not None else ""
    style = CPU_STYLES.get(cpu.state, "bold")
    if short:
        return Content.from_markup(f"$n[{style}]\u00a0$flags$code\u00a0[/]", n=str(cpu.address),
                                   flags=flags.split()[0] if flags else "",
                                   code=code.replace(" ", "\u00a0"))
    where = ""
    if cpu.state == "disabled wait" and cpu.wait_code is not None:
        symbol = symbols.symbolize(cpu.wait_code, program)
        where = wait_code_meaning(cpu.wait_code, program, symbol) or symbol or ""
    return Content.from_markup(
        f"CPU$n [{style}] $flags$code [/]" + (" [$foreground-muted]$where[/]" if where else ""),
        n=str(cpu.address), flags=flags, code=code, where=where)


class LparStatus(Static):
    """One line: the LPAR as the HMC lists it, and how the simulation runs."""

    HELP_TOPIC = "main"
    DEFAULT_CSS = "LparStatus { height: 1; background: $panel; padding: 0 1; }"

    def __init__(self, lpar_name: str, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.lpar_name = lpar_name
        self.frame: Frame | None = None

    def on_mount(self) -> None:
        self.update(status_markup(None, self.lpar_name, narrow=self._narrow()))

    def on_resize(self) -> None:
        # Mounted at width 0 (before the first layout): drawn again at the real width.
        if self.frame is not None:
            self.show(self.frame)
        else:
            self.update(status_markup(None, self.lpar_name, narrow=self._narrow()))

    def _narrow(self) -> bool:
        return self.app.size.width < TITLE_COLUMNS  # the terminal's width

    def show(self, frame: Frame) -> None:
        self.frame = frame
        update_static(self, status_markup(frame, self.lpar_name, narrow=self._narrow()))


class CpuBadges(Static):
    """The per-CPU state strings, wrapped to the width of the screen."""

    HELP_TOPIC = "cpus"
    DEFAULT_CSS = "CpuBadges { height: auto; max-height: 4; padding: 0 1; }"

    frame: Frame | None = None

    def show(self, frame: Frame) -> None:
        self.frame = frame
        snapshot = frame.snapshot
        if snapshot is None or not snapshot.cpus:
            self.update(Content.from_markup("[$foreground-muted]No CPUs: the LPAR is not "
                                            "activated (press [b]a[/] to Activate)[/]"))
            return
        short = self.app.size.width < NARROW_COLUMNS
        badges = [cpu_badge(cpu, snapshot.program, short=short) for cpu in snapshot.cpus]
        update_static(self, Content(" " if short else "  ").join(badges))

    def on_resize(self) -> None:
        if self.frame is not None:
            self.show(self.frame)
