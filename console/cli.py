"""`dumplab`: the command-line entry point.

`dumplab run` drives a headless session from commands, a script file or a named scenario.
`dumplab inspect` and `dumplab convert` read and convert dump files (console/control/dumpfiles.py);
`dumplab zgetdump` copies a stand-alone dump off a dump device image (machine/dumptools.py).
Without a subcommand, `dumplab` opens the console (TUI, console/tui/app.py) on the default
profile; the other subcommands of docs/DESIGN §6 arrive with later issues.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

from console.classroom.results import add_results_parser, results_command
from console.classroom.serve import add_serve_parser, serve_command, session_workdir
from console.control.commands import CommandResult
from console.control.dumpfiles import convert_command, inspect_command
from console.control.exits import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_SOFTWARE,
    EXIT_TERMINATED,
    EXIT_USAGE,
    UsageError,
)
from console.control.gdbserver import parse_endpoint
from console.control.journal import (
    add_journal_option,
    add_replay_parser,
    dumplab_version,
    recording,
    replay_command,
)
from console.control.session import HistoryEntry, Session
from console.training.casts import add_cast2gif_parser, cast2gif_command, live_targets
from console.training.demos import Demo, add_demo_parser, demo_command
from console.training.lab_headless import add_lab_parser, lab_command
from console.training.labs import Lab
from console.tui.terminal import NO_TERMINAL, needs_terminal
from machine.dumptools import DumpToolError, find_dump, zgetdump_image
from machine.events import Event
from machine.formats.common import DumpFormatError
from machine.formats.select import SELECTIONS
from machine.paths import assets_dir
from machine.profile import Profile, ProfileError, parse_size
from machine.userfiles import (
    Terminated,
    UserFileError,
    open_user_file,
    read_user_text,
    shown_path,
)
from machine.workdir import WorkdirError, claim_workdir

DEFAULT_WORKDIR = Path("dumplab-work")

def scenarios_dir() -> Path:
    """Where the named scenarios (command scripts) live."""
    return assets_dir() / "scenarios"


def known_scenarios() -> list[str]:
    """The names `dumplab run --scenario` accepts."""
    folder = scenarios_dir()
    if not folder.is_dir():
        return []
    return sorted(path.name for path in folder.iterdir()
                  if path.is_file() and not path.name.startswith("."))


def split_commands(text: str) -> list[str]:
    """Split a -c argument into command lines at `;` and newlines outside quotes."""
    lines, current, quote = [], [], ""
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in ";\n":
            lines.append("".join(current))
            current = []
            continue
        current.append(char)
    lines.append("".join(current))
    return lines


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for `dumplab` and its subcommands."""
    parser = argparse.ArgumentParser(
        prog="dumplab",
        description="DumpLab: an IBM Z (s390x) HMC dump-workflow trainer.",
        epilog="Without a subcommand, dumplab opens the console (TUI) with the options above.")
    _add_console_options(parser)
    subcommands = parser.add_subparsers(dest="subcommand", metavar="SUBCOMMAND")
    run = subcommands.add_parser(
        "run", help="run operator commands headless",
        description="Run operator commands (docs/COMMANDS.md) against an emulated LPAR without "
                    "the console, and print what happens.")
    source = run.add_mutually_exclusive_group(required=True)
    source.add_argument("-c", dest="commands", metavar="CMDS",
                        help="commands, separated by ';' or newlines")
    source.add_argument("file", nargs="?", metavar="FILE", help="a script of commands")
    source.add_argument("--scenario", metavar="NAME",
                        help="a named scenario from assets/scenarios/")
    run.add_argument("--cpus", type=int, metavar="N", help="override the profile's CPU count")
    run.add_argument("--memory", type=_size, metavar="SIZE",
                     help="override the profile's memory size (e.g. 512M, 1G)")
    run.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, metavar="DIR",
                     help=f"where device and dump files go (default: ./{DEFAULT_WORKDIR})")
    run.add_argument("--json", action="store_true",
                     help="print every machine event and command result as a JSON line")
    add_journal_option(run)
    _add_gdb_option(run, "gdb")
    _add_dump_file_commands(subcommands)
    add_replay_parser(subcommands)
    add_lab_parser(subcommands)
    add_demo_parser(subcommands)
    add_serve_parser(subcommands)
    add_cast2gif_parser(subcommands)
    add_results_parser(subcommands)
    return parser


def _endpoint(text: str) -> str:
    try:
        host, port = parse_endpoint(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return f"{host}:{port}"


def _add_gdb_option(parser: Any, dest: str) -> None:
    parser.add_argument("--gdb", dest=dest, type=_endpoint, metavar="[ADDR:]PORT",
                        help="serve gdb-multiarch on ADDR:PORT (default address 127.0.0.1), "
                             "as the gdbserver command does (docs/GDB.md)")


def _add_console_options(parser: argparse.ArgumentParser) -> None:
    """The options of the console (no subcommand); their dests start with console_."""
    group = parser.add_argument_group("console (no subcommand)")
    group.add_argument("--profile", dest="console_profile", default="default", metavar="NAME",
                       help="activation profile: a name from assets/profiles/ or a .toml file "
                            "(default: default)")
    group.add_argument("--workdir", dest="console_workdir", type=Path, default=DEFAULT_WORKDIR,
                       metavar="DIR",
                       help=f"where device and dump files go (default: ./{DEFAULT_WORKDIR})")
    group.add_argument("--cpus", dest="console_cpus", type=int, metavar="N",
                       help="override the profile's CPU count")
    group.add_argument("--memory", dest="console_memory", type=_size, metavar="SIZE",
                       help="override the profile's memory size (e.g. 512M, 1G)")
    group.add_argument("--free-running", dest="console_free_running", action="store_true",
                       help="start at the free-running speed: fastest, not reproducible "
                            "(default: deterministic, paced to real time)")
    group.add_argument("--journal", dest="console_journal", type=Path, metavar="FILE",
                       help="write every command, run and event of the console session as a "
                            "JSON-lines journal (docs/JOURNAL.md); `dumplab replay FILE` "
                            "checks it")
    group.add_argument("--record", dest="console_record", type=Path, metavar="FILE.cast",
                       help="record the session as asciicast v2 (host times, idle gaps "
                            "capped), with a journal beside it (FILE.jsonl) unless --journal "
                            "names one")
    group.add_argument("--idle-limit", dest="console_idle_limit", type=float, default=2.0,
                       metavar="SECONDS",
                       help="with --record: the longest pause kept (default: 2)")
    group.add_argument("--force", dest="console_force", action="store_true",
                       help="with --record: overwrite an existing recording and journal")
    # `dumplab serve` starts one console per browser with this: a fresh DIR/session-* workdir.
    group.add_argument("--workdir-per-session", dest="console_workdir_per_session", type=Path,
                       metavar="BASE", help=argparse.SUPPRESS)
    _add_gdb_option(group, "console_gdb")


def console_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """`dumplab` with no subcommand: the console, until the operator quits."""
    journal = live_targets(args.console_record, args.console_journal, args.console_idle_limit,
                           args.console_force)  # a bad --record: one line, exit 2
    if needs_terminal():
        err.write(NO_TERMINAL)
        return EXIT_USAGE
    if args.console_workdir_per_session is not None:  # console/classroom/serve.py
        args.console_workdir = session_workdir(args.console_workdir_per_session)
    overrides = _overrides(argparse.Namespace(cpus=args.console_cpus,
                                              memory=args.console_memory))
    try:
        with Session(args.console_workdir, args.console_profile, overrides) as session:
            session.resolve_profile()  # a bad --profile is a usage error, before the screen
    except ProfileError as error:
        raise UsageError(str(error)) from None
    from console.tui.app import DumpLabApp  # Textual only for the console, not for `run`
    from console.tui.recording import live_recording

    with _claimed(args.console_workdir):
        app = DumpLabApp(args.console_workdir, profile=args.console_profile,
                         overrides=overrides,
                         speed="free" if args.console_free_running else "real")
        if args.console_workdir_per_session is not None:  # served: status, instructor, results
            from console.classroom.agent import attach
            attach(app)
        if args.console_gdb is not None:
            app.runner.submit(f"gdbserver {args.console_gdb}")
        with live_recording(app, args.console_record, args.console_idle_limit), \
                recording(app.session, journal, created_by=f"{dumplab_version()} console"):
            # The console holds at each dump-workflow stage and shows its card
            # (docs/CONSOLE.md); a command, so that the journal has it and a replay holds
            # where this run held.
            app.session.execute("stage-stop on")
            return app.run_console()  # 70 after one line naming console.log on a crash


def _add_dump_file_commands(subcommands: Any) -> None:
    inspect = subcommands.add_parser(
        "inspect", help="summarize a vmcore or an s390 dump",
        description="Show what a dump file holds: its format, the memory ranges (and how "
                    "many zero pages were filtered out), each CPU's PSW (decoded), registers, "
                    "prefix, CPU timer and clock comparator, and the VMCOREINFO text. The "
                    "format (ELF vmcore or s390 dump) is detected from the file.")
    inspect.add_argument("file", metavar="FILE", help="an ELF vmcore or an s390 dump")
    inspect.add_argument("--select", choices=SELECTIONS, default="all",
                         help="for a dump that holds two systems (kdump failed after its "
                              "swap, then a stand-alone dump): prod shows the production "
                              "system with the swap undone, kdump the kdump kernel's "
                              "[0, OLDMEM_SIZE), all the dump as it is (default)")
    inspect.add_argument("--json", action="store_true",
                         help="print the same as one JSON object")
    convert = subcommands.add_parser(
        "convert", help="convert between an s390 dump and an ELF vmcore",
        description="Convert an s390 dump to an ELF vmcore or the other way round, as "
                    "zgetdump does. The output is written under a temporary name and renamed "
                    "when complete.")
    convert.add_argument("input", metavar="IN", help="an ELF vmcore or an s390 dump")
    convert.add_argument("output", metavar="OUT", help="the file to write")
    convert.add_argument("--format", choices=("elf", "s390"),
                         help="the output format (default: the other format than IN's)")
    convert.add_argument("--select", choices=SELECTIONS, default="all",
                         help="for a dump that holds two systems: write only the production "
                              "system (prod, the swap undone) or the kdump kernel's (kdump) "
                              "as an ELF core")
    zgetdump = subcommands.add_parser(
        "zgetdump", help="copy a stand-alone dump off a dump device image",
        description="Copy the full dump the stand-alone dumper left on a dump device (its "
                    "image, like dumplab-work/dev-0200.img) into a file, as zgetdump does on "
                    "Linux after the re-IPL: as it is (s390) or as an ELF core (elf, the "
                    "default). -i only shows what the dump on the device holds. The output is "
                    "written under a temporary name and renamed when complete.")
    zgetdump.add_argument("device", metavar="DEVICE-IMAGE", help="a dump device image")
    zgetdump.add_argument("output", metavar="OUT", nargs="?", help="the file to write")
    zgetdump.add_argument("-f", "--format", choices=("elf", "s390"), default="elf",
                          help="the output format (default: elf)")
    zgetdump.add_argument("-i", "--info", action="store_true",
                          help="show the dump's header instead of copying it")


def _script(args: argparse.Namespace) -> tuple[str, list[str]]:
    """The command lines to run and a name for them in messages."""
    if args.commands is not None:
        return "-c", split_commands(args.commands)
    if args.scenario is not None:
        path = scenarios_dir() / args.scenario
        if not re.fullmatch(r"[\w.-]+", args.scenario) or not path.is_file():
            known = ", ".join(known_scenarios()) or "none"
            raise UsageError(f"unknown scenario '{args.scenario}' (known: {known})")
        return f"scenario {args.scenario}", read_user_text(path, "script").splitlines()
    try:
        # A regular file of at most 1 MiB: /dev/zero or a FIFO is refused, not read for ever.
        return shown_path(args.file), read_user_text(args.file, "script").splitlines()
    except OSError as error:
        raise UsageError(f"cannot read {shown_path(args.file)}: "
                         f"{error.strerror or error}") from None


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if args.cpus is not None:
        overrides["cpus"] = args.cpus
    if args.memory is not None:
        overrides["memory"] = args.memory
    if overrides:
        # Check the values now, so that a bad --cpus is a usage error and not a failed line 1.
        try:
            Profile.builtin("default").replace(**overrides)
        except ProfileError as error:
            raise UsageError(str(error)) from None
    return overrides


class _Printer:
    """Writes what a headless run shows: JSON lines, or acknowledgements and console text."""

    def __init__(self, session: Session, out: TextIO, as_json: bool) -> None:
        self.session = session
        self.out = out
        self.as_json = as_json

    def event(self, event: Event) -> None:
        if self.as_json:
            self._json(event.to_dict())
        elif event.kind == "console":
            stamp = f"[{event.t / 1e9:12.6f}]"
            for line in str(getattr(event, "text", "")).rstrip("\n").splitlines() or [""]:
                self.out.write(f"{stamp} {line}\n")

    def result(self, entry: HistoryEntry) -> None:
        result = entry.result
        if self.as_json:
            self._json({"kind": "command", "t": self.session.now(), "line": result.line,
                        "command": entry.text, "ok": result.ok, "message": result.message,
                        "data": result.data})
        elif result.ok:
            self.out.write(result.message + "\n")
        self.out.flush()

    def _json(self, record: dict[str, Any]) -> None:
        self.out.write(json.dumps(record) + "\n")


def run_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """`dumplab run`: run the script; 0 if every command succeeded, 1 at the first failure."""
    source, lines = _script(args)
    overrides = _overrides(args)
    with Session(args.workdir, overrides=overrides) as session, \
            recording(session, args.journal):
        printer = _Printer(session, out, args.json)
        unsubscribe: Callable[[], None] = session.bus.subscribe(printer.event)
        try:
            results = _run_with_gdb(session, lines, printer, args.gdb)
        finally:
            unsubscribe()
    failed = [result for result in results if not result.ok]
    if failed:
        err.write(f"dumplab: line {failed[0].line} of {source}: {failed[0].message}\n")
        return EXIT_FAILED
    return EXIT_OK


def _run_with_gdb(session: Session, lines: list[str], printer: _Printer,
                  gdb: str | None) -> list[CommandResult]:
    """The script; with --gdb, a gdb server started before it and served after it until the
    client detaches (`gdbserver wait`)."""
    if gdb is None:
        return session.run_script(lines, on_result=printer.result)
    started = session.execute(f"gdbserver {gdb}")
    printer.result(HistoryEntry(f"gdbserver {gdb}", started))
    if not started.ok:
        raise UsageError(f"--gdb: {started.message}")
    results = session.run_script(lines, on_result=printer.result)
    if all(result.ok for result in results):
        waited = session.execute("gdbserver wait")
        printer.result(HistoryEntry("gdbserver wait", waited))
    return results


def _lab_in_console(lab: Lab, workdir: Path) -> int:
    from console.tui.screens.lab import run_lab  # Textual only when a lab opens the console

    return run_lab(lab, workdir)


class _DemoInConsole:
    """The console's demo player for `dumplab demo` (Textual imported only when it plays)."""

    def play(self, demo: Demo, workdir: Path | None) -> int:
        from console.tui.demo import play_demo

        return play_demo(demo, workdir)

    def screenshots(self, demo: Demo, directory: Path, workdir: Path | None) -> int:
        from console.tui.demo import record_demo_screenshots

        return record_demo_screenshots(demo, directory, workdir)

    def record(self, demo: Demo, cast: Path | None, workdir: Path | None,
               size: tuple[int, int], gif: Path | None) -> int:
        from console.tui.recording import record_demo_cast

        return record_demo_cast(demo, cast, workdir, size=size, gif=gif)


def zgetdump_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """`dumplab zgetdump DEVICE-IMAGE OUT [-f elf|s390]` or `dumplab zgetdump -i DEVICE-IMAGE`."""
    if args.info == (args.output is not None):
        raise UsageError("give either OUT (copy the dump) or -i (show it), not both or neither")
    try:
        if args.info:
            with open_user_file(args.device, "dump") as source:
                dump = find_dump(source, os.fstat(source.fileno()).st_size, f"'{args.device}'")
            header = dump.header
            out.write(f"{args.device}: s390 dump (version {header.version}) at offset "
                      f"{dump.offset:#x}: {header.mem_size >> 20} MB of memory, "
                      f"{header.cpu_cnt} CPUs, TOD {header.tod:016x} to {dump.end_tod:016x}\n")
            return EXIT_OK
        result = zgetdump_image(args.device, args.output, args.format)
    except UserFileError as error:  # names the device image or the output itself
        err.write(f"dumplab zgetdump: {error}\n")
        return EXIT_FAILED
    except (DumpToolError, DumpFormatError, ValueError) as error:
        err.write(f"dumplab zgetdump: {error}\n")
        return EXIT_FAILED
    except OSError as error:
        err.write(f"dumplab zgetdump: {args.device}: {error.strerror or error}\n")
        return EXIT_FAILED
    out.write(f"{args.device} -> {args.output} ({result.format}): {result.bytes} bytes in "
              f"{result.seconds:.2f} s\n")
    return EXIT_OK


COMMANDS: dict[str, Callable[[argparse.Namespace, TextIO, TextIO], int]] = {
    "run": run_command,
    "inspect": inspect_command,
    "convert": convert_command,
    "zgetdump": zgetdump_command,
    "replay": replay_command,
    "lab": functools.partial(lab_command, in_console=_lab_in_console),
    "demo": functools.partial(demo_command, console=_DemoInConsole()),
    "serve": serve_command,
    "cast2gif": cast2gif_command,
    "results": results_command,
}


@contextlib.contextmanager
def _claimed(workdir: Path | None) -> Iterator[None]:
    """Check and lock the work directory for the whole command (machine/workdir.py): a bad
    --workdir, or one another run is using, is a usage error before anything starts."""
    if workdir is None:
        yield
        return
    try:
        claim = claim_workdir(workdir)
    except WorkdirError as error:
        raise UsageError(str(error)) from None
    with claim:
        yield


def _workdir(args: argparse.Namespace) -> Path | None:
    """The work directory a subcommand runs an LPAR in (None: none, or a temporary one)."""
    if args.subcommand == "run":
        return args.workdir
    if args.subcommand == "replay":
        return args.workdir
    if args.subcommand == "lab" and args.name != "list":
        return args.workdir or (None if args.headless and args.solve else DEFAULT_WORKDIR)
    if args.subcommand == "demo" and args.name != "list":
        return args.workdir
    return None


@contextlib.contextmanager
def _sigterm_unwinds(wanted: bool) -> Iterator[None]:
    """SIGTERM raises Terminated, so that what is being written and temporary directories are
    removed on the way out, as on Ctrl+C (not for serve, which handles its own signals)."""
    if not wanted or threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum: int, frame: object) -> None:
        raise Terminated("terminated (SIGTERM)")

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    """Run `dumplab` with `argv` (default: the process arguments); return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_request:  # argparse exits on --help and on usage errors
        return int(exit_request.code or 0)
    name = f"dumplab {args.subcommand or '(console)'}"
    try:
        command = COMMANDS[args.subcommand] if args.subcommand else console_command
        with _sigterm_unwinds(args.subcommand not in (None, "serve")), \
                _claimed(_workdir(args)):
            return command(args, sys.stdout, sys.stderr)
    except BrokenPipeError:
        # The reader went away (`dumplab run --json | head`): stop quietly, as `cat` would.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    except UsageError as error:
        sys.stderr.write(f"{name}: error: {error}\n")
        return EXIT_USAGE
    except UserFileError as error:  # a file named on the command line, refused
        sys.stderr.write(f"{name}: {error}\n")
        return EXIT_FAILED
    except KeyboardInterrupt:
        sys.stderr.write(f"{name}: interrupted (Ctrl+C); files being written were removed\n")
        return EXIT_INTERRUPTED
    except Terminated:
        sys.stderr.write(f"{name}: terminated (SIGTERM); files being written were removed\n")
        return EXIT_TERMINATED
    except Exception as error:
        # A bug, not an operator mistake: one line unless DUMPLAB_DEBUG asks for the traceback.
        if os.environ.get("DUMPLAB_DEBUG"):
            raise
        sys.stderr.write(f"dumplab: internal error: {type(error).__name__}: {error} "
                         "(set DUMPLAB_DEBUG=1 for the traceback)\n")
        return EXIT_SOFTWARE


if __name__ == "__main__":
    sys.exit(main())
