"""Where the console can draw: a terminal on both standard streams, or a browser through
textual-serve (which runs `dumplab` with pipes and sets TEXTUAL_DRIVER to its web driver)."""

from __future__ import annotations

import os
import sys

WEB_DRIVER = "textual.drivers.web_driver:WebDriver"  # what textual-serve sets TEXTUAL_DRIVER to

NO_TERMINAL = (
    "dumplab: the console needs a terminal (standard input and output must be a TTY).\n"
    "Drive the LPAR headless with `dumplab run` instead, for example:\n"
    "  dumplab run --scenario boot\n"
)


def served_in_browser() -> bool:
    """Whether this console draws for textual-serve (standard input and output are pipes)."""
    return os.environ.get("TEXTUAL_DRIVER") == WEB_DRIVER


def needs_terminal() -> bool:
    """True when the console cannot open here: no terminal, and not served in a browser."""
    return not (sys.stdin.isatty() and sys.stdout.isatty()) and not served_in_browser()
