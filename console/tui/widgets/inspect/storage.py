"""The storage tab: the storage map, a go-to line and a hex view of absolute storage.

The hex view asks for a window (address and length); the app turns it into a probe that the
machine thread reads for every frame. Bytes that changed since the previous frame at the same
address are shown reversed; bytes that differ from a baseline (storage as it was when a stage
began, read by a probe then) are underlined in the warning colour. `w` follows the ELF note
being filled during the notes stage (the screen moves the view from the events).
"""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.message import Message
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from console.control.runner import ProbeError
from console.tui.widgets.inspect.regions import Region
from console.tui.widgets.render import update_static
from machine.lpar import Lpar, Snapshot

ROW = 16
MAX_ROWS = 64


def hex_probe(address: int, length: int):  # type: ignore[no-untyped-def]
    """A probe reading [address, address+length) of absolute storage (machine thread)."""
    def probe(lpar: Lpar, snapshot: Snapshot) -> tuple[int, bytes]:
        size = min(length, max(0, lpar.profile.memory - address))
        return address, lpar.read(address, size) if size else b""
    return probe


def hex_row(address: int, chunk: bytes, old: bytes | None, base: bytes | None = None) -> Content:
    """One row: address, four words, and the printable characters. `old`: the same bytes in
    the previous frame; `base`: as they were when the stage began (None: not known)."""
    parts: list[Content] = [Content(f"{address:08x}  ")]
    for index, byte in enumerate(chunk):
        changed = old is not None and index < len(old) and old[index] != byte
        since_stage = base is not None and index < len(base) and base[index] != byte
        text = f"{byte:02x}"
        style = " ".join(name for name, on in (("reverse", changed),
                                               ("bold underline $warning", since_stage)) if on)
        parts.append(Content.styled(text, style) if style else Content(text))
        if index % 4 == 3:
            parts.append(Content(" "))
    ascii_text = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in chunk)
    parts.append(Content(" " * (36 - len(chunk) * 2 - len(chunk) // 4) + f" |{ascii_text}|"))
    return Content("").join(parts)


class HexView(Static, can_focus=True):
    """Rows of 16 bytes from `address`; Up/Down/PgUp/PgDn move the window."""

    HELP_TOPIC = "storage"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "move(-1)", "Up", show=False, id="hex.up"),
        Binding("down", "move(1)", "Down", show=False, id="hex.down"),
        Binding("pageup", "page(-1)", "Page up", show=False, id="hex.page-up"),
        Binding("pagedown", "page(1)", "Page down", show=False, id="hex.page-down"),
    ]
    DEFAULT_CSS = "HexView { height: 1fr; padding: 0 1; } HexView:focus { background-tint: $foreground 5%; }"

    class WindowChanged(Message):
        """The view wants another window of storage."""

        def __init__(self, hex_view: HexView, address: int, length: int) -> None:
            super().__init__()
            self.hex_view = hex_view
            self.address = address
            self.length = length

        @property
        def control(self) -> HexView:
            return self.hex_view

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.address = 0
        self._data: bytes | None = None
        self._previous: tuple[int, bytes] | None = None
        self._error = ""
        self.baseline: tuple[int, bytes] | None = None  # storage when the stage began

    @property
    def rows(self) -> int:
        return max(4, min(MAX_ROWS, self.size.height or 16))

    @property
    def window(self) -> tuple[int, int]:
        return self.address, self.rows * ROW

    def go(self, address: int) -> None:
        self.address = max(0, address - address % ROW)
        self._previous = None
        self.post_message(self.WindowChanged(self, *self.window))

    def action_move(self, rows: int) -> None:
        self.go(self.address + rows * ROW)

    def action_page(self, pages: int) -> None:
        self.go(self.address + pages * self.rows * ROW)

    def on_resize(self) -> None:
        self.post_message(self.WindowChanged(self, *self.window))

    def show(self, result: object) -> None:
        """A probe result: (address, bytes), a ProbeError, or None (no probe yet)."""
        if isinstance(result, ProbeError):
            self.update(Content.from_markup("[bold $error]$error[/]", error=result.message))
            return
        if not isinstance(result, tuple):
            self.update("Storage is shown once the LPAR is activated.")
            return
        address, data = result
        old = self._previous[1] if self._previous and self._previous[0] == address else None
        self._previous = (address, data)
        if not data:
            self.update(f"{address:08x}: beyond the end of storage")
            return
        rows = [hex_row(address + offset, data[offset:offset + ROW],
                        old[offset:offset + ROW] if old else None,
                        self._base(address + offset, len(data[offset:offset + ROW])))
                for offset in range(0, len(data), ROW)]
        update_static(self, Content("\n").join(rows))

    def _base(self, address: int, length: int) -> bytes | None:
        """The baseline's bytes for [address, address+length), if it covers them all."""
        if self.baseline is None:
            return None
        start, data = self.baseline
        if not (start <= address and address + length <= start + len(data)):
            return None
        return data[address - start:address - start + length]


class StorageMap(OptionList):
    """The named regions of storage; Enter shows one in the hex view."""

    HELP_TOPIC = "storage"

    def show(self, regions: list[Region]) -> None:
        ids = [f"{r.start:x}:{r.name}" for r in regions]
        current = [self.get_option_at_index(i).id for i in range(self.option_count)]
        if ids != current:
            self.set_options([Option(f"{r.start:08x} {r.name}", id=i)
                              for r, i in zip(regions, ids, strict=True)])


class StorageView(Horizontal):
    """Map on the left, go-to line and hex view on the right."""

    HELP_TOPIC = "storage"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "goto", "Go to", id="storage.goto", tooltip="Go to an address, "
                "register, lowcore field, region or symbol"),
        Binding("m", "map", "Map", id="storage.map", tooltip="Choose a region of the map"),
        Binding("w", "follow", "Watch note", id="storage.follow-note",
                tooltip="Follow (watch) the ELF note being filled in the notes stage; again: stop"),
    ]

    class FollowToggled(Message):
        """The operator asked to follow (or stop following) the note being filled."""

    def action_follow(self) -> None:
        self.post_message(self.FollowToggled())

    def action_goto(self) -> None:
        self.query_one("#storage-goto", Input).focus()

    def action_map(self) -> None:
        self.query_one(StorageMap).focus()

    class GoToRequested(Message):
        """The operator typed a go-to target; the app resolves it."""

        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    def compose(self) -> ComposeResult:
        yield StorageMap(id="storage-map")
        with Vertical(id="storage-right"):
            yield Input(placeholder="/ go to: address, r15, psw, os_info_ptr, symbol (+hex)",
                        id="storage-goto")
            yield Static("", id="storage-where")
            yield HexView(id="hex-view")

    @on(OptionList.OptionSelected, "#storage-map")
    def _region(self, event: OptionList.OptionSelected) -> None:
        if event.option.id:
            self.go(int(event.option.id.partition(":")[0], 16))
            self.query_one(HexView).focus()

    @on(Input.Submitted, "#storage-goto")
    def _goto(self, event: Input.Submitted) -> None:
        self.post_message(self.GoToRequested(event.value))
        self.query_one(HexView).focus()

    def go(self, address: int, label: str = "") -> None:
        hex_view = self.query_one(HexView)
        hex_view.go(address)
        self.query_one("#storage-where", Static).update(
            f"showing {address:08x}" + (f" ({label})" if label else ""))

    def say(self, text: str, error: bool = False) -> None:
        markup = "[bold $error]$text[/]" if error else "$text"
        self.query_one("#storage-where", Static).update(Content.from_markup(markup, text=text))
