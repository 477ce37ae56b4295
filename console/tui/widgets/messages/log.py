"""A message log drawn line by line (Textual's line API), so that tens of thousands of lines
cost nothing until they are on screen. Colours come from the theme through component classes,
so the same severities read well on dark and light terminals; each severity also differs in
weight or a leading mark, not only in colour."""

from __future__ import annotations

from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from console.tui.widgets.messages.model import LogLine, LogStore

SEVERITIES = ("emergency", "error", "warning", "notice", "info", "debug", "operator", "ok",
              "refused", "output")
# A mark before the text, so severities differ without colour too.
MARKS = {"emergency": "!!", "error": "! ", "warning": "* ", "operator": "> ", "refused": "x ",
         "ok": "  "}


class MessageLog(ScrollView, can_focus=True):
    """A scrolling, filterable, holdable view of a LogStore."""

    HELP_TOPIC = "messages"
    COMPONENT_CLASSES = {f"log--{name}" for name in SEVERITIES} | {"log--seq", "log--priority"}
    DEFAULT_CSS = """
    MessageLog { background: $surface; color: $foreground; overflow: auto; }
    MessageLog:focus { background-tint: $foreground 5%; }
    MessageLog > .log--seq { color: $foreground-muted; }
    MessageLog > .log--emergency { color: $error; text-style: bold reverse; }
    MessageLog > .log--error { color: $error; text-style: bold; }
    MessageLog > .log--refused { color: $error; }
    MessageLog > .log--warning { color: $warning; text-style: bold; }
    MessageLog > .log--notice { color: $foreground; text-style: bold; }
    MessageLog > .log--info { color: $foreground; }
    MessageLog > .log--output { color: $foreground; }
    MessageLog > .log--debug { color: $foreground-muted; }
    MessageLog > .log--operator { color: $accent; text-style: bold; }
    MessageLog > .log--ok { color: $success; }
    MessageLog > .log--priority { text-style: bold underline; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("end", "scroll_end", "Newest", show=False, id="log.end"),
        Binding("home", "scroll_home", "Oldest", show=False, id="log.home"),
    ]

    held: reactive[bool] = reactive(False)

    def __init__(self, store: LogStore, *, show_stamps: bool = True, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.store = store
        self.show_stamps = show_stamps
        self._visible: list[LogLine] = []
        self._width = 0
        self.held_count = 0  # lines that arrived while held
        # Whether new lines scroll into view: true until the reader scrolls away from the end.
        # Not "at the end now": a horizontal scrollbar appearing (long lines at 80 columns)
        # shrinks the view after the scroll, and the log would stop following for good.
        self.following = True

    def on_mount(self) -> None:
        self.watch(self, "scroll_y", self._scrolled, init=False)

    def _scrolled(self, scroll_y: float) -> None:
        self.following = scroll_y >= self.max_scroll_y

    # -- content --------------------------------------------------------------------------

    def append(self, lines: list[LogLine]) -> None:
        """Show lines just added to the store (unless held, or filtered out)."""
        if self.held:
            self.held_count += len(lines)
            return
        kept = self.store.keep(lines)
        if not kept:
            return
        follow = self.following or not self._visible
        self._extend(kept)
        # The store is bounded: drop what it dropped, so line indexes stay in step.
        oldest = self.store.lines[0].seq if self.store.lines else 0
        if self._visible and self._visible[0].seq < oldest:
            self._visible = [line for line in self._visible if line.seq >= oldest]
        self._resize()
        if follow:
            self._scroll_to_newest()
        self.refresh()

    def _scroll_to_newest(self) -> None:
        self.scroll_end(animate=False, immediate=True, x_axis=False)
        # Once laid out again (a scrollbar may have come), the end may be further down.
        self.call_after_refresh(self.scroll_end, animate=False, x_axis=False)

    def refilter(self) -> None:
        """Rebuild the view after the store's filter changed (or hold was released)."""
        self._visible = []
        self._width = 0
        self._extend(self.store.visible())
        self._resize()
        self._scroll_to_newest()
        self.refresh()

    def watch_held(self, held: bool) -> None:
        if not held:
            self.held_count = 0
            self.refilter()

    @property
    def visible_lines(self) -> list[LogLine]:
        return list(self._visible)

    def _extend(self, lines: list[LogLine]) -> None:
        self._visible.extend(lines)
        self._width = max([self._width, *(len(self._format(line)) for line in lines)])

    def _resize(self) -> None:
        self.virtual_size = Size(self._width, len(self._visible))

    # -- drawing --------------------------------------------------------------------------

    def _format(self, line: LogLine) -> str:
        stamp = f"{line.stamp()} " if self.show_stamps else ""
        return f"{line.seq:>6} {stamp}{MARKS.get(line.severity, '  ')}{line.text}"

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        base = self.rich_style
        width = self.size.width
        index = scroll_y + y
        if index >= len(self._visible):
            return Strip.blank(width, base)
        strip = self._strip(self._visible[index], base)
        return strip.crop_extend(scroll_x, scroll_x + width, base).apply_offsets(scroll_x, index)

    def _strip(self, line: LogLine, base: Style) -> Strip:
        text = Text(no_wrap=True, end="")
        stamp = f"{line.stamp()} " if self.show_stamps else ""
        text.append(f"{line.seq:>6} {stamp}", base + self.get_component_rich_style("log--seq"))
        style = base + self.get_component_rich_style(f"log--{line.severity}")
        if line.priority:
            style += self.get_component_rich_style("log--priority")
        text.append(f"{MARKS.get(line.severity, '  ')}{line.text}", style)
        return Strip(text.render(self.app.console), text.cell_len)
