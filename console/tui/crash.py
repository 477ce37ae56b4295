"""Crash containment: a bug in the console's screens never takes the LPAR down with it.

Textual ends the app on any exception escaping a message handler, a worker or the renderer,
prints the traceback over the terminal and exits with status 1; in a browser the trainee's
session is gone. The console instead:

- wraps the message dispatch of the app and of every widget it mounts, so an exception in a
  handler (a key, a message from the machine thread, a worker's result) is caught where it
  happens and that widget keeps taking messages;
- takes what Textual itself reports (layout, rendering, workers) through `App._handle_exception`;
- writes each one with its traceback to the work directory's `console.log`, says it in one
  line (hardware messages and the acknowledgement line), and goes on;
- gives up only when it cannot go on: an error before the main screen is up, or a crash loop
  (CRASH_LOOP_ERRORS errors within CRASH_LOOP_S, e.g. every redraw failing). Then the app
  exits with status 70 (EX_SOFTWARE) and prints one line naming the log.
"""

from __future__ import annotations

import time
import traceback
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import rich._wrap as rich_wrap

CRASH_LOOP_ERRORS = 8
CRASH_LOOP_S = 5.0
LOG_NAME = "console.log"


class CrashGuard:
    """Counts and logs the console's internal errors; says whether the console can go on."""

    def __init__(self, workdir: Path) -> None:
        self.log_path = Path(workdir) / LOG_NAME
        self.errors: list[str] = []  # one line each, oldest first (tests and the fuzzer read it)
        self._recent: deque[float] = deque(maxlen=CRASH_LOOP_ERRORS)

    def record(self, error: BaseException, where: str) -> bool:
        """Log `error` with its traceback; False when errors come too fast to go on."""
        self.errors.append(f"{where}: {type(error).__name__}: {error}")
        self.write(f"internal error in {where}",
                   "".join(traceback.format_exception(type(error), error, error.__traceback__)))
        moment = time.monotonic()
        self._recent.append(moment)
        return not (len(self._recent) == CRASH_LOOP_ERRORS
                    and moment - self._recent[0] < CRASH_LOOP_S)

    def write(self, what: str, detail: str = "") -> None:
        """Append to console.log directly (no logging handler to outlive or lose)."""
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds")
        try:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with self.log_path.open("a", encoding="utf-8") as file:
                file.write(f"{stamp} ERROR {what}\n{detail}")
        except OSError:
            pass  # an unwritable work directory must not turn one error into two

    def one_line(self, error: BaseException) -> str:
        return (f"Internal error in the console: {type(error).__name__} (details in "
                f"{self.log_path}); the machine goes on.")

    def fatal_line(self) -> str:
        return (f"dumplab: the console stopped on an internal error; details in "
                f"{self.log_path}\n")


def install_width_guard() -> None:
    """Folding a word into a width of 0 cells raises in rich (`chop_cells` steps through the
    text by the width: "range() arg 3 must not be zero"). Textual lays a widget out at width
    0 for a moment when a resize squeezes it (the tasks pad and a side panel still beside it),
    and any text with a long word then kills the app; the UI fuzzer found it in the stage
    detail, then in other widgets. Folding at width 0 is made folding at width 1: the text is
    drawn clipped, as anything else in a widget of no width, until the next layout."""
    if getattr(rich_wrap.chop_cells, "_dumplab_guarded", False):
        return
    chop = rich_wrap.chop_cells

    def chop_cells(text: str, width: int, *args: Any, **kwargs: Any) -> list[str]:
        return chop(text, max(width, 1), *args, **kwargs)

    chop_cells._dumplab_guarded = True  # type: ignore[attr-defined]
    rich_wrap.chop_cells = chop_cells  # type: ignore[assignment]


def guard_dispatch(pump: Any, on_error: Callable[[BaseException, str], None]) -> None:
    """Wrap a message pump's dispatch so that an exception in one of its handlers is handed to
    `on_error` instead of ending the pump's message loop (and, for Textual, the app)."""
    if getattr(pump, "_dumplab_guarded", False):
        return
    dispatch: Callable[[Any], Awaitable[None]] = pump._dispatch_message

    async def guarded(message: Any) -> None:
        try:
            await dispatch(message)
        # CancelledError is a BaseException: cancelling still passes through.
        except Exception as error:  # noqa: BLE001 - handed on, logged with its traceback
            on_error(error, f"{type(pump).__name__} handling {type(message).__name__}")

    pump._dispatch_message = guarded
    pump._dumplab_guarded = True
