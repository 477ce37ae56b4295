"""The stage cards' texts: one Markdown file per workflow stage and per check, in
console/tui/help/stages/ (reviewed against ../shared/S390_FACTS.md). No Textual here: the
texts are data, and tests read them without a screen.

A file is Markdown, then lines `show: VIEW TARGET | LABEL`: a "Show me" action that moves a
view to the place (VIEW `storage` with an address or data symbol, or `note` for the ELF note
being filled, which the Storage view then follows; `code` with a code symbol or address;
`registers` with a CPU number, optionally `.REGISTER`: `0.r2`, `0.psw`, `0.prefix`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from machine.images import built_programs

CARDS_DIR = Path(__file__).resolve().parent / "help" / "stages"
SHOW_VIEWS = ("storage", "code", "registers")
_SHOW = re.compile(r"show:\s*(\w+)\s+(\S+)\s*\|\s*(.+)")


@dataclass(frozen=True)
class Show:
    view: str
    target: str
    label: str

    @property
    def command(self) -> str:
        """The command that shows the place (`r`, `u`, `regs`)."""
        if self.view == "registers":
            return f"regs {self.target}"
        if self.view == "code":
            return f"u {self.target} 12"
        return f"r {self.target}.80" if _is_hex(self.target) else f"r {self.target}"


@dataclass(frozen=True)
class Card:
    name: str
    markdown: str
    shows: tuple[Show, ...]


def _is_hex(text: str) -> bool:
    return re.fullmatch(r"(0x)?[0-9a-fA-F]+", text) is not None


def check_card_name(what: str) -> str:
    """The card of a check event's `what`: `segment 1 (initrd) SHA-256` -> check-segment-sha-256."""
    words = re.sub(r"\d+ \([^)]*\) ", "", what).lower()
    return "check-" + re.sub(r"[^a-z0-9]+", "-", words).strip("-")


def load_card(name: str) -> Card | None:
    """The card of a stage (its name) or a check (`check_card_name`); None if there is none."""
    try:
        text = (CARDS_DIR / f"{name}.md").read_text(encoding="utf-8")
    except OSError:
        return None
    body, shows = [], []
    for line in text.splitlines():
        match = _SHOW.fullmatch(line.strip())
        if match:
            shows.append(Show(*match.groups()))
        else:
            body.append(line)
    return Card(name, "\n".join(body).rstrip() + "\n", tuple(shows))


def card_names() -> list[str]:
    return sorted(path.stem for path in CARDS_DIR.glob("*.md"))


FOLLOW_NOTE = "note"


def follows_note(show: Show) -> bool:
    """A storage "Show me" of the note being filled: the Storage view follows the notes."""
    return show.view == "storage" and show.target == FOLLOW_NOTE


def register_target(show: Show) -> tuple[int, str] | None:
    """(CPU, register name or "") of a registers "Show me": `0.r2` -> (0, "r2")."""
    cpu, _, register = show.target.partition(".")
    if show.view != "registers" or not cpu.isdigit():
        return None
    return int(cpu), register


def show_address(show: Show) -> int | None:
    """The absolute address a storage "Show me" names (hex, or a symbol of a built program:
    `heartbeat` in the kernel, `PROGRAM:NAME` elsewhere); None for other views."""
    if show.view != "storage" or follows_note(show):
        return None
    if _is_hex(show.target):
        return int(show.target, 16)
    program, _, name = show.target.rpartition(":")
    image = built_programs().get(program or "kernel")
    return image.symbols.get(name) if image is not None else None
