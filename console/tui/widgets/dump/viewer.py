"""The dump viewer: headers, each CPU's registers from the notes (beside the pre-dump
snapshot when the dump was taken in this console run), VMCOREINFO, and old memory in hex."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.widgets import Input, Static, TabbedContent, TabPane

from console.tui.widgets.dump.model import (
    OpenedDump,
    compare_cpu,
    cpu_heading,
    summary_lines,
    vmcoreinfo_text,
)
from console.tui.widgets.inspect.goto import GoToError
from console.tui.widgets.inspect.storage import HexView
from machine.lpar import Snapshot


def comparison_markup(rows: list, reason: str | None) -> Content:  # type: ignore[type-arg]
    """Register | in the dump | in the snapshot, with ≠ and reverse video where they differ."""
    header = "register   in the dump       " + ("in the snapshot" if reason else "")
    lines = [Content.styled(header, "bold")]
    for row in rows:
        theirs = "" if row.in_snapshot is None else f"{row.in_snapshot:016x}"
        text = f"{row.name:<10} {row.in_dump:016x}  {theirs}"
        lines.append(Content.styled(text + "  ≠", "reverse") if row.differs else Content(text))
    return Content("\n").join(lines)


class DumpViewer(Vertical):
    """A dump file's contents (o: open another, [ ]: CPU)."""

    HELP_TOPIC = "dumpviewer"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("o", "app.open_dump", "Open", id="dump.open", tooltip="Open a dump file"),
        Binding("left_square_bracket", "cpu(-1)", "CPU -", show=False, id="dump.cpu-prev"),
        Binding("right_square_bracket", "cpu(1)", "CPU +", show=False, id="dump.cpu-next"),
    ]
    DEFAULT_CSS = """
    DumpViewer #dump-title { height: auto; padding: 0 1; background: $panel; }
    DumpViewer #dump-goto { border: none; height: 1; padding: 0 1; }
    DumpViewer Static { height: auto; }
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.opened: OpenedDump | None = None
        self.cpu_index = 0
        self.snapshot: tuple[str, Snapshot] | None = None

    def compose(self) -> ComposeResult:
        yield Static("No dump open. Press o (or v anywhere) to choose a vmcore or an s390 dump.",
                     id="dump-title")
        with TabbedContent(id="dump-tabs"):
            with TabPane("Summary", id="dump-summary-pane"), VerticalScroll():
                yield Static(id="dump-summary")
            with TabPane("CPUs", id="dump-cpus-pane"), VerticalScroll(id="dump-cpus-scroll"):
                yield Static(id="dump-cpu-heading")
                yield Static(id="dump-cpu-table")
            with TabPane("VMCOREINFO", id="dump-vmcoreinfo-pane"), VerticalScroll():
                yield Static(id="dump-vmcoreinfo")
            with TabPane("Memory", id="dump-memory-pane"):
                with Horizontal(classes="goto-bar"):
                    yield Input(placeholder="go to: hex address in the dump", id="dump-goto")
                yield HexView(id="dump-hex")

    def show_dump(self, opened: OpenedDump, snapshot: tuple[str, Snapshot] | None) -> None:
        """Show a dump; snapshot is the pre-dump snapshot if the dump is from this run."""
        self.opened, self.snapshot, self.cpu_index = opened, snapshot, 0
        self.query_one("#dump-title", Static).update(opened.title())
        self.query_one("#dump-summary", Static).update("\n".join(summary_lines(opened)))
        self.query_one("#dump-vmcoreinfo", Static).update(vmcoreinfo_text(opened))
        self._show_cpu()
        self.query_one("#dump-hex", HexView).go(0)

    def action_cpu(self, delta: int) -> None:
        if self.opened and self.opened.cpus:
            self.cpu_index = (self.cpu_index + delta) % len(self.opened.cpus)
            self._show_cpu()

    def _show_cpu(self) -> None:
        heading = self.query_one("#dump-cpu-heading", Static)
        table = self.query_one("#dump-cpu-table", Static)
        if self.opened is None or not self.opened.cpus:
            heading.update("No CPU notes in this dump.")
            table.update("")
            return
        cpu = self.opened.cpus[self.cpu_index]
        reason, snap = self.snapshot if self.snapshot else (None, None)
        beside = (f"Beside: the snapshot {reason} (t={snap.t / 1e6:.3f} ms) of this console run."
                  if snap else "No pre-dump snapshot: the dump was not taken in this console run.")
        heading.update(f"{cpu_heading(cpu)}\n[ and ] choose the CPU "
                       f"({self.cpu_index + 1} of {len(self.opened.cpus)}). {beside}")
        table.update(comparison_markup(compare_cpu(cpu, snap), reason))

    @on(HexView.WindowChanged, "#dump-hex")
    def _window(self, event: HexView.WindowChanged) -> None:
        event.stop()  # the app's storage probe is not for this view
        hex_view = self.query_one("#dump-hex", HexView)
        if self.opened is None:
            hex_view.show(None)
            return
        try:
            hex_view.show((event.address, self.opened.read(event.address, event.length)))
        except (OSError, ValueError) as error:
            hex_view.update(f"cannot read the dump at {event.address:#x}: {error}")

    @on(Input.Submitted, "#dump-goto")
    def _goto(self, event: Input.Submitted) -> None:
        try:
            address = parse_hex_address(event.value)
        except GoToError as error:
            self.notify(str(error), severity="error")
            return
        self.query_one("#dump-hex", HexView).go(address)
        self.query_one("#dump-hex", HexView).focus()


def parse_hex_address(text: str) -> int:
    """A hex address such as 10000 or 0x10000 (GoToError otherwise)."""
    word = text.strip().lower().removeprefix("0x")
    try:
        return int(word, 16) if word else 0
    except ValueError:
        raise GoToError(f"go to: '{text.strip()}' is not a hex address") from None
