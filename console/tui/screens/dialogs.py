"""Small modal dialogs: confirmation of disruptive tasks, the fault catalogue, the command
prompt, Markdown help and the dump file picker."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, DirectoryTree, Input, Markdown, OptionList, Static
from textual.widgets.option_list import Option

from console.control.commands import COMMANDS, CommandError, parse
from console.tui.widgets.command_line import CommandHistory, HistoryInput

# Faults the instructor can choose; each is a command line, offered only if the command
# layer accepts it (new faults of the machine appear when commands.py learns them).
FAULT_LINES = (
    ("fault hang spin", "Hang: a CPU spins with interrupts off holding a lock"),
    ("fault hang wait", "Hang: disabled wait"),
    ("fault hang deadlock", "Hang: CPUs deadlock on locks"),
    ("fault hang loop", "Hang: every CPU loops"),
    ("fault panic", "Panic"),
    ("fault corrupt purgatory", "Corrupt a byte of the purgatory"),
    ("fault corrupt os_info", "Corrupt os_info"),
    ("fault corrupt segment kernel", "Corrupt a byte of the kdump kernel segment"),
    ("fault corrupt segment initrd", "Corrupt a byte of the initrd segment"),
    ("fault unload-kdump", "Unload kdump behind the operator's back"),
    ("fault kdump-save-fails", "kdump fails after its swap: the vmcore target is full"),
    ("kdump load", "Load kdump (kexec -p at the OS console)"),
    ("kdump unload", "Unload kdump"),
)


def available_faults() -> list[tuple[str, str]]:
    """The fault lines the command layer accepts today."""
    accepted = []
    for line, title in FAULT_LINES:
        try:
            parse(line)
        except CommandError:
            continue
        accepted.append((line, title))
    return accepted


class ConfirmScreen(ModalScreen[bool]):
    """Yes or no to a disruptive task (y / n / Esc)."""

    HELP_TOPIC = "tasks"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes"),
        Binding("n,escape", "answer(False)", "No", id="confirm.no"),
    ]

    def __init__(self, question: str, detail: str = "") -> None:
        super().__init__()
        self.question = question
        self.detail = detail

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(f"[b]{self.question}[/]", classes="dialog-title")
            if self.detail:
                yield Static(self.detail)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Yes (y)", variant="error", id="confirm-yes")
                yield Button("No (n)", variant="primary", id="confirm-no")

    def on_mount(self) -> None:
        self.query_one("#confirm-no", Button).focus()

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "confirm-yes")


class FaultsScreen(ModalScreen[str | None]):
    """The instructor's fault catalogue; returns the command line of the chosen fault."""

    HELP_TOPIC = "faults"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Cancel",
                                                     id="faults.cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static("[b]Faults[/]  (Enter: inject, Esc: cancel)", classes="dialog-title")
            yield OptionList(*[Option(f"{title}  ({line})", id=line)
                               for line, title in available_faults()], id="fault-list")
            yield Input(placeholder="or a panic message: panic TEXT", id="fault-panic")

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    @on(Input.Submitted, "#fault-panic")
    def _panic(self, event: Input.Submitted) -> None:
        text = event.value.strip().removeprefix("panic").strip()
        self.dismiss(f"fault panic {text}".strip())


class CommandPrompt(ModalScreen[str | None]):
    """Any operator command, typed (Up/Down: history, Tab-less: the palette lists them)."""

    HELP_TOPIC = "command"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Cancel",
                                                     id="prompt.cancel")]

    def __init__(self, history: CommandHistory, initial: str = "",
                 accepts: Callable[[str], bool] | None = None) -> None:
        super().__init__()
        self.history = history
        self.initial = initial
        # Lines the front end takes itself (a lab's words): no syntax warning for them.
        self.accepts = accepts

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static("[b]Command[/]  (Enter: run, Up: history, Esc: cancel; "
                         "`help` lists the commands)", classes="dialog-title")
            yield HistoryInput(self.history, value=self.initial, id="prompt-input",
                               placeholder="e.g. load 0200 store, r 10000.100, wait-for stage vmcore")
            # Plain text: a usage line's `[since=last|now]` is no markup tag.
            yield Static("", id="prompt-error", classes="field-error", markup=False)

    def on_mount(self) -> None:
        prompt = self.query_one(HistoryInput)
        prompt.focus()
        prompt.cursor_position = len(self.initial)

    @on(Input.Changed, "#prompt-input")
    def _check(self, event: Input.Changed) -> None:
        accepted = self.accepts is not None and self.accepts(event.value)
        self.query_one("#prompt-error", Static).update(
            "" if accepted else _syntax_problem(event.value))

    @on(Input.Submitted, "#prompt-input")
    def _run(self, event: Input.Submitted) -> None:
        line = event.value.strip()
        if not line:
            return
        self.history.add(line)
        # Even a line the parser refuses is sent: the refusal is acknowledged like any result.
        self.dismiss(line)


def _syntax_problem(line: str) -> str:
    if not line.strip():
        return ""
    try:
        parse(line)
    except CommandError as error:
        word = line.split()[0].lower()
        return str(error) if word in COMMANDS or len(line.split()) > 1 else ""
    return ""


class HelpScreen(ModalScreen[None]):
    """Markdown help for a topic (F1)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,f1,q", "dismiss(None)", "Close", id="help.close"),
    ]

    def __init__(self, markdown: str) -> None:
        super().__init__()
        self.markdown = markdown

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog help-dialog"):
            yield Markdown(self.markdown)

    def on_mount(self) -> None:
        self.query_one(VerticalScroll).focus()


class OpenDumpScreen(ModalScreen[Path | None]):
    """Choose a dump file: a tree of the work directory, or a path typed in."""

    HELP_TOPIC = "dumpviewer"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Cancel",
                                                     id="open.cancel")]

    def __init__(self, root: Path, newest: Path | None = None) -> None:
        super().__init__()
        self.root = root
        self.newest = newest  # the last dump written in this console run, offered first

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog open-dialog"):
            yield Static(f"[b]Open dump[/]  from {self.root}  (Enter: open, Esc: cancel)",
                         classes="dialog-title")
            yield Input(str(self.newest) if self.newest else "",
                        placeholder="or type a path and press Enter", id="open-path")
            yield DirectoryTree(self.root, id="open-tree")

    def on_mount(self) -> None:
        # The newest dump is one Enter away; Tab goes to the tree.
        if self.newest is not None:
            self.query_one("#open-path", Input).focus()
        else:
            self.query_one(DirectoryTree).focus()

    @on(DirectoryTree.FileSelected)
    def _file(self, event: DirectoryTree.FileSelected) -> None:
        self.dismiss(Path(event.path))

    @on(Input.Submitted, "#open-path")
    def _typed(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.dismiss(Path(event.value.strip()).expanduser())
