"""What the screens need of the console app, as a protocol: screens and the palette type their
app against it, so that they never import console/tui/app.py (which imports them)."""

from __future__ import annotations

from typing import Protocol

from console.control.runner import Runner


class ConsoleHost(Protocol):
    """The DumpLab console app (console/tui/app.py), as its screens use it."""

    runner: Runner

    def submit(self, line: str, source: str = "operator") -> int:
        """Hand a command line to the machine thread; the ticket of its outcome."""

    def show_tab(self, tab: str) -> None:
        """Show one of the main screen's views."""

    def set_speed(self, name: str) -> None:
        """Run the machine at a named speed."""

    def action_command_line(self, initial: str = "") -> None:
        """Open the command prompt with `initial` typed."""

    def action_help(self) -> None:
        """Help for the focused part."""

    def action_open_dump(self) -> None:
        """Open a dump file in the viewer."""

    async def run_action(self, action: str) -> bool:
        """Run a Textual action string (Textual's App.run_action)."""
