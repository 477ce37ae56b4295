"""The lab engine's side of the console: a LabRun driven in the machine thread.

LabRun touches the Session (setups, lab commands, checks read the LPAR and its events), and
the Session lives in the runner's worker thread (console/control/runner.py). A `LabDriver` is made
before that thread starts (so that it sees every event); then its methods are run there,
through `Runner.call`, in order with the operator's commands, and `close` once the thread
has ended. What they find goes back to the UI as plain values (`StepReport`, `Outcome`)
through two callbacks, which the console turns into messages. Pure Python (no Textual).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from console.control.commands import CommandResult
from console.control.runner import Outcome
from console.control.session import HistoryEntry, Session
from console.training import labtools
from console.training.checks import Verdict
from console.training.labs import ANSWER, Lab, LabRun, LabSetupError, Score
from machine.events import Event

# Sources of the lines the driver runs, as the Hardware Messages show them.
SETUP, SOLVE, LAB = "setup", "solve", "lab"


@dataclass(frozen=True)
class StepReport:
    """What the engine says about step `index`.

    kind: `setup` (the setup begins; `hidden` when its messages must not be shown),
    `started` (the trainee's turn), `verdict` (a check was evaluated), `finished` (the last
    step is over: `score`), `broken` (a setup failed: the lab cannot go on; `detail`, `score`).
    """

    index: int
    kind: str
    ok: bool = False
    detail: str = ""
    explicit: bool = False  # the trainee asked (check key, an answer): explain a failure
    closed: bool = False  # the question has no attempts left and was not answered right
    truth: str = ""
    hidden: bool = False
    score: Score | None = None
    events: int = 0  # how many events the session had published: where a hidden setup
    # begins (`setup`) and ends (`started`, `broken`) in the order the console receives them


ReportHook = Callable[[StepReport], None]
LineHook = Callable[[Outcome], None]


def is_lab_line(line: str) -> bool:
    """Whether a line is for LabRun (answer, dumps, vmcore, rd) rather than the command
    layer alone: the console's command path does not know these words."""
    words = line.split()
    return bool(words) and (words[0].lower() == ANSWER or labtools.tool_word(line) is not None)


class LabDriver:
    """A LabRun on the console's session; see the module docstring for the threads."""

    def __init__(self, lab: Lab, session: Session, on_report: ReportHook,
                 on_line: LineHook) -> None:
        self.lab = lab
        self.run = LabRun(lab, session)
        self.on_report = on_report
        self.on_line = on_line
        self._engine_busy = False  # LabRun itself is executing: it records its own commands
        self.events_seen = 0
        self._unsubscribe = (session.subscribe_commands(self._command_done),
                             session.bus.subscribe(self._count))

    def _count(self, _event: Event) -> None:
        self.events_seen += 1

    # -- commands ------------------------------------------------------------------------

    def _command_done(self, entry: HistoryEntry) -> None:
        """Operator commands from the console's own path (keys, forms, the OS command line)
        bypass LabRun.execute; record them so that `ran` checks see them too."""
        if not self._engine_busy and entry.result.ok:
            self.run.commands.append(entry.text)

    def _execute(self, line: str) -> CommandResult:
        self._engine_busy = True
        try:
            return self.run.execute(line)
        finally:
            self._engine_busy = False

    def execute(self, line: str, source: str = LAB) -> None:
        """Run a lab line (answer, dumps, vmcore, rd) and grade: a wrong answer explains."""
        if self.run.finished:
            self.on_line(Outcome(0, line.strip(), CommandResult(False, "the lab is over"),
                                 source))
            return
        result = self._execute(line)
        self.on_line(Outcome(0, line.strip(), result, source))
        asked = line.split()[0].lower() == ANSWER and self.run.step.question is not None
        self.verdict(explicit=asked and result.ok)

    # -- the step's life -------------------------------------------------------------------

    def start_step(self) -> None:
        """Run the current step's setup (its results shown unless the step hides them)."""
        index, step = self.run.index, self.run.step
        self.on_report(StepReport(index, "setup", hidden=step.hide_setup,
                                  events=self.events_seen))
        self._engine_busy = True
        try:
            entries = self.run.start_step()
        except LabSetupError as error:
            self._broken(index, str(error))
            return
        finally:
            self._engine_busy = False
        if not step.hide_setup:
            for entry in entries:
                self.on_line(Outcome(0, entry.text, entry.result, SETUP))
        self.on_report(StepReport(index, "started", events=self.events_seen))
        self.verdict()

    def _broken(self, index: int, detail: str) -> None:
        while not self.run.finished:
            self.run.finish_step("failed")
        self.on_report(StepReport(index, "broken", detail=detail, score=self.run.score(),
                                  events=self.events_seen))

    def verdict(self, explicit: bool = False) -> None:
        """Evaluate the current step's check now and report it."""
        if self.run.finished:
            return
        verdict: Verdict = self.run.check()
        closed = not verdict.ok and self.run.question_closed()
        truth = self.run.truth() if closed else None
        self.on_report(StepReport(self.run.index, "verdict", verdict.ok, verdict.detail,
                                  explicit=explicit, closed=closed,
                                  truth="" if truth is None else str(truth)))

    def advance(self, outcome: str) -> None:
        """End the current step (passed, failed) and begin the next, or end the lab."""
        if self.run.finished:
            return
        index = self.run.index
        self.run.finish_step(outcome)
        if self.run.finished:
            self.on_report(StepReport(index, "finished", score=self.run.score()))
        else:
            self.start_step()

    def solve(self) -> None:
        """Run the current step's solve script (for instructors), stopping at the first line
        that fails, then grade as if the trainee had asked."""
        if self.run.finished:
            return
        self.run.solving = True  # the derived answers of solve scripts are allowed here only
        try:
            for line in self.run.step.solve:
                # The machine runs on in the console: what the script waits for may have
                # happened already (a `wait-for` would then wait in vain).
                if self.run.check().ok:
                    break
                result = self._execute(line)
                self.on_line(Outcome(0, line, result, SOLVE))
                if not result.ok:
                    break
        finally:
            self.run.solving = False
        self.verdict(explicit=True)

    def close(self) -> None:
        """Stop listening (after the machine thread has ended)."""
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self.run.close()
