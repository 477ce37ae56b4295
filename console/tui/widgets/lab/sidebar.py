"""The lab sidebar: the lab's title, step k of n with a mark per step, the check's status,
the step's text with the hints shown and what the check said, and a line for the lab's own
commands (answer, dumps, vmcore, rd).

It only draws a LabProgress (model.py) and turns what is typed into Submit messages or the
screen's lab actions; the screen (console/tui/screens/lab.py) talks to the engine.
"""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.widgets import Input, Markdown, Static

from console.tui.bridge import Submit
from console.tui.widgets.command_line import HistoryInput
from console.tui.widgets.lab.model import FAILED, PASSED, LabProgress

# Words the lab line takes as keys, as at the headless `lab>` prompt.
WORDS = {"check": "lab_check", "hint": "lab_hint", "next": "lab_next", "solve": "lab_solve"}
KEYS_TEXT = "k check · h hint · > next · L hide · F1 help"
STYLES = {"ok": "bold $success", "refused": "bold $error", "info": "$foreground"}


class LabSidebar(Vertical):
    """The lab beside the HMC (see the module docstring)."""

    HELP_TOPIC = "lab"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "focus_text", "Lab text", show=False, id="lab.leave-line",
                tooltip="Leave the lab line, so that the letter keys act again"),
    ]

    def __init__(self, progress: LabProgress, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.progress = progress
        self._shown: tuple[int, str, str] | None = None  # step, status, text last drawn

    def compose(self) -> ComposeResult:
        lab = self.progress.lab
        yield Static(Content.from_markup("[b]Lab $number[/b]: $title", number=str(lab.number),
                                         title=lab.title), id="lab-title")
        yield Static("", id="lab-step")
        yield Static("", id="lab-status")
        with VerticalScroll(id="lab-scroll", can_focus=True):
            yield Markdown("", id="lab-text")
        yield Static(KEYS_TEXT, id="lab-keys")
        yield HistoryInput(id="lab-input",
                           placeholder="lab> answer VALUE, dumps, vmcore, rd SYMBOL")

    def on_mount(self) -> None:
        self.show()

    def show(self) -> None:
        """Draw the progress as it is now."""
        progress = self.progress
        self.query_one("#lab-step", Static).update(
            Content.from_markup("$heading\n[dim]$marks[/dim]", heading=progress.heading(),
                                marks=progress.marks()))
        text, severity = progress.status_line()
        self.query_one("#lab-status", Static).update(
            Content.from_markup(f"[{STYLES[severity]}]$text[/]", text=text))
        markdown = progress.markdown()
        shown = (progress.index, progress.status, markdown)
        if shown == self._shown:
            return
        scroll = self.query_one("#lab-scroll", VerticalScroll)
        new_step = self._shown is None or self._shown[0] != progress.index
        self._shown = shown
        self.query_one("#lab-text", Markdown).update(markdown)
        # A new step (and the score) is read from its top; what the check said is at the end.
        # After the refresh, as the scroll to the end may be: the last one asked for wins.
        if new_step or progress.over:
            self.call_after_refresh(scroll.scroll_home, animate=False)
        elif progress.explain or progress.status in (PASSED, FAILED) or progress.hints:
            self.call_after_refresh(scroll.scroll_end, animate=False)

    def text(self) -> str:
        """What the sidebar says, as plain text (tests, screen readers)."""
        return "\n".join([str(self.query_one("#lab-step", Static).render()),
                          str(self.query_one("#lab-status", Static).render()),
                          self.progress.markdown()])

    def focus_text(self) -> None:
        self.query_one("#lab-scroll").focus()

    def action_focus_text(self) -> None:
        self.focus_text()

    @on(Input.Submitted, "#lab-input")
    def _typed(self, event: Input.Submitted) -> None:
        event.stop()
        line = event.value.strip()
        field = self.query_one("#lab-input", HistoryInput)
        field.value = ""
        if not line:
            return
        field.remember(line)
        action = WORDS.get(line.lower())
        if action is not None:
            self.run_action(f"screen.{action}")
        else:
            self.post_message(Submit(line, "lab"))
