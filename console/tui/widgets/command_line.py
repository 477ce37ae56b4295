"""A one-line input with a history that Up and Down walk, as at a shell or the HMC."""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.widgets import Input

HISTORY_LIMIT = 200


class CommandHistory:
    """Lines entered, oldest first, and a cursor for walking them."""

    def __init__(self, limit: int = HISTORY_LIMIT) -> None:
        self.lines: list[str] = []
        self.limit = limit
        self._cursor = 0
        self._draft = ""

    def add(self, line: str) -> None:
        """Remember a line (not twice in a row) and put the cursor after the newest."""
        line = line.strip()
        if line and (not self.lines or self.lines[-1] != line):
            self.lines.append(line)
            del self.lines[:-self.limit]
        self._cursor = len(self.lines)
        self._draft = ""

    def older(self, current: str) -> str:
        """The line before the cursor (the draft being typed is kept for the way back)."""
        if self._cursor == len(self.lines):
            self._draft = current
        self._cursor = max(0, self._cursor - 1)
        return self.lines[self._cursor] if self.lines else current

    def newer(self) -> str:
        """The line after the cursor, or the draft once past the newest."""
        self._cursor = min(len(self.lines), self._cursor + 1)
        return self.lines[self._cursor] if self._cursor < len(self.lines) else self._draft


class HistoryInput(Input):
    """An Input whose Up/Down keys recall earlier entries."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "older", "Previous", show=False, id="input.history-older"),
        Binding("down", "newer", "Next", show=False, id="input.history-newer"),
    ]

    def __init__(self, history: CommandHistory | None = None, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.history = history or CommandHistory()

    def remember(self, line: str) -> None:
        self.history.add(line)

    def action_older(self) -> None:
        self._show(self.history.older(self.value))

    def action_newer(self) -> None:
        self._show(self.history.newer())

    def _show(self, text: str) -> None:
        self.value = text
        self.cursor_position = len(text)
