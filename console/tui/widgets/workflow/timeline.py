"""The workflow timeline: the stages with their marks, and what the selected one did.

Marks are characters as well as colours: `✔` done, `✘` failed, `▶` running, `·` not yet.
"""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from console.tui.bridge import GoToAddress
from console.tui.widgets.inspect.regions import Region, regions_named
from console.tui.widgets.workflow.model import CheckRecord, StageRecord, Timeline
from console.tui.widgets.workflow.progress import stage_progress

MARKS = {"pending": "·", "running": "▶", "done": "✔", "failed": "✘"}
MARK_STYLES = {"pending": "$foreground-muted", "running": "bold $accent",
               "done": "bold $success", "failed": "bold reverse $error"}


def ms(t: int | None) -> str:
    return "" if t is None else f"{t / 1e6:.3f} ms"


def stage_row(record: StageRecord) -> Content:
    """One line of the stage list: mark, title, and how its checks went."""
    mark, style = MARKS.get(record.status, "?"), MARK_STYLES.get(record.status, "bold")
    failed = sum(not c.ok for c in record.checks)
    checks = ""
    if record.checks:
        checks = f" [$success]✔{len(record.checks) - failed}[/]"
        checks += f" [bold $error]✘{failed}[/]" if failed else ""
    title = "[$foreground-muted]$title[/]" if record.status == "pending" else "$title"
    return Content.from_markup(f"[{style}]$mark[/] {title}{checks}",
                               mark=mark, title=record.info.title)


def check_line(check: CheckRecord) -> Content:
    """A check: ✔/✘, what, the guest's expected and the host's computed value."""
    style = "bold $success" if check.ok else "bold reverse $error"
    guest = "" if check.guest_ok is None else (" (guest: ok)" if check.guest_ok
                                              else " (guest: failed)")
    return Content.from_markup(
        f"  [{style}]$mark[/] $what  expected [b]$expected[/]  computed [b]$computed[/]$guest",
        mark="✔" if check.ok else "✘", what=check.what, expected=check.expected,
        computed=check.computed, guest=guest)


def stage_detail(record: StageRecord) -> Content:
    """What happened in a stage: status, times, details, checks and notes."""
    lines = [Content.from_markup(
        f"[{MARK_STYLES.get(record.status, 'bold')}]$mark $status[/]  [b]$title[/]",
        mark=MARKS.get(record.status, "?"), status=record.status.upper(),
        title=record.info.title)]
    if record.first_t is not None:
        lines.append(Content(f"first at t={ms(record.first_t)}, last at t={ms(record.last_t)}"))
    if record.status == "pending":
        lines.append(Content.from_markup("[$foreground-muted]Not reached in this run yet.[/]"))
    lines += stage_progress(record)
    for t, status, detail in record.history[-12:]:
        lines.append(Content(f"  {ms(t):>12}  {status:<8} {detail}"))
    if record.checks:
        lines.append(Content.from_markup("[b]Checks[/] (expected: the guest's value; "
                                         "computed: the host's)"))
        lines += [check_line(check) for check in record.checks[-12:]]
    if record.notes:
        lines.append(Content.from_markup("[b]Events[/]"))
        lines += [Content(f"  {ms(t):>12}  {text}") for t, text in record.notes[-12:]]
    return Content("\n").join(lines)


# The machine's name of a story stage, where they differ (`rewind STAGE` takes the machine's).
MACHINE_STAGE = {"kdump-load": "kexec-load", "reipl": "ipl"}


class StageList(OptionList):
    """The stages in story order; selecting one shows its detail; `r` rewinds to it."""

    HELP_TOPIC = "workflow"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "rewind", "Rewind here", id="workflow.rewind", show=False,
                tooltip="Put the machine back to where the selected stage began"),
    ]

    def action_rewind(self) -> None:
        if self.highlighted is None:
            return
        name = self.get_option_at_index(self.highlighted).id or ""
        submit = getattr(self.app, "submit", None)
        if submit is not None:
            submit(f"rewind {MACHINE_STAGE.get(name, name)}")

    class Selected(Message):
        def __init__(self, name: str) -> None:
            super().__init__()
            self.name = name

    def show(self, timeline: Timeline) -> None:
        """Redraw the rows, keeping the highlighted stage."""
        records = timeline.ordered()
        ids = [self.get_option_at_index(i).id for i in range(self.option_count)]
        if ids == [r.name for r in records]:
            for index, record in enumerate(records):
                self.replace_option_prompt_at_index(index, stage_row(record))
            return
        highlighted = self.highlighted
        self.set_options([Option(stage_row(r), id=r.name) for r in records])
        if records:
            self.highlighted = min(highlighted or 0, len(records) - 1)

    @on(OptionList.OptionHighlighted)
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option.id:
            self.post_message(self.Selected(event.option.id))


class StageDetail(VerticalScroll):
    """The selected stage: what happened, the checks, and where in memory (Enter: go to)."""

    HELP_TOPIC = "workflow"
    DEFAULT_CSS = """
    StageDetail { padding: 0 1; }
    StageDetail #stage-text { height: auto; }
    StageDetail #stage-where { height: auto; max-height: 10; border: none; }
    """

    def compose(self) -> ComposeResult:
        yield Static(id="stage-text")
        yield Static(Content.from_markup("[b]Where in memory[/] (Enter: show in Storage)"),
                     id="stage-where-title")
        yield OptionList(id="stage-where")

    def show(self, record: StageRecord | None, regions: list[Region],
             storage: int | None = None) -> None:
        text = self.query_one("#stage-text", Static)
        where = self.query_one("#stage-where", OptionList)
        if record is None:
            text.update("Select a stage.")
            where.clear_options()
            return
        text.update(stage_detail(record))
        options = [Option(f"{r.start:08x}-{r.end - 1:08x}  {r.name}", id=f"a{r.start:x}")
                   for r in regions_named(regions, record.info.regions)]
        options += [Option(f"{a:08x}  named in the events", id=f"a{a:x}")
                    for a in record.addresses(storage)]
        # One line per address: a region and an event can name the same start (the
        # purgatory's), and option ids must be unique.
        options = _first_of_each_id(options)
        if [o.id for o in options] != [where.get_option_at_index(i).id
                                       for i in range(where.option_count)]:
            where.set_options(options or [Option("(nothing known yet)", disabled=True)])

    @on(OptionList.OptionSelected, "#stage-where")
    def _go(self, event: OptionList.OptionSelected) -> None:
        if event.option.id and event.option.id.startswith("a"):
            self.post_message(GoToAddress(int(event.option.id[1:], 16)))


def _first_of_each_id(options: list[Option]) -> list[Option]:
    unique: dict[str | None, Option] = {}
    for option in options:
        unique.setdefault(option.id, option)
    return list(unique.values())
