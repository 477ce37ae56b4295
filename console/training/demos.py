"""Demos: scripted, captioned runs that replay exactly, for CI, classrooms and recordings.

A demo file (assets/demos/NAME.toml) has a title, optional profile overrides, optional
terminal size and pacing, and steps of {caption, commands, pause}. `dumplab demo NAME
--headless` plays it in the terminal, printing captions, commands, acknowledgements and the
Operating System Messages; `--headless --record FILE.cast` writes that transcript as an
asciicast v2 recording, with an "m" marker at each demo step and each workflow stage event.
Without --headless the demo plays in the console; `--record FILE.cast` films the console
instead (console/tui/recording.py), --gif renders a GIF (console/training/casts.py), and
--screenshots DIR writes an SVG of the console at each stage (console/tui/demo.py).

Times in a recording come from the demo's pacing (seconds per output line, per command, per
caption, and each step's pause), never from the host clock, and the header's timestamp is the
LPAR's fixed activation time: the same demo always gives the same file, byte for byte.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TextIO

from console.control.commands import CommandError, CommandResult
from console.control.exits import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from console.control.session import Session
from console.training import labtools
from console.training.datafiles import (
    DataFileError,
    SourceLines,
    expect_keys,
    expect_strings,
    expect_type,
    load_toml,
    profile_overrides,
)
from console.training.labs import check_script_line
from machine import userfiles
from machine.clock import ACTIVATION_TIME
from machine.events import Event, EventLog
from machine.paths import assets_dir
from machine.userfiles import UserFileError, check_output_target

PROMPT = "HMC> "
CAPTION_STYLE, RESET = "\x1b[1;36m", "\x1b[0m"
COMMAND_STYLE = "\x1b[1m"
DEFAULT_SIZE = (100, 30)
PACING_KEYS = ("line", "command", "caption")
DEFAULT_PACING = {"line": 0.04, "command": 1.0, "caption": 2.0}


def _size_option(text: str) -> tuple[int, int]:
    columns, _, rows = text.lower().partition("x")
    if not (columns.isdigit() and rows.isdigit()):
        raise argparse.ArgumentTypeError(f"'{text}' is not COLSxROWS (for example 110x32)")
    return int(columns), int(rows)


def demos_dir() -> Path:
    """Where the shipped demos live."""
    return assets_dir() / "demos"


# --------------------------------------------------------------------------------------------
# The model and loading


@dataclass(frozen=True)
class DemoStep:
    """One captioned step: its commands, then a pause (seconds of the recording)."""

    caption: str
    commands: tuple[str, ...]
    pause: float


@dataclass(frozen=True)
class Demo:
    """A demo as loaded from its file."""

    name: str
    path: Path
    title: str
    lab: str
    width: int
    height: int
    profile: dict[str, Any]
    pacing: dict[str, float]
    steps: tuple[DemoStep, ...]


# Bounds of a demo's numbers: a pause or pacing delay is seconds of the recording; the size
# is the terminal's, in cells. Beyond them a recording is useless (or, for nan/inf, not JSON).
MAX_SECONDS = 600.0
SIZE_RANGE = {"width": (40, 500), "height": (10, 200)}


def _number(value: Any, key: str, source: SourceLines, index: int | None, what: str,
            name: str | None = None) -> float:
    expect_type(value, (int, float), key=key, source=source, index=index, what=what, name=name)
    if not 0 <= value <= MAX_SECONDS:  # false for nan too
        raise source.error(source.key_line(key, index, name),
                           f"{what}: '{key}' must be 0 to {MAX_SECONDS:g} seconds")
    return float(value)


def _size(data: dict[str, Any], key: str, default: int, source: SourceLines) -> int:
    value = expect_type(data.get(key, default), int, key=key, source=source, index=None,
                        what="demo")
    low, high = SIZE_RANGE[key]
    if not low <= value <= high:
        raise source.error(source.key_line(key), f"demo: '{key}' must be {low} to {high}")
    return value


def _step(table: Any, source: SourceLines, index: int) -> DemoStep:
    what = f"step {index + 1}"
    if not isinstance(table, dict):
        raise source.error(source.step_line(index), f"{what}: expected a [[steps]] table")
    expect_keys(table, required=("caption", "commands"), optional=("pause",), source=source,
                index=index, what=what)
    caption = expect_type(table["caption"], str, key="caption", source=source, index=index,
                          what=what)
    commands = expect_strings(table["commands"], key="commands", source=source, index=index,
                              what=what)
    for line in commands:
        try:
            check_script_line(line, answers=False)
        except CommandError as error:
            raise source.error(source.text_line(line, index),
                               f"{what}: commands: '{line}': {error}") from None
    return DemoStep(caption.strip(), commands,
                    _number(table.get("pause", 1.0), "pause", source, index, what))


def _pacing(data: dict[str, Any], source: SourceLines) -> dict[str, float]:
    table = data.get("pacing", {})
    if not isinstance(table, dict):
        raise source.error(source.key_line("pacing"), "'pacing' must be a table")
    expect_keys(table, required=(), optional=PACING_KEYS, source=source, index=None,
                what="pacing", name="pacing")
    return {**DEFAULT_PACING, **{key: _number(value, key, source, None, "pacing", "pacing")
                                 for key, value in table.items()}}


def load_demo(path: Path) -> Demo:
    """Read and check one demo file; DataFileError names the file and the line."""
    path = Path(path)
    data, source = load_toml(path, "demo")
    expect_keys(data, required=("title", "steps"),
                optional=("lab", "width", "height", "profile", "pacing"), source=source,
                index=None, what="demo")
    steps = data["steps"]
    if not isinstance(steps, list) or not steps:
        raise source.error(source.key_line("steps"), "demo: 'steps' must be [[steps]] tables")
    size = [_size(data, key, default, source)
            for key, default in zip(("width", "height"), DEFAULT_SIZE, strict=True)]
    return Demo(path.stem, path,
                expect_type(data["title"], str, key="title", source=source, index=None,
                            what="demo"),
                expect_type(data.get("lab", ""), str, key="lab", source=source, index=None,
                            what="demo"),
                size[0], size[1], profile_overrides(data, source), _pacing(data, source),
                tuple(_step(table, source, index) for index, table in enumerate(steps)))


def load_demos(directory: Path | None = None) -> tuple[list[Demo], list[str]]:
    """Every demo of `directory` (default: the shipped demos) and one error line for each
    file that did not load; a broken file does not stop the others."""
    directory = demos_dir() if directory is None else Path(directory)
    demos, errors = [], []
    for path in sorted(directory.glob("*.toml")) if directory.is_dir() else []:
        try:
            demos.append(load_demo(path))
        except DataFileError as error:
            errors.append(str(error))
    return demos, errors


# --------------------------------------------------------------------------------------------
# Where a demo plays to


class Sink(Protocol):
    """What a demo produces, in order: captions, typed commands, output lines, markers and
    pauses."""

    def caption(self, text: str) -> None: ...
    def typed(self, command: str) -> None: ...
    def output(self, line: str) -> None: ...
    def marker(self, label: str) -> None: ...
    def pause(self, seconds: float) -> None: ...


class TextSink:
    """Plain text on a stream (the headless mode); `realtime` sleeps through the pauses."""

    def __init__(self, out: TextIO, realtime: bool = False) -> None:
        self.out = out
        self.realtime = realtime

    def caption(self, text: str) -> None:
        self.out.write(f"\n== {text} ==\n")

    def typed(self, command: str) -> None:
        self.out.write(f"{PROMPT}{command}\n")

    def output(self, line: str) -> None:
        self.out.write(line + "\n")

    def marker(self, label: str) -> None:
        pass

    def pause(self, seconds: float) -> None:
        self.out.flush()
        if self.realtime:
            time.sleep(seconds)


class CastRecorder:
    """An asciicast v2 recording on a virtual clock driven by the demo's pacing."""

    def __init__(self, demo: Demo) -> None:
        self.demo = demo
        self.pacing = demo.pacing
        self.clock = 0.0
        self.events: list[list[Any]] = []

    def _emit(self, code: str, data: str) -> None:
        self.events.append([round(self.clock, 6), code, data])

    def caption(self, text: str) -> None:
        lines = "\r\n".join(f"{CAPTION_STYLE}{line}{RESET}" for line in text.splitlines())
        self._emit("o", f"\r\n{lines}\r\n")
        self.clock += self.pacing["caption"]

    def typed(self, command: str) -> None:
        self.clock += self.pacing["command"]
        self._emit("o", f"{PROMPT}{COMMAND_STYLE}{command}{RESET}\r\n")

    def output(self, line: str) -> None:
        self.clock += self.pacing["line"]
        self._emit("o", line + "\r\n")

    def marker(self, label: str) -> None:
        self._emit("m", label)

    def pause(self, seconds: float) -> None:
        self.clock += seconds

    def header(self) -> dict[str, Any]:
        """The asciicast v2 header: a fixed timestamp (the LPAR's activation time), so that
        a recording does not depend on when it was made."""
        return {"version": 2, "width": self.demo.width, "height": self.demo.height,
                "timestamp": int(ACTIVATION_TIME.timestamp()),
                "duration": round(self.clock, 6), "title": self.demo.title,
                "env": {"TERM": "xterm-256color", "SHELL": "/bin/sh"}}

    def write(self, path: Path) -> None:
        """Write the recording under a temporary name, then rename it into place."""
        lines = [json.dumps(self.header()), *(json.dumps(event) for event in self.events)]
        write_atomically(Path(path), "".join(line + "\n" for line in lines))


def write_atomically(path: Path, text: str | bytes) -> None:
    """Write `text` (or bytes: a GIF) beside `path` and rename it into place
    (machine/userfiles.py): a reader never sees half a file, a failure leaves no partial file,
    and a symlink, device, FIFO or directory under the name is refused, not replaced."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserFileError(path, error.strerror or str(error)) from None
    userfiles.write_atomically(path, text)


class Tee:
    """Plays to several sinks at once."""

    def __init__(self, *sinks: Sink) -> None:
        self.sinks = sinks

    def __getattr__(self, name: str) -> Callable[..., None]:
        def call(*args: Any) -> None:
            for sink in self.sinks:
                getattr(sink, name)(*args)
        return call


# --------------------------------------------------------------------------------------------
# Playing


def step_failure(number: int, line: str, message: str) -> str:
    """How a failed demo command is reported, in every front end."""
    return f"step {number}: '{line}': {message}"


class DemoPlayer:
    """Runs a demo's steps on a fresh session and tells a sink what happens."""

    def __init__(self, demo: Demo, workdir: Path, sink: Sink) -> None:
        self.demo = demo
        self.workdir = Path(workdir)
        self.sink = sink
        self.failure: str | None = None

    def _event(self, event: Event) -> None:
        if event.kind == "console" and getattr(event, "source", "os") == "os":
            stamp = f"[{event.t / 1e9:12.6f}]"
            for line in str(getattr(event, "text", "")).rstrip("\n").splitlines() or [""]:
                self.sink.output(f"{stamp} {line}")
        elif event.kind == "stage":
            label = f"stage {getattr(event, 'stage', '')}: {getattr(event, 'status', '')}"
            detail = getattr(event, "detail", "")
            self.sink.marker(f"{label} ({detail})" if detail else label)

    def _run(self, session: Session, log: EventLog, line: str) -> CommandResult:
        if labtools.tool_word(line):
            context = labtools.ToolContext(session.workdir, log.events, host_times=False)
            return labtools.run_tool(line, context)
        return session.execute(line)

    def play(self) -> bool:
        """Play every step; False (with `failure` set) at the first command that fails."""
        with Session(self.workdir, overrides=self.demo.profile) as session:
            log = EventLog(session.bus)
            session.bus.subscribe(self._event)
            try:
                return self._steps(session, log)
            finally:
                log.close()

    def _steps(self, session: Session, log: EventLog) -> bool:
        total = len(self.demo.steps)
        for number, step in enumerate(self.demo.steps, start=1):
            self.sink.marker(f"step {number}/{total}: {step.caption.splitlines()[0]}")
            self.sink.caption(step.caption)
            for line in step.commands:
                self.sink.typed(line)
                result = self._run(session, log, line)
                for text in result.message.splitlines():
                    self.sink.output(text if result.ok else f"refused: {text}")
                if not result.ok:
                    self.failure = step_failure(number, line, result.message)
                    return False
            self.sink.pause(step.pause)
        return True


def play(demo: Demo, workdir: Path, *, out: TextIO | None = None, cast: Path | None = None,
         realtime: bool = False) -> str | None:
    """Play `demo`, printing it to `out` and recording it to `cast` (either may be None);
    None if every command succeeded, else the failure. The recording is written even after
    a failure, to show where it happened."""
    recorder = CastRecorder(demo) if cast is not None else None
    sinks: list[Sink] = [recorder] if recorder is not None else []
    if out is not None:
        sinks.append(TextSink(out, realtime=realtime))
    player = DemoPlayer(demo, workdir, Tee(*sinks))
    player.play()
    if recorder is not None and cast is not None:
        recorder.write(cast)
    return player.failure


# --------------------------------------------------------------------------------------------
# The command line


def add_demo_parser(subcommands: Any) -> argparse.ArgumentParser:
    """The `dumplab demo` subcommand."""
    parser = subcommands.add_parser(
        "demo", help="play a scripted, captioned demo",
        description="Play a demo from assets/demos/ (`dumplab demo list` lists them) in the "
                    "console (space pauses, n skips a wait, q stops). --record writes an "
                    "asciicast v2 recording of the console (its screens, with the captions) "
                    "whose times come from the demo's pacing, so that it is the same on every "
                    "run; --gif renders one as a GIF (the [media] extra). --headless prints a "
                    "plain-text transcript in the terminal instead, and with --record records "
                    "that transcript; --screenshots writes SVGs of the console at each stage.")
    parser.add_argument("name", metavar="list|NAME", help="'list', or a demo name")
    parser.add_argument("--headless", action="store_true",
                        help="play in the terminal without the console (TUI)")
    parser.add_argument("--record", type=Path, metavar="FILE.cast",
                        help="write an asciicast v2 recording of the console (with --headless: "
                             "of the plain-text transcript)")
    parser.add_argument("--gif", type=Path, metavar="FILE.gif",
                        help="render the recording as a GIF with agg (the [media] extra)")
    parser.add_argument("--size", type=_size_option, metavar="COLSxROWS",
                        help="the recording's terminal size (default: the demo's, or 100x30; "
                             "at least the console's minimum, 80x24)")
    parser.add_argument("--force", action="store_true",
                        help="overwrite an existing recording or GIF")
    parser.add_argument("--screenshots", type=Path, metavar="DIR",
                        help="write an SVG screenshot of the console at each stage")
    parser.add_argument("--realtime", action="store_true",
                        help="with --headless: wait through the demo's pauses")
    parser.add_argument("--workdir", type=Path, metavar="DIR",
                        help="where device and dump files go (default: a temporary "
                             "directory, removed afterwards)")
    return parser


class DemoConsole(Protocol):
    """What `dumplab demo` needs of the console (cli.py passes it in, so that the headless
    modes never load Textual)."""

    def play(self, demo: Demo, workdir: Path | None) -> int:
        """Play `demo` in the console; the exit status."""

    def screenshots(self, demo: Demo, directory: Path, workdir: Path | None) -> int:
        """Play `demo` off screen and write an SVG at each stage into `directory`."""

    def record(self, demo: Demo, cast: Path | None, workdir: Path | None,
               size: tuple[int, int], gif: Path | None) -> int:
        """Play `demo` off screen and record the console to `cast` (None: a temporary
        file) and render it to `gif`."""


def _play(demo: Demo, args: argparse.Namespace, workdir: Path, out: TextIO,
          cast: Path | None) -> str | None:
    return play(demo, workdir, out=out if args.headless else None, cast=cast,
                realtime=args.realtime)


def _refusal(demo: Demo, args: argparse.Namespace) -> str | None:
    """Why the recording options cannot be honoured (None: they can), before anything
    plays: a size below the console's minimum, a target that exists (without --force) or
    cannot be written."""
    from console.training import casts  # casts imports this module

    if not args.headless and (args.record is not None or args.gif is not None):
        refused = casts.check_size(*(args.size or (demo.width, demo.height)))
        if refused:
            return refused
    for option, target in (("--record", args.record), ("--gif", args.gif)):
        refused = _special_target(option, target) or (
            casts.check_target(target, args.force) if target is not None else None)
        if refused:
            return refused
    return None


def _special_target(option: str, target: Path | None) -> str | None:
    """A device, FIFO or symlink as the output is refused and left untouched (a directory is
    casts.check_target's to name)."""
    if target is None or Path(target).is_dir() or not os.path.lexists(target):
        return None  # nothing there yet, or a folder: casts.check_target names the problem
    try:
        check_output_target(target)
    except UserFileError as error:
        return f"{option} {error}"
    return None


def _record_in_console(demo: Demo, args: argparse.Namespace, console: DemoConsole) -> int:
    """The console's recording (with --gif alone, to a temporary cast)."""
    return console.record(demo, args.record, args.workdir, args.size or (demo.width,
                                                                          demo.height), args.gif)


def _headless(demo: Demo, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """The plain-text transcript, printed and/or recorded (and rendered as a GIF)."""
    with contextlib.ExitStack() as stack:
        cast = args.record
        if cast is None and args.gif is not None:
            cast = Path(stack.enter_context(tempfile.TemporaryDirectory(
                prefix="dumplab-cast-"))) / f"{demo.name}.cast"
        workdir = args.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(
            prefix="dumplab-demo-")))
        failure = _play(demo, args, workdir, out, cast)
        if args.gif is not None and cast is not None:
            from console.training.casts import cast_to_gif

            try:
                cast_to_gif(cast, args.gif)
            except (RuntimeError, OSError) as error:
                err.write(f"dumplab demo: {error}\n")
                return EXIT_FAILED
    if failure is not None:
        err.write(f"dumplab demo: {demo.path}: {failure}\n")
        return EXIT_FAILED
    return EXIT_OK


def demo_command(args: argparse.Namespace, out: TextIO, err: TextIO, *,
                 console: DemoConsole) -> int:
    """`dumplab demo list|NAME [--headless] [--record FILE.cast] [--gif FILE.gif]
    [--size COLSxROWS] [--force] [--screenshots DIR]`."""
    demos, errors = load_demos()
    err.writelines(f"dumplab demo: {error}\n" for error in errors)
    if args.name == "list":
        width = max((len(demo.name) for demo in demos), default=0) + 2
        out.writelines(f"{demo.name:<{width}}{demo.title}\n" for demo in demos)
        return EXIT_FAILED if errors else EXIT_OK
    demo = next((demo for demo in demos if demo.name == args.name), None)
    if demo is None:
        known = ", ".join(demo.name for demo in demos) or "none"
        err.write(f"dumplab demo: unknown demo '{args.name}' (known: {known})\n")
        return EXIT_USAGE
    if args.screenshots is not None:
        return console.screenshots(demo, args.screenshots, args.workdir)
    refused = _refusal(demo, args)
    if refused is not None:
        err.write(f"dumplab demo: {refused}\n")
        return EXIT_USAGE
    if args.headless:
        return _headless(demo, args, out, err)
    if args.record is not None or args.gif is not None:
        return _record_in_console(demo, args, console)
    return console.play(demo, args.workdir)
