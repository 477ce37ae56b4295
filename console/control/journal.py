"""The session journal: every command and every event of a run, as versioned JSON lines, and
`dumplab replay`, which runs a journal's commands again and compares the events.

A journal is the proof of DumpLab's determinism: the same commands on the same profile give
the same events, field for field, except for the few fields that measure the host rather than
the emulated machine (`normalise`, docs/JOURNAL.md).

Layout (docs/JOURNAL.md): line 1 is the header
``{"journal": "dumplab", "version": 1, "profile": ..., "overrides": ..., "created_by": ...,
"workdir": ..., "workdir_absolute": ...}``; then, in the order they happened, one line per
event (``event.to_dict()``, with its `kind`) and one line per command
``{"kind": "command", "t": ..., "command": TEXT, "ok": ..., "message": ...}`` written right
after the events the command caused.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO

from console.control.commands import MAX_VIRTUAL_NS
from console.control.exits import UsageError
from console.control.session import HistoryEntry, Session
from machine.events import Event
from machine.profile import ProfileError
from machine.userfiles import AtomicFile, Terminated, UserFileError, read_user_text, shown_path

JOURNAL_MAGIC = "dumplab"
JOURNAL_VERSION = 1
EXIT_OK, EXIT_DIFFERS, EXIT_BAD_JOURNAL = 0, 1, 2
WORKDIR_TOKEN = "$WORKDIR"
# Fields that measure the host, not the machine: removed before comparing (docs/JOURNAL.md).
HOST_FIELDS: dict[str, tuple[str, ...]] = {"dump_written": ("seconds",)}
# A dump file name with the suffix added when an earlier run left a file of the same name.
_COLLISION_SUFFIX = re.compile(r"\b((?:vmcore|dump)-\d{8}-\d{6})-\d+\b")


class JournalError(ValueError):
    """A journal that cannot be read; the message names the file and the line."""


def dumplab_version() -> str:
    """`dumplab X.Y.Z` for the journal header (plain `dumplab` when not installed)."""
    try:
        return f"dumplab {metadata.version('dumplab')}"
    except metadata.PackageNotFoundError:
        return "dumplab"


# --------------------------------------------------------------------------------------------
# Writing


def _profile_ref(profile: str | Path) -> str:
    """The session's profile as the header stores it: a built-in name as is, a file path made
    absolute so that a replay from another directory finds it."""
    text = str(profile)
    if isinstance(profile, Path) or "/" in text or text.endswith(".toml"):
        return str(Path(text).absolute())
    return text


def journal_header(session: Session, created_by: str) -> dict[str, Any]:
    """The header line for a journal of `session`."""
    return {"journal": JOURNAL_MAGIC, "version": JOURNAL_VERSION,
            "profile": _profile_ref(session.profile), "overrides": dict(session.overrides),
            "created_by": created_by, "workdir": str(session.workdir),
            "workdir_absolute": str(session.workdir.absolute())}


def command_record(session: Session, entry: HistoryEntry) -> dict[str, Any]:
    """The journal line of one executed command."""
    return {"kind": "command", "t": session.now(), "command": entry.text,
            "ok": entry.result.ok, "message": entry.result.message}


class JournalWriter:
    """Writes a session's journal under a temporary name beside `path`; `close()` renames it
    into place, so that `path` only ever holds a complete journal.

    Every line is complete when written, so even a run that ended in an error leaves a valid
    journal of what happened up to then: `close()` commits in every case.
    """

    def __init__(self, path: Path, session: Session, created_by: str | None = None) -> None:
        self.path = Path(path)
        self.session = session
        self.records = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise UserFileError(self.path, error.strerror or str(error)) from None
        # Written beside `path` and renamed into place by close(); refused if `path` is a
        # symlink, a device, a FIFO or a directory (machine/userfiles.py).
        self._output = AtomicFile(self.path)
        assert self._output.fd is not None
        self._file: TextIO | None = open(os.dup(self._output.fd), "w",  # noqa: SIM115
                                         encoding="utf-8")
        self._write(journal_header(session, created_by or f"{dumplab_version()} run"))
        self._unsubscribe_events = session.bus.subscribe(self._event)
        self._unsubscribe_commands = session.subscribe_commands(self._command)
        self._unsubscribe_runs = session.subscribe_runs(self._run)
        # Runs of the same length in a row, not yet written: one record says "N times".
        self._pending_run: tuple[int, bool] | None = None
        self._pending_times = 0

    def _write(self, record: dict[str, Any]) -> None:
        assert self._file is not None
        self._file.write(json.dumps(record, separators=(",", ":")) + "\n")
        self.records += 1

    def _event(self, event: Event) -> None:
        self._write(event.to_dict())

    def _command(self, entry: HistoryEntry) -> None:
        self._flush_runs()
        self._write(command_record(self.session, entry))

    def _run(self, ns: int, free_running: bool) -> None:
        # One record holds at most MAX_VIRTUAL_NS, the most a reader accepts.
        if self._pending_run != (ns, free_running) or \
                ns * (self._pending_times + 1) > MAX_VIRTUAL_NS:
            self._flush_runs()
            self._pending_run = (ns, free_running)
        self._pending_times += 1

    def _flush_runs(self) -> None:
        """The console's runs between commands, written after the events they caused (as a
        command's record is)."""
        if self._pending_run is None:
            return
        ns, free_running = self._pending_run
        record: dict[str, Any] = {"kind": "run", "t": self.session.now(), "ns": ns,
                                  "times": self._pending_times}
        if free_running:
            record["free_running"] = True
        self._write(record)
        self._pending_run, self._pending_times = None, 0

    def close(self, *, commit: bool = True) -> None:
        """Stop recording, then rename the journal into place (once); with commit=False
        (interrupted: Ctrl+C, SIGTERM) remove it instead."""
        if self._file is None:
            return
        self._unsubscribe_events()
        self._unsubscribe_commands()
        self._unsubscribe_runs()
        try:
            if commit:
                self._flush_runs()
            file, self._file = self._file, None
            try:
                file.flush()
            finally:
                file.close()
        except BaseException:
            self._output.discard()
            raise
        if commit:
            self._output.commit()
        else:
            self._output.discard()


@contextlib.contextmanager
def recording(session: Session, path: Path | None,
              created_by: str | None = None) -> Iterator[JournalWriter | None]:
    """Journal `session` to `path` for the duration of the block (nothing if path is None)."""
    if path is None:
        yield None
        return
    try:
        writer = JournalWriter(path, session, created_by)
    except OSError as error:
        raise UsageError(f"cannot write the journal {shown_path(path)}: "
                         f"{error.strerror or error}") from None
    try:
        yield writer
    except (KeyboardInterrupt, Terminated):
        writer.close(commit=False)
        raise
    except BaseException:
        writer.close()  # a journal of what happened up to the error is still valid
        raise
    writer.close()


# --------------------------------------------------------------------------------------------
# Reading


@dataclass(frozen=True)
class JournalCommand:
    """One recorded command: its text, its outcome, and how many events came before it."""

    text: str
    ok: bool
    message: str
    events_before: int
    line: int


@dataclass(frozen=True)
class JournalRun:
    """The console let the machine run `times` × `ns` of virtual time between commands."""

    ns: int
    times: int
    free_running: bool
    line: int


@dataclass
class Journal:
    """A journal as read from a file."""

    path: Path
    header: dict[str, Any]
    events: list[dict[str, Any]] = field(default_factory=list)
    commands: list[JournalCommand] = field(default_factory=list)
    # Commands and runs in the order they happened: what a replay does again.
    steps: list[JournalCommand | JournalRun] = field(default_factory=list)

    @property
    def free_running(self) -> bool:
        """Recorded (partly) at the free-running speed, whose timing follows the host."""
        return any(isinstance(step, JournalRun) and step.free_running for step in self.steps)

    @property
    def workdirs(self) -> list[str]:
        """The spellings of the recorded run's work directory, for `normalise`."""
        return [str(self.header.get(key) or "") for key in ("workdir_absolute", "workdir")]


def _fail(path: Path, line: int, problem: str) -> JournalError:
    return JournalError(f"{shown_path(path)}:{line}: {problem}")


def _check_header(path: Path, header: Any) -> dict[str, Any]:
    if not isinstance(header, dict) or header.get("journal") != JOURNAL_MAGIC:
        raise _fail(path, 1, 'not a dumplab journal (line 1 must be its header, '
                             '{"journal": "dumplab", "version": 1, ...})')
    version = header.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _fail(path, 1, f"bad journal version {version!r} (expected a whole number)")
    if version > JOURNAL_VERSION:
        raise _fail(path, 1, f"journal version {version} is newer than this dumplab reads "
                             f"(version {JOURNAL_VERSION}): use a newer dumplab to replay it")
    if not isinstance(header.get("profile"), str):
        raise _fail(path, 1, "the header has no profile name")
    if not isinstance(header.get("overrides", {}), dict):
        raise _fail(path, 1, "the header's overrides must be an object")
    try:
        # The profile must exist here too, or every event after `activate` would differ.
        with Session(Path("."), header["profile"], header.get("overrides")) as probe:
            probe.resolve_profile()
    except ProfileError as error:
        raise _fail(path, 1, f"the header's profile cannot be used: {error}") from None
    return header


def _parse_line(path: Path, number: int, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise _fail(path, number, f"not valid JSON: {error.msg} (column {error.colno})") from None
    except RecursionError:
        raise _fail(path, number, "JSON nested too deeply") from None


def _add_record(journal: Journal, number: int, record: Any) -> None:
    if not isinstance(record, dict) or not isinstance(record.get("kind"), str):
        raise _fail(journal.path, number, "expected a JSON object with a 'kind'")
    if record["kind"] == "run":
        journal.steps.append(_run_record(journal.path, number, record))
        return
    if record["kind"] != "command":
        journal.events.append(record)
        return
    text = record.get("command")
    if not isinstance(text, str) or not isinstance(record.get("ok"), bool):
        raise _fail(journal.path, number, "a command record needs 'command' (text) and 'ok'")
    command = JournalCommand(text, record["ok"], str(record.get("message", "")),
                             len(journal.events), number)
    journal.commands.append(command)
    journal.steps.append(command)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _run_record(path: Path, number: int, record: dict[str, Any]) -> JournalRun:
    if not (_whole(record.get("ns")) and _whole(record.get("times"))):
        raise _fail(path, number, "a run record needs 'ns' and 'times' (whole numbers > 0)")
    if record["ns"] * record["times"] > MAX_VIRTUAL_NS:
        raise _fail(path, number, "a run record covers more than 3600s of virtual time "
                                  "(ns × times)")
    return JournalRun(record["ns"], record["times"], record.get("free_running") is True, number)


def read_journal(path: Path) -> Journal:
    """Read and check a journal; JournalError names the file and line of any problem."""
    path = Path(path)
    try:
        lines = read_user_text(path, "journal").splitlines()
    except OSError as error:
        raise JournalError(f"{shown_path(path)}: cannot read the journal: "
                           f"{error.strerror or error}") from None
    if not lines:
        raise _fail(path, 1, "empty file, not a dumplab journal")
    journal = Journal(path, _check_header(path, _parse_line(path, 1, lines[0])))
    for number, text in enumerate(lines[1:], start=2):
        if text.strip():
            _add_record(journal, number, _parse_line(path, number, text))
    return journal


# --------------------------------------------------------------------------------------------
# Comparing


def _normalise_text(text: str, workdirs: list[str]) -> str:
    for workdir in workdirs:
        # Only as the start of a path (followed by a separator): a relative work directory
        # name may occur elsewhere in a message.
        if workdir and workdir != ".":
            text = text.replace(workdir.rstrip("/") + "/", WORKDIR_TOKEN + "/")
    return _COLLISION_SUFFIX.sub(r"\1", text)


def _normalise_value(value: Any, workdirs: list[str]) -> Any:
    if isinstance(value, str):
        return _normalise_text(value, workdirs)
    if isinstance(value, list):
        return [_normalise_value(item, workdirs) for item in value]
    if isinstance(value, dict):
        return {key: _normalise_value(item, workdirs) for key, item in value.items()}
    return value


def normalise(record: dict[str, Any], workdirs: list[str]) -> dict[str, Any]:
    """An event as compared by replay: host measurements removed, the work directory written
    as $WORKDIR, and dump-file collision suffixes removed (docs/JOURNAL.md says why)."""
    dropped = HOST_FIELDS.get(record.get("kind", ""), ())
    return {key: _normalise_value(value, workdirs)
            for key, value in record.items() if key not in dropped}


@dataclass(frozen=True)
class ReplayOutcome:
    """What a replay found: identical, or the first differing event (None where a stream
    ended early)."""

    identical: bool
    events: int
    index: int | None = None
    expected: dict[str, Any] | None = None
    got: dict[str, Any] | None = None
    command: str | None = None  # the command during which it happened


class _Comparator:
    """Compares replayed events with the journal's as they arrive."""

    def __init__(self, expected: list[dict[str, Any]], workdirs: list[str]) -> None:
        self.expected = expected
        self.workdirs = workdirs
        self.got: list[dict[str, Any]] = []
        self.first_difference: int | None = None

    def event(self, event: Event) -> None:
        index = len(self.got)
        record = normalise(event.to_dict(), self.workdirs)
        self.got.append(record)
        if self.first_difference is None and (index >= len(self.expected)
                                              or self.expected[index] != record):
            self.first_difference = index


def replay(journal: Journal, workdir: Path,
           on_command: Callable[[JournalCommand], None] | None = None) -> ReplayOutcome:
    """Run the journal's commands in a fresh session in `workdir` and compare the events.

    Stops at the first command after which the events differ: the rest cannot match."""
    expected = [normalise(record, journal.workdirs) for record in journal.events]
    session = Session(workdir, journal.header["profile"], journal.header.get("overrides"))
    replayed_dirs = [str(session.workdir.absolute()), str(session.workdir)]
    comparator = _Comparator(expected, replayed_dirs)
    last_command: str | None = None
    with session:
        session.bus.subscribe(comparator.event)
        for step in journal.steps:
            if isinstance(step, JournalRun):
                _run_again(session, step, journal.path)
            else:
                if on_command is not None:
                    on_command(step)
                session.execute(step.text)
                last_command = step.text
            if comparator.first_difference is not None:
                break
    index = comparator.first_difference
    if index is None and len(comparator.got) < len(expected):
        index = len(comparator.got)
    if index is None:
        return ReplayOutcome(True, len(expected))
    return ReplayOutcome(False, len(expected), index,
                         expected[index] if index < len(expected) else None,
                         comparator.got[index] if index < len(comparator.got) else None,
                         _command_during(journal, index) or last_command)


def _run_again(session: Session, run: JournalRun, path: Path) -> None:
    if session.lpar is None or not session.lpar.activated:
        raise _fail(path, run.line, "a run record while the LPAR is not activated")
    for _ in range(run.times):
        session.advance(run.ns)


def _command_during(journal: Journal, index: int) -> str | None:
    """The recorded command during which event `index` happened (a command's line follows
    its events); None for an event after the last command."""
    for command in journal.commands:
        if command.events_before > index:
            return command.text
    return None


# --------------------------------------------------------------------------------------------
# The command line


def add_journal_option(parser: argparse.ArgumentParser) -> None:
    """`--journal FILE` for a subcommand that runs a session."""
    parser.add_argument("--journal", type=Path, metavar="FILE",
                        help="write every command and event as a JSON-lines journal "
                             "(docs/JOURNAL.md); `dumplab replay FILE` checks it")


def add_replay_parser(subcommands: Any) -> argparse.ArgumentParser:
    """The `dumplab replay` subcommand."""
    parser = subcommands.add_parser(
        "replay", help="run a journal's commands again and compare the events",
        description="Run the commands of a journal (written with `dumplab run --journal`, or "
                    "`dumplab --journal` for a console session, whose runs between commands "
                    "are run again too) in a fresh session and compare the events with the "
                    "recorded ones. Exit 0 "
                    "if they are identical, 1 at the first difference, 2 if the journal "
                    "cannot be read.")
    parser.add_argument("journal", type=Path, metavar="FILE", help="a journal file")
    parser.add_argument("--workdir", type=Path, metavar="DIR",
                        help="where the replay's device and dump files go (default: a "
                             "temporary directory, removed afterwards)")
    return parser


def _show(record: dict[str, Any] | None) -> str:
    return "(no more events)" if record is None else json.dumps(record)


def report(outcome: ReplayOutcome, out: TextIO) -> int:
    """Print the outcome of a replay; the exit status."""
    if outcome.identical:
        out.write(f"replay identical: {outcome.events} events\n")
        return EXIT_OK
    where = f" (during '{outcome.command}')" if outcome.command else ""
    out.write(f"replay differs at event {outcome.index}{where}\n"
              f"  expected: {_show(outcome.expected)}\n"
              f"  got:      {_show(outcome.got)}\n")
    return EXIT_DIFFERS


def replay_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """`dumplab replay FILE [--workdir DIR]`."""
    try:
        journal = read_journal(args.journal)
    except JournalError as error:
        err.write(f"dumplab replay: {error}\n")
        return EXIT_BAD_JOURNAL
    if journal.free_running:
        err.write(f"dumplab replay: {args.journal}: recorded at the free-running speed, whose "
                  "timing follows the host: it cannot be replayed (record at another speed)\n")
        return EXIT_BAD_JOURNAL
    try:
        if args.workdir is not None:
            outcome = replay(journal, args.workdir)
        else:
            with tempfile.TemporaryDirectory(prefix="dumplab-replay-") as temporary:
                outcome = replay(journal, Path(temporary))
    except JournalError as error:
        err.write(f"dumplab replay: {error}\n")
        return EXIT_BAD_JOURNAL
    return report(outcome, out)
