"""The stage card: when stage stops are on and a stage begins, the machine holds and this
card says what the real system does now, which real code does it and what to look at.

Under the text, the stage's watchable detail as events report it (the purgatory's hashing per
segment, the swap's bar). Enter or F7 goes on to the next stop; F5 runs on without stops; 1-3
are the card's "Show me" actions (the app moves the Storage, Code or Registers view there);
Escape closes the card and leaves the machine held.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Markdown, Static

from console.tui.stagecards import Card


class StageCard(ModalScreen[str | None]):
    """Dismissed with `continue`, `run-on`, `show:N` or None (closed)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter,f7", "dismiss('continue')", "Continue", id="card.continue"),
        Binding("f5", "dismiss('run-on')", "Run on without stops", id="card.run-on"),
        Binding("escape", "dismiss(None)", "Close", id="card.close"),
        Binding("1", "show(0)", "Show me 1", show=False),
        Binding("2", "show(1)", "Show me 2", show=False),
        Binding("3", "show(2)", "Show me 3", show=False),
    ]

    def __init__(self, card: Card, progress: list[Content] | None = None) -> None:
        super().__init__()
        self.card = card
        self._progress = progress or []

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog help-dialog", id="stage-card"):
            yield Markdown(self.card.markdown)
            yield Static(Content("\n").join(self._progress), id="card-progress")
            shows = [f"{i + 1}: {show.label}" for i, show in enumerate(self.card.shows[:3])]
            yield Static("Show me  " + "   ".join(shows) if shows else "", id="card-shows")
            yield Static("Enter/F7: continue to the next stop   F5: run on without stops   "
                         "Esc: close (the machine stays held)", id="card-keys")

    def on_mount(self) -> None:
        self.query_one(VerticalScroll).focus()
        self.show_progress(self._progress)

    def show_progress(self, lines: list[Content]) -> None:
        """The stage's watchable detail (hashing per segment, the swap's bar), as events come."""
        self._progress = lines
        progress = self.query_one("#card-progress", Static)
        progress.display = bool(lines)
        progress.update(Content("\n").join(lines))

    def action_show(self, index: int) -> None:
        if index < len(self.card.shows):
            self.dismiss(f"show:{index}")
