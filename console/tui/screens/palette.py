"""The command palette (Ctrl+P): every operator command, every task, every view and speed.

Commands that need no argument run at once; the others open the command prompt with the
command word filled in, so the palette reaches every command of docs/COMMANDS.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.content import Content
from textual.markup import escape

from console.control.commands import COMMANDS
from console.control.runner import SPEEDS
from console.tui.widgets.hmc.tasks import TASKS, key_label

if TYPE_CHECKING:
    from console.tui.host import ConsoleHost

VIEWS = (("tab-messages", "Operating System Messages"), ("tab-hardware", "Hardware Messages"),
         ("tab-workflow", "Workflow timeline"), ("tab-registers", "Registers"),
         ("tab-storage", "Storage"), ("tab-code", "Disassembly"), ("tab-dump", "Dump viewer"))
_REQUIRED = re.compile(r"(?<![\[|])\b[A-Z]{2,}\b")


@dataclass(frozen=True)
class Entry:
    """One palette entry."""

    title: str
    help: str
    run: Callable[[], object]
    keywords: str = ""  # other words an operator may search for it by (not shown)


def needs_arguments(usage: str) -> bool:
    """Whether a usage line has a required argument (an upper-case word outside [...])."""
    outside = re.sub(r"\[[^\]]*\]", "", usage.split(" ", 1)[1] if " " in usage else "")
    return bool(_REQUIRED.search(outside)) or "|" in outside


def entries(app: ConsoleHost) -> Iterator[Entry]:
    """Everything the palette offers, built from the command table and the tasks."""
    for spec in COMMANDS.values():
        if needs_arguments(spec.usage):
            run = partial(app.action_command_line, f"{spec.name} ")
        else:
            run = partial(app.submit, spec.name)
        yield Entry(f"Command: {spec.usage}", spec.summary, run)
    for task in TASKS:
        action = task.action if task.action.startswith("app.") else f"screen.{task.action}"
        yield Entry(f"Task: {task.title} ({key_label(task.key)})", task.help,
                    partial(app.run_action, action))
    yield Entry("Task: Load the stand-alone dump program (SAD) from the dump device…",
                "Load form for a dump: device 0200, normal, with store status",
                partial(app.run_action, "screen.load('dump')"),
                keywords="stand-alone standalone dump program dumper SAD sadump zipl IPL")
    for pane, title in VIEWS:
        yield Entry(f"View: {title}", f"Show the {title} tab", partial(app.show_tab, pane))
    for speed in SPEEDS:
        yield Entry(f"Speed: {speed.name}", speed.label, partial(app.set_speed, speed.name))
    yield Entry("Help: the focused widget (F1)", "Show help", app.action_help)


class DumpLabCommands(Provider):
    """Palette provider for DumpLab."""

    def _entries(self) -> list[Entry]:
        return list(entries(self.app))  # type: ignore[arg-type]

    async def discover(self) -> Hits:
        for entry in self._entries():
            # Usage lines have [brackets]: plain text, not markup.
            yield DiscoveryHit(Content(entry.title), entry.run, text=entry.title,
                               help=entry.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for entry in self._entries():
            score = matcher.match(entry.title)
            shown = matcher.highlight(escape(entry.title)) if score > 0 else escape(entry.title)
            # The help and the keywords count too ("dump program", "SAD"), a little less.
            score = max(score, 0.9 * matcher.match(f"{entry.help} {entry.keywords}"))
            if score > 0:
                yield Hit(score, shown, entry.run, text=entry.title, help=entry.help)
