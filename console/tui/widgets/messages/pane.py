"""The Operating System Messages task: the message log with a filter, a severity level,
hold and priority, and the command line to the operating system (Up/Down: history)."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Checkbox, Input, Select

from console.tui.bridge import Submit
from console.tui.widgets.command_line import HistoryInput
from console.tui.widgets.messages.log import MessageLog
from console.tui.widgets.messages.model import LEVEL_CHOICES, LogLine, LogStore


def oscmd_line(text: str, priority: bool) -> str:
    """The operator command that sends text to the operating system."""
    return f"oscmd {'--priority ' if priority else ''}{text}"


class OsMessages(Vertical):
    """Messages from the operating system and the command line to it."""

    HELP_TOPIC = "messages"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f3", "filter", "Filter", show=False, id="messages.filter",
                tooltip="Filter the messages"),
        # The main screen has the same F4, dimmed away from Messages, so that switching views
        # leaves the key bar as it is (console/tui/widgets/footer.py).
        Binding("f4", "hold", "Hold", id="messages.hold",
                tooltip="Hold the Messages display (messages keep arriving)"),
        Binding("f9", "priority", "Priority", show=False, id="messages.priority",
                tooltip="Send the next commands as priority commands"),
        Binding("escape", "focus_log", "Log", show=False, id="messages.log"),
    ]
    DEFAULT_CSS = """
    OsMessages #messages-bar { height: 1; }
    OsMessages #messages-filter { width: 1fr; min-width: 12; border: none; height: 1; padding: 0 1; }
    OsMessages #messages-level { width: 16; }
    OsMessages #messages-level > SelectCurrent { border: none; height: 1; padding: 0 1; }
    OsMessages Checkbox { border: none; height: 1; padding: 0 1; }
    OsMessages #os-log { height: 1fr; }
    OsMessages #os-command { border: none; height: 1; padding: 0 1; background: $boost; }
    """

    def __init__(self, store: LogStore, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.store = store

    def compose(self) -> ComposeResult:
        with Horizontal(id="messages-bar"):
            yield Input(placeholder="filter (F3)", id="messages-filter")
            yield Select([(f"level: {name}", rank) for name, rank in LEVEL_CHOICES],
                         value=7, allow_blank=False, id="messages-level")
            yield Checkbox("Hold (F4): off", id="messages-hold")
            yield Checkbox("Priority (F9): off", id="messages-priority")
        yield MessageLog(self.store, id="os-log")
        yield HistoryInput(placeholder="command to the operating system (Enter sends, "
                                       "Up: history, Esc: log)", id="os-command")

    @property
    def log_view(self) -> MessageLog:
        return self.query_one("#os-log", MessageLog)

    @property
    def command_line(self) -> HistoryInput:
        return self.query_one("#os-command", HistoryInput)

    def append(self, lines: list[LogLine]) -> None:
        self.log_view.append(lines)
        if self.log_view.held:
            self.query_one("#messages-hold", Checkbox).label = (
                f"Hold (F4): on, {self.log_view.held_count} new")

    # -- controls --------------------------------------------------------------------------

    @on(Input.Changed, "#messages-filter")
    @on(Select.Changed, "#messages-level")
    def _refilter(self) -> None:
        level = self.query_one("#messages-level", Select).value
        self.store.set_filter(self.query_one("#messages-filter", Input).value,
                              level if isinstance(level, int) else 7)
        self.log_view.refilter()

    @on(Checkbox.Changed, "#messages-hold")
    def _hold(self, event: Checkbox.Changed) -> None:
        self.log_view.held = event.value
        event.checkbox.label = "Hold (F4): on" if event.value else "Hold (F4): off"

    @on(Checkbox.Changed, "#messages-priority")
    def _priority(self, event: Checkbox.Changed) -> None:
        event.checkbox.label = f"Priority (F9): {'on' if event.value else 'off'}"

    @on(Input.Submitted, "#os-command")
    def _send(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text:
            return
        self.command_line.remember(text)
        self.command_line.value = ""
        priority = self.query_one("#messages-priority", Checkbox).value
        self.post_message(Submit(oscmd_line(text, priority)))

    def action_filter(self) -> None:
        self.query_one("#messages-filter", Input).focus()

    def action_hold(self) -> None:
        self.query_one("#messages-hold", Checkbox).toggle()

    def action_priority(self) -> None:
        self.query_one("#messages-priority", Checkbox).toggle()

    def action_focus_log(self) -> None:
        self.log_view.focus()

    def focus_command_line(self) -> None:
        self.command_line.focus()
