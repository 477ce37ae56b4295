"""Labs: ordered steps that teach the dump workflow and grade it (docs/LABS.md).

A lab file (assets/labs/NN-name.toml) has a title, an optional intro, optional profile
overrides, and steps. Each step has Markdown `text`, an optional `setup` script run before it,
a declarative `check` (console/training/checks.py), progressive `hints`, an `explanation` shown when
the check fails, an optional `debrief` shown when it passes, and a `solve` script.

`LabRun` is the engine every front end drives (the headless text mode and `--solve` in
console/training/lab_headless.py, later the console's lab sidebar): it runs setups, executes the
trainee's lines (operator commands, the dump-reading lab commands of console/training/labtools.py,
and `answer`), evaluates checks against the session's events, and keeps the score.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from console.control.commands import CommandError, CommandResult, is_blank, parse
from console.control.session import HistoryEntry, Session
from console.training import labtools
from console.training.checks import (
    AllCheck,
    AnswerCheck,
    AnyCheck,
    Check,
    CheckContext,
    CheckError,
    NotCheck,
    Verdict,
    compile_check,
)
from console.training.datafiles import (
    DataFileError,
    SourceLines,
    expect_keys,
    expect_strings,
    expect_type,
    load_toml,
    profile_overrides,
)
from machine.events import Event, EventBus
from machine.paths import assets_dir

LAB_FILE = re.compile(r"(\d{2})-([a-z0-9]+(?:-[a-z0-9]+)*)")
ANSWER = "answer"
STEP_REQUIRED = ("title", "text", "check", "explanation", "solve")
STEP_OPTIONAL = ("setup", "hints", "debrief", "hide_setup")


def labs_dir() -> Path:
    """Where the shipped labs live."""
    return assets_dir() / "labs"


# Events about the session rather than the machine's history: they take no index in the
# machine's count (Lpar.publish_aside), so a rewind's `events` does not count them.
ASIDE_KINDS = frozenset({"rewind", "checkpoint", "stage_stop"})


class LabHistory:
    """The events a lab's checks see: what the session's bus delivered since the lab began,
    as the timeline stands. A `rewind` event takes back the events of the abandoned future
    (the machine's events after its first `events`, and what came between them); running on
    publishes them again, and then they count again (docs/LABS.md)."""

    def __init__(self, bus: EventBus, published: int = 0) -> None:
        self.events: list[Event] = []
        # Position in `events` of each machine event of the current LPAR, from its index
        # `_first` on (a lab may begin after the LPAR has published some events).
        self._positions: list[int] = []
        self._first = published
        self.cut_listeners: list[Callable[[int], None]] = []  # told the position cut at
        self.close = bus.subscribe(self._take)

    def _take(self, event: Event) -> None:
        if event.kind == "rewind":
            self._cut(event.events)  # type: ignore[attr-defined]
        elif event.kind not in ASIDE_KINDS:
            if event.kind == "hmc" and event.operation == "activate":  # type: ignore[attr-defined]
                self._positions, self._first = [], 0  # a new LPAR counts from 0
            self._positions.append(len(self.events))
        self.events.append(event)

    def _cut(self, kept: int) -> None:
        """Keep the current LPAR's first `kept` machine events and what came before them."""
        index = max(0, kept - self._first)  # to before the lab began: all of the lab's
        if index >= len(self._positions):
            return
        position = self._positions[index]
        del self.events[position:]
        del self._positions[index:]
        for listener in self.cut_listeners:
            listener(position)


# --------------------------------------------------------------------------------------------
# The model


@dataclass(frozen=True)
class Step:
    """One step of a lab."""

    title: str
    text: str
    check: Check
    explanation: str
    solve: tuple[str, ...]
    setup: tuple[str, ...] = ()
    hints: tuple[str, ...] = ()
    debrief: str = ""
    hide_setup: bool = False  # the step is about finding what the setup did: do not show it

    @property
    def question(self) -> AnswerCheck | None:
        """The step's answer check, if it asks a question."""
        return next(_answer_checks(self.check), None)


def _answer_checks(check: Check) -> Iterator[AnswerCheck]:
    if isinstance(check, AnswerCheck):
        yield check
    elif isinstance(check, (AllCheck, AnyCheck)):
        for part in check.parts:
            yield from _answer_checks(part)
    elif isinstance(check, NotCheck):
        yield from _answer_checks(check.part)


@dataclass(frozen=True)
class Lab:
    """A lab as loaded from its file."""

    number: int
    name: str
    path: Path
    title: str
    intro: str
    profile: dict[str, Any]
    steps: tuple[Step, ...]

    @property
    def stem(self) -> str:
        return f"{self.number:02d}-{self.name}"


# --------------------------------------------------------------------------------------------
# Loading


def check_script_line(line: str, *, answers: bool) -> None:
    """Refuse a script line that is no operator command, no lab command, and (where
    `answers`) no `answer`; CommandError with one line."""
    word = line.split()[0].lower()
    if word == ANSWER:
        if not answers:
            raise CommandError("'answer' belongs in a solve script")
        if len(line.split()) < 2:
            raise CommandError("answer: missing VALUE")
        return
    if labtools.tool_word(line):
        try:
            labtools.check_tool_line(line)
        except labtools.ToolError as error:
            raise CommandError(str(error)) from None
        return
    parse(line)


def _script(step: dict[str, Any], key: str, source: SourceLines, index: int,
            what: str) -> tuple[str, ...]:
    lines = expect_strings(step.get(key, []), key=key, source=source, index=index, what=what)
    for line in lines:
        if is_blank(line):
            continue
        try:
            check_script_line(line, answers=key == "solve")
        except CommandError as error:
            raise source.error(source.text_line(line, index),
                               f"{what}: {key}: '{line}': {error}") from None
    return tuple(line for line in lines if not is_blank(line))


def _step(table: Any, source: SourceLines, index: int) -> Step:
    what = f"step {index + 1}"
    if not isinstance(table, dict):
        raise source.error(source.step_line(index), f"{what}: expected a [[steps]] table")
    expect_keys(table, required=STEP_REQUIRED, optional=STEP_OPTIONAL, source=source,
                index=index, what=what)
    texts = {key: expect_type(table.get(key, ""), str, key=key, source=source, index=index,
                              what=what) for key in ("title", "text", "explanation", "debrief")}
    try:
        check = compile_check(table["check"])
    except CheckError as error:
        line = source.key_line(error.key or "check", index)
        raise source.error(line, f"{what}: check: {error}") from None
    solve = _script(table, "solve", source, index, what)
    if not solve:
        raise source.error(source.key_line("solve", index), f"{what}: 'solve' is empty")
    return Step(texts["title"], texts["text"], check, texts["explanation"], solve,
                setup=_script(table, "setup", source, index, what),
                hints=expect_strings(table.get("hints", []), key="hints", source=source,
                                     index=index, what=what),
                debrief=texts["debrief"],
                hide_setup=expect_type(table.get("hide_setup", False), bool, key="hide_setup",
                                       source=source, index=index, what=what))


def load_lab(path: Path) -> Lab:
    """Read and check one lab file; DataFileError names the file and the line."""
    path = Path(path)
    match = LAB_FILE.fullmatch(path.stem)
    if match is None or path.suffix != ".toml":
        raise DataFileError(path, 1, "a lab file is named NN-name.toml (e.g. 01-hung-system.toml)")
    data, source = load_toml(path)
    expect_keys(data, required=("title", "steps"), optional=("intro", "profile"),
                source=source, index=None, what="lab")
    steps = data["steps"]
    if not isinstance(steps, list) or not steps:
        raise source.error(source.key_line("steps"), "lab: 'steps' must be [[steps]] tables")
    return Lab(int(match.group(1)), match.group(2), path,
               expect_type(data["title"], str, key="title", source=source, index=None,
                           what="lab"),
               expect_type(data.get("intro", ""), str, key="intro", source=source, index=None,
                           what="lab"),
               profile_overrides(data, source),
               tuple(_step(table, source, index) for index, table in enumerate(steps)))


@dataclass(frozen=True)
class Catalogue:
    """The labs of a directory that loaded, and one error line for each that did not."""

    labs: tuple[Lab, ...]
    errors: tuple[str, ...]

    def find(self, name: str) -> Lab | None:
        """A lab by name (`hung-system`), file stem (`01-hung-system`) or number (`1`)."""
        for lab in self.labs:
            if name in (lab.name, lab.stem) or (name.isdigit() and int(name) == lab.number):
                return lab
        return None


def load_labs(directory: Path | None = None) -> Catalogue:
    """Every lab of `directory` (default: the shipped labs); a broken file does not stop the
    others from loading."""
    directory = labs_dir() if directory is None else Path(directory)
    labs, errors = [], []
    for path in sorted(directory.glob("*.toml")) if directory.is_dir() else []:
        try:
            labs.append(load_lab(path))
        except DataFileError as error:
            errors.append(str(error))
    return Catalogue(tuple(labs), tuple(errors))


# --------------------------------------------------------------------------------------------
# The engine


class LabSetupError(RuntimeError):
    """A step's setup command failed: the lab cannot go on."""


@dataclass
class StepResult:
    """How one step ended: passed, failed (no attempts left, or the solve failed), skipped."""

    title: str
    outcome: str
    hints_used: int = 0
    answers: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Score:
    """The summary at the end of a lab."""

    total: int
    passed: int
    failed: int
    skipped: int
    hints_used: int

    def line(self) -> str:
        parts = [f"{self.passed}/{self.total} steps passed"]
        if self.failed:
            parts.append(f"{self.failed} failed")
        if self.skipped:
            parts.append(f"{self.skipped} skipped")
        parts.append(f"{self.hints_used} hint{'s' if self.hints_used != 1 else ''} used")
        return "Score: " + ", ".join(parts)


class LabRun:
    """One trainee's way through a lab on a session (created with the lab's profile).

    `solving` allows the derived answers of solve scripts (`answer lock-owner SYMBOL`),
    which would hand a trainee the answer."""

    def __init__(self, lab: Lab, session: Session, *, solving: bool = False) -> None:
        self.lab = lab
        self.session = session
        self.solving = solving
        self.index = 0
        self.results: list[StepResult] = []
        self.commands: list[str] = []  # every line that succeeded, for `ran` checks
        lpar = session.lpar
        self._log = LabHistory(session.bus, lpar.events_published if lpar is not None else 0)
        self._log.cut_listeners.append(self._rewound)
        self._baseline = self._files()
        self._current = StepResult(lab.steps[0].title, "open")
        self._step_event = self._step_command = 0  # where the current step's checks look from
        # Where the events and commands stood when the current step's check first passed: the
        # next step's checks look from there (docs/LABS.md, "What a step's check sees").
        self._passed_at: tuple[int, int] | None = None

    # -- state -------------------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        return self.index >= len(self.lab.steps)

    @property
    def step(self) -> Step:
        return self.lab.steps[self.index]

    @property
    def hints_used(self) -> int:
        return self._current.hints_used

    def _files(self) -> dict[str, tuple[int, int]]:
        root = self.session.workdir
        if not root.is_dir():
            return {}
        return {str(path.relative_to(root)): (path.stat().st_size, path.stat().st_mtime_ns)
                for path in root.rglob("*") if path.is_file()}

    def _new_files(self, pattern: str) -> list[str]:
        root = self.session.workdir
        found = []
        for path in sorted(root.glob(pattern)) if root.is_dir() else []:
            relative = str(path.relative_to(root))
            if path.is_file() and self._baseline.get(relative) != (path.stat().st_size,
                                                                   path.stat().st_mtime_ns):
                found.append(relative)
        return found

    def context(self) -> CheckContext:
        """What the checks see now."""
        lpar = self.session.lpar
        status, cpus = "not activated", {}
        if lpar is not None and lpar.status != "not activated":
            snapshot = lpar.snapshot()
            status = snapshot.status
            cpus = {cpu.address: cpu.state for cpu in snapshot.cpus}
        return CheckContext(self._log.events, status, cpus, self._new_files,
                            tuple(self._current.answers), tuple(self.commands),
                            self._step_event, self._step_command)

    def tool_context(self) -> labtools.ToolContext:
        return labtools.ToolContext(self.session.workdir, self._log.events)

    def _rewound(self, position: int) -> None:
        """The timeline was cut back to `position` events: a step that began later now
        begins there, so that what is replayed counts for it."""
        self._step_event = min(self._step_event, position)
        if self._passed_at is not None and self._passed_at[0] > position:
            self._passed_at = None

    # -- the step's life ----------------------------------------------------------------------

    def start_step(self) -> list[HistoryEntry]:
        """Run the current step's setup; LabSetupError at the first command that fails."""
        self._current = StepResult(self.step.title, "open")
        # In the console the machine runs on while a passed step waits for the trainee to go
        # on: what it did meanwhile (a dump written, a restart) belongs to the next step.
        self._step_event, self._step_command = self._passed_at or (len(self._log.events),
                                                                   len(self.commands))
        self._passed_at = None
        done = []
        for line in self.step.setup:
            result = self.execute(line)
            done.append(HistoryEntry(line, result))
            if not result.ok:
                raise LabSetupError(f"setup of step {self.index + 1} failed at '{line}': "
                                    f"{result.message}")
        return done

    def execute(self, line: str) -> CommandResult:
        """Run one line: `answer`, a lab command, or an operator command."""
        word = line.split()[0].lower() if line.split() else ""
        if word == ANSWER:
            result = self._answer(line.split()[1:])
        elif labtools.tool_word(line):
            result = labtools.run_tool(line, self.tool_context())
        else:
            result = self.session.execute(line)
        if result.ok:
            self.commands.append(line.strip())
        return result

    def _answer(self, words: list[str]) -> CommandResult:
        question = self.step.question
        if question is None:
            return CommandResult(False, "answer: this step asks no question")
        if not words:
            return CommandResult(False, "answer: missing VALUE")
        if words[0] in labtools.DERIVATIONS:
            if not self.solving:
                return CommandResult(False, "answer: read the dump and answer with the value "
                                            "itself")
            try:
                words = [labtools.derive(words, self.tool_context())]
            except labtools.ToolError as error:
                return CommandResult(False, f"answer: {error}")
        if question.attempts_left(self.context()) == 0:
            return CommandResult(False, "answer: no attempts left")
        self._current.answers.append(" ".join(words))
        return CommandResult(True, f"Answer: {' '.join(words)}")

    def check(self) -> Verdict:
        """The current step's check, now."""
        verdict = self.step.check.evaluate(self.context())
        if verdict.ok and self._passed_at is None:
            self._passed_at = (len(self._log.events), len(self.commands))
        return verdict

    def question_closed(self) -> bool:
        """True when the step's question has no attempts left and was not answered right."""
        question = self.step.question
        context = self.context()
        return (question is not None and question.attempts_left(context) == 0
                and not self.step.check.evaluate(context).ok)

    def truth(self) -> Any:
        """The answer to the step's question (to reveal it when no attempts are left)."""
        question = self.step.question
        return None if question is None else question.truth(self.context())

    def hint(self) -> str | None:
        """The next hint of the current step (counted), or None when there are no more."""
        hints = self.step.hints
        if self._current.hints_used >= len(hints):
            return None
        self._current.hints_used += 1
        return hints[self._current.hints_used - 1]

    def finish_step(self, outcome: str) -> None:
        """End the current step as passed, failed or skipped, and move to the next."""
        self._current.outcome = outcome
        self.results.append(self._current)
        self.index += 1
        if not self.finished:
            self._current = StepResult(self.step.title, "open")

    def score(self) -> Score:
        outcomes = [result.outcome for result in self.results]
        return Score(len(self.lab.steps), outcomes.count("passed"), outcomes.count("failed"),
                     outcomes.count("skipped"),
                     sum(result.hints_used for result in self.results))

    def close(self) -> None:
        self._log.close()


def lab_session(lab: Lab, workdir: Path) -> Session:
    """A fresh session with the lab's profile overrides."""
    return Session(workdir, overrides=lab.profile)
