"""What the lab sidebar knows, in the UI thread: the step the trainee is on, its status as
the engine last reported it, the hints shown, and how each step ended.

It changes only from the engine's reports (console/tui/widgets/lab/driver.py) and the trainee's
keys, and it renders to plain text and Markdown, so it is tested without a screen.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from console.training.labs import Lab, Score, Step
from console.tui.widgets.lab.driver import StepReport

# The step's life as the sidebar shows it.
SETUP, OPEN, PASSED, FAILED, FINISHED, BROKEN = (
    "setup", "open", "passed", "failed", "finished", "broken")
MARKS = {PASSED: "✔", FAILED: "✘", None: "·"}
CURRENT_MARK = "▶"
HIDDEN_SETUP_NOTE = ("*The setup ran; its messages are not shown: this step is about "
                     "finding out what happened.*")


@dataclass
class LabProgress:
    """The trainee's way through a lab, as the sidebar draws it."""

    lab: Lab
    index: int = 0
    status: str = SETUP
    outcomes: list[str | None] = field(default_factory=list)
    hints: list[str] = field(default_factory=list)  # the current step's hints shown so far
    detail: str = ""  # what the last check found or missed
    explain: bool = False  # a check the trainee asked for failed: show the explanation
    truth: str = ""  # the answer, once the question has no attempts left
    hidden: bool = False  # the current step's setup is not shown
    score: Score | None = None

    def __post_init__(self) -> None:
        self.outcomes = [None] * len(self.lab.steps)

    # -- what can be done now ----------------------------------------------------------------

    @property
    def total(self) -> int:
        return len(self.lab.steps)

    @property
    def step(self) -> Step:
        return self.lab.steps[min(self.index, self.total - 1)]

    @property
    def over(self) -> bool:
        return self.status in (FINISHED, BROKEN)

    def can_check(self) -> bool:
        return self.status == OPEN

    def can_hint(self) -> bool:
        return self.status == OPEN and len(self.hints) < len(self.step.hints)

    def can_advance(self) -> bool:
        return self.status in (PASSED, FAILED)

    def all_passed(self) -> bool:
        """Every step's check passed (the current one counts once it passed, even if the
        trainee has not gone on yet)."""
        outcomes = list(self.outcomes)
        if self.status == PASSED:
            outcomes[self.index] = PASSED
        return all(outcome == PASSED for outcome in outcomes)

    # -- changes ---------------------------------------------------------------------------

    def take(self, report: StepReport) -> bool:
        """Follow an engine report; True if something shown changed."""
        if report.kind == SETUP:
            self.index, self.status, self.hidden = report.index, SETUP, report.hidden
            self.hints, self.detail, self.explain, self.truth = [], "", False, ""
        elif report.index != self.index:
            return False  # about a step the trainee has left
        elif report.kind == "started":
            self.status = OPEN
        elif report.kind == "verdict":
            return self._verdict(report)
        elif report.kind == FINISHED:
            self.status, self.score = FINISHED, report.score
        elif report.kind == BROKEN:
            self.status, self.detail, self.score = BROKEN, report.detail, report.score
            self.outcomes = [outcome or FAILED for outcome in self.outcomes]
        return True

    def _verdict(self, report: StepReport) -> bool:
        if self.status != OPEN:
            return False  # a step that passed stays passed until the trainee goes on
        self.detail = report.detail
        if report.ok:
            self.status = PASSED
        elif report.closed:
            self.status, self.explain, self.truth = FAILED, True, report.truth
        else:
            self.explain = self.explain or report.explicit
        return True

    def add_hint(self, hint: str | None) -> None:
        if hint is not None:
            self.hints.append(hint)

    def leave_step(self) -> str:
        """The trainee goes on: the step's outcome, which the engine records."""
        outcome = PASSED if self.status == PASSED else FAILED
        self.outcomes[self.index] = outcome
        self.status = SETUP
        return outcome

    # -- drawing ---------------------------------------------------------------------------

    def marks(self) -> str:
        """One mark per step: ✔ passed, ✘ failed, ▶ the current one, · not reached."""
        marks = []
        for number, outcome in enumerate(self.outcomes):
            if number == self.index and not self.over:
                marks.append(MARKS[PASSED] if self.status == PASSED else CURRENT_MARK)
            else:
                marks.append(MARKS.get(outcome, MARKS[None]))
        return " ".join(marks)

    def heading(self) -> str:
        if self.over:
            return f"All {self.total} steps done" if self.status == FINISHED else "Stopped"
        return f"Step {self.index + 1} of {self.total}: {self.step.title}"

    def status_line(self) -> tuple[str, str]:
        """The check's status in one line, and its severity (ok, refused, info)."""
        last = self.index + 1 >= self.total
        if self.status == SETUP:
            return f"… step {self.index + 1}: the setup runs", "info"
        if self.status == OPEN:
            return (f"Check: not yet: {self.detail}" if self.detail else "Check: …"), "info"
        if self.status == PASSED:
            return f"✔ Passed. > {'the score' if last else 'next step'}", "ok"
        if self.status == FAILED:
            return f"✘ Not passed. > {'the score' if last else 'next step'}", "refused"
        if self.status == FINISHED and self.score is not None:
            return ("✔ " if self.all_passed() else "") + self.score.line(), \
                "ok" if self.all_passed() else "info"
        return "✘ The lab cannot go on", "refused"

    def markdown(self) -> str:
        """The sidebar's text: the step, the hints shown, and what the check said."""
        if self.over:
            return self._summary()
        step, parts = self.step, []
        if self.index == 0 and self.lab.intro.strip():
            parts.append(self.lab.intro.strip())
        if self.hidden:
            parts.append(HIDDEN_SETUP_NOTE)
        parts.append(step.text.strip())
        parts += [f"**Hint {number}/{len(step.hints)}.** {hint}"
                  for number, hint in enumerate(self.hints, start=1)]
        parts += self._verdict_text()
        return "\n\n".join(parts)

    def _verdict_text(self) -> list[str]:
        step = self.step
        if self.status == PASSED:
            return ["### ✔ Passed", self.detail] + ([step.debrief.strip()] if step.debrief
                                                      else [])
        if self.status == FAILED:
            return ["### ✘ Not passed",
                    f"No attempts are left: the answer was **{self.truth}**.",
                    step.explanation.strip()]
        if self.explain:
            return ["### Not yet", step.explanation.strip()]
        return []

    def _summary(self) -> str:
        parts = []
        if self.status == BROKEN:
            parts += ["## The lab cannot go on", self.detail]
        parts.append("## Score")
        if self.score is not None:
            parts.append(f"**{self.score.line()}**")
        parts.append("\n".join(f"{number}. {MARKS.get(outcome, MARKS[None])} {step.title}"
                               for number, (outcome, step)
                               in enumerate(zip(self.outcomes, self.lab.steps), start=1)))
        parts.append("Ctrl+Q leaves the lab.")
        return "\n\n".join(parts)
