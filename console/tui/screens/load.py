"""The Load task as a form mirroring the HMC's: load type, load address, load parameter,
store status and time-out, each validated as it is typed, with the problem shown beside the
field. The form only builds a `load` command line; the command layer runs it."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, RadioButton, RadioSet, Static

from console.control.commands import CommandError, parse, parse_devno
from console.control.runner import Device

LOAD_TYPES = ("normal", "clear", "dump")
LOADPARM = re.compile(r"[A-Za-z0-9.@#$]{0,8}")
# The HMC accepts a load time-out of 60 to 600 seconds.
TIMEOUT_RANGE = (60, 600)
DEFAULT_TIMEOUT = 60


@dataclass(frozen=True)
class LoadRequest:
    """What the form says, as the operator filled it in."""

    load_type: str
    devno: int
    parm: str
    store_status: bool
    timeout_s: int

    @property
    def clear(self) -> bool:
        return self.load_type == "clear"

    def command(self) -> str:
        """The `load` command line (docs/COMMANDS.md)."""
        words = [f"load {self.devno:04x}"]
        if self.clear:
            words.append("clear")
        if self.store_status:
            words.append("store")
        if self.parm:
            words.append(f"parm={self.parm}")
        return " ".join(words)


def check_devno(text: str, devices: Sequence[Device]) -> str:
    """'' if text is a device of this LPAR, else what is wrong."""
    devno = parse_devno(text.strip())
    if devno is None:
        return "expected 1-4 hex digits, like 0100"
    if devices and devno not in {d.devno for d in devices}:
        known = ", ".join(d.label for d in devices)
        return f"no device {devno:04x} in this LPAR ({known})"
    return ""


def check_parm(text: str) -> str:
    return "" if LOADPARM.fullmatch(text.strip()) else "at most 8 characters: A-Z 0-9 . @ # $"


def check_timeout(text: str) -> str:
    low, high = TIMEOUT_RANGE
    word = text.strip()
    if not (word.isascii() and word.isdigit()) or not low <= int(word) <= high:
        return f"{low} to {high} seconds"
    return ""


def check_store(store: bool, load_type: str) -> str:
    if store and load_type == "clear":
        return "store status needs a normal load: a clear load wipes the storage to keep"
    return ""


def default_device(load_type: str, devices: Sequence[Device]) -> str:
    """The boot disk for a normal or clear load, the dump device for a dump."""
    wanted = "dump" if load_type == "dump" else "disk"
    for device in devices:
        if device.kind == wanted:
            return f"{device.devno:04x}"
    return "0200" if load_type == "dump" else "0100"


class LoadForm(ModalScreen[LoadRequest | None]):
    """Load: the HMC fields; Enter loads when every field is valid, Esc cancels."""

    HELP_TOPIC = "load"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="load.cancel"),
        Binding("ctrl+s", "submit", "Load", id="load.submit"),
        # The type from the address field, without Shift+Tab back to the radio buttons.
        Binding("up", "load_type(-1)", "Type ↑", show=False, id="load.type-previous"),
        Binding("down", "load_type(1)", "Type ↓", show=False, id="load.type-next"),
    ]

    def __init__(self, devices: Sequence[Device], load_type: str = "normal") -> None:
        super().__init__()
        self.devices = tuple(devices)
        self.initial_type = load_type if load_type in LOAD_TYPES else "normal"

    def compose(self) -> ComposeResult:
        with Vertical(id="load-dialog", classes="dialog"):
            yield Static("[b]Load[/]  (↑↓: type, Tab: next field, Enter or Ctrl+S: load, "
                         "Esc: cancel)", classes="dialog-title")
            with RadioSet(id="load-type"):
                for name in LOAD_TYPES:
                    yield RadioButton(self._type_label(name, name == self.initial_type),
                                      value=name == self.initial_type, id=f"type-{name}")
            with Grid(id="load-fields"):
                yield Label("Load address")
                # Not selected on focus: a Space or a digit must not erase the device number.
                yield Input(default_device(self.initial_type, self.devices), id="load-address",
                            select_on_focus=False)
                yield Label("", id="load-address-error", classes="field-error")
                yield Label("Load parameter")
                yield Input("", placeholder="optional, up to 8", id="load-parm",
                            select_on_focus=False)
                yield Label("", id="load-parm-error", classes="field-error")
                yield Label("Store status")
                yield Checkbox("yes" if self.initial_type == "dump" else "no",
                               self.initial_type == "dump", id="load-store")
                yield Label("", id="load-store-error", classes="field-error")
                yield Label("Time-out (s)")
                yield Input(str(DEFAULT_TIMEOUT), id="load-timeout", select_on_focus=False)
                yield Label("", id="load-timeout-error", classes="field-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Load", variant="primary", id="load-ok")
                yield Button("Cancel", id="load-cancel")

    @staticmethod
    def _type_label(name: str, chosen: bool) -> str:
        # The choice is said in words too, not only by the colour of the button.
        text = {"normal": "Normal", "clear": "Clear (storage is cleared)",
                "dump": "Load a dump program (normal, store status)"}[name]
        return f"{text}  ← chosen" if chosen else text

    def on_mount(self) -> None:
        self.query_one("#load-address", Input).focus()
        self._validate()

    def action_load_type(self, delta: int) -> None:
        index = (LOAD_TYPES.index(self.load_type) + delta) % len(LOAD_TYPES)
        self.query_one(f"#type-{LOAD_TYPES[index]}", RadioButton).value = True

    # -- the fields ----------------------------------------------------------------------

    @property
    def load_type(self) -> str:
        pressed = self.query_one("#load-type", RadioSet).pressed_button
        return pressed.id.removeprefix("type-") if pressed and pressed.id else "normal"

    def errors(self) -> dict[str, str]:
        """Field id -> problem, for every field that has one."""
        problems = {
            "load-address": check_devno(self.query_one("#load-address", Input).value, self.devices),
            "load-parm": check_parm(self.query_one("#load-parm", Input).value),
            "load-store": check_store(self.query_one("#load-store", Checkbox).value, self.load_type),
            "load-timeout": check_timeout(self.query_one("#load-timeout", Input).value),
        }
        return {field: problem for field, problem in problems.items() if problem}

    def _validate(self) -> dict[str, str]:
        problems = self.errors()
        for field in ("load-address", "load-parm", "load-store", "load-timeout"):
            self.query_one(f"#{field}-error", Label).update(problems.get(field, ""))
            self.query_one(f"#{field}").set_class(field in problems, "-invalid")
        self.query_one("#load-ok", Button).disabled = bool(problems)
        return problems

    @on(Input.Changed)
    def _changed(self) -> None:
        self._validate()

    @on(Checkbox.Changed, "#load-store")
    def _store_changed(self, event: Checkbox.Changed) -> None:
        event.checkbox.label = "yes" if event.value else "no"
        self._validate()

    @on(RadioSet.Changed, "#load-type")
    def _type_changed(self) -> None:
        load_type = self.load_type
        for name in LOAD_TYPES:
            self.query_one(f"#type-{name}", RadioButton).label = self._type_label(
                name, name == load_type)
        self.query_one("#load-address", Input).value = default_device(load_type, self.devices)
        self.query_one("#load-store", Checkbox).value = load_type == "dump"
        self._validate()
        # The next Enter loads: move on to the address the type has just filled in.
        self.query_one("#load-address", Input).focus()

    # -- submit / cancel -----------------------------------------------------------------

    def request(self) -> LoadRequest:
        devno = parse_devno(self.query_one("#load-address", Input).value.strip())
        assert devno is not None  # only called when errors() is empty
        return LoadRequest(self.load_type, devno,
                           self.query_one("#load-parm", Input).value.strip().upper(),
                           self.query_one("#load-store", Checkbox).value,
                           int(self.query_one("#load-timeout", Input).value.strip()))

    def action_submit(self) -> None:
        problems = self._validate()
        if problems:
            first = next(iter(problems))
            self.query_one(f"#{first}").focus()
            self.notify(f"Load: {problems[first]}", severity="error")
            return
        request = self.request()
        try:
            parse(request.command())  # the command layer has the last word on the syntax
        except CommandError as error:
            self.notify(str(error), severity="error")
            return
        self.dismiss(request)

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Input.Submitted)
    def _enter(self) -> None:
        self.action_submit()

    @on(Button.Pressed, "#load-ok")
    def _ok(self) -> None:
        self.action_submit()

    @on(Button.Pressed, "#load-cancel")
    def _cancel(self) -> None:
        self.action_cancel()
