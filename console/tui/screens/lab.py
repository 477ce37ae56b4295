"""The console with a lab (`dumplab lab NAME`): the HMC with the lab sidebar beside it.

`LabApp` is the console (DumpLabApp) with three differences: its session has the lab's
profile; its main screen is `LabScreen`, the HMC plus the sidebar and the lab keys; and the
lines it sends go through the lab engine where the command layer does not know them
(answer, dumps, vmcore, rd), and are graded afterwards.

The engine (console/tui/widgets/lab/driver.py) drives the session, so it lives in the machine
thread with it: the UI asks it things with `Runner.call`, which runs them in order with the
operator's commands, and hears back through messages. The sidebar's state
(console/tui/widgets/lab/model.py) changes only in the UI thread, from those messages and keys.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual import events, on
from textual.binding import Binding, BindingType
from textual.content import Content
from textual.message import Message
from textual.widgets import Static

from console.control.exits import EXIT_SOFTWARE
from console.control.runner import DEFAULT_SPEED, Outcome
from console.training.labs import Lab, Score
from console.tui.app import HELP_DIR, DumpLabApp
from console.tui.screens.dialogs import ConfirmScreen
from console.tui.screens.main import MainScreen
from console.tui.terminal import NO_TERMINAL, needs_terminal
from console.tui.widgets.lab.driver import LabDriver, StepReport, is_lab_line
from console.tui.widgets.lab.model import BROKEN, FAILED, FINISHED, OPEN, PASSED, LabProgress
from console.tui.widgets.lab.sidebar import LabSidebar
from machine.events import Event

if TYPE_CHECKING:
    from textual.widget import Widget

# While the step is open, the check is evaluated again this often if the machine changed
# (a new frame): in the console the machine runs between commands, and a step can pass
# because the system did something, not only because the trainee typed.
AUTO_CHECK_S = 0.5
# Under this width the sidebar gives the views its room: one line under them says the step
# (L opens the sidebar).
STEP_BAR_COLUMNS = 100
EXIT_PASSED, EXIT_NOT_PASSED, EXIT_NO_TERMINAL = 0, 1, 2


class LabReported(Message):
    """What the lab engine says about a step (from the machine thread)."""

    def __init__(self, report: StepReport) -> None:
        super().__init__()
        self.report = report


class LabLine(Message):
    """A line the lab engine ran (setup, solve, a lab command) and its result."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__()
        self.outcome = outcome


class LabScreen(MainScreen):
    """The HMC with the lab sidebar; the lab keys act wherever the focus is (but in a text
    field, as every letter key of the console)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("k", "lab_check", "Check", id="lab.check",
                tooltip="Evaluate the lab step's check now"),
        Binding("h", "lab_hint", "Hint", id="lab.hint",
                tooltip="Show the step's next hint (counted in the score)"),
        Binding("greater_than_sign", "lab_next", "Next step", id="lab.next", key_display=">",
                tooltip="Go on to the next step once this one passed (or failed)"),
        Binding("L", "lab_toggle", "Lab", show=False, id="lab.toggle",
                tooltip="Show or hide the lab sidebar"),
        Binding("exclamation_mark", "lab_solve", "Solve step", show=False, id="lab.solve",
                tooltip="Instructors: run the step's solve script (asks first)"),
    ]

    def __init__(self, lpar_name: str, progress: LabProgress) -> None:
        super().__init__(lpar_name)
        self.lab_progress = progress
        # Hidden setups as [first, end) positions in the order events arrive (end None while
        # the setup runs): their events reach no view, so the trainee must find out.
        self._hidden: list[list[int | None]] = []
        self._events_fed = 0
        self._checks_pending = 0
        self._frame_checked = -1

    @property
    def lab_app(self) -> LabApp:
        return self.app  # type: ignore[return-value]

    @property
    def sidebar(self) -> LabSidebar:
        return self.query_one("#lab-sidebar", LabSidebar)

    async def on_mount(self) -> None:
        # MainScreen.on_mount runs after this one (Textual calls both): it focuses the OS
        # command line, so the sidebar takes the focus after the first refresh.
        await self.query_one("#body").mount(LabSidebar(self.lab_progress, id="lab-sidebar"))
        await self.mount(Static("", id="lab-bar"), before="#ack")
        self._show_step_bar()
        self.set_interval(AUTO_CHECK_S, self._auto_check)
        self.call_after_refresh(self._welcome)

    def _welcome(self) -> None:
        self.sidebar.focus_text()
        self.acknowledge(f"Lab {self.lab_progress.lab.number}: follow the steps at the right. "
                         "k: check, h: hint, >: next step, L: hide the lab, F1: help.", "info")

    # -- what the engine says --------------------------------------------------------------

    def feed_events(self, events: tuple[Event, ...]) -> None:
        first = self._events_fed
        self._events_fed += len(events)
        kept = tuple(event for number, event in enumerate(events, first)
                     if not self._hidden_event(number))
        if kept:
            super().feed_events(kept)

    def _hidden_event(self, number: int) -> bool:
        return any(start <= number and (end is None or number < end)  # type: ignore[operator]
                   for start, end in self._hidden)

    def lab_report(self, report: StepReport) -> None:
        """Follow a report of the engine: the sidebar, and a line on the acknowledgement."""
        if report.kind == "verdict":
            self._checks_pending = max(0, self._checks_pending - 1)
        elif report.kind == "setup" and report.hidden:
            self._hidden.append([report.events, None])
        elif report.kind in ("started", BROKEN) and self._hidden and self._hidden[-1][1] is None:
            self._hidden[-1][1] = report.events
        before = (self.lab_progress.index, self.lab_progress.status)
        if not self.lab_progress.take(report):
            return
        for sidebar in self.query(LabSidebar):  # none yet: it draws the model when mounted
            sidebar.show()
        self._show_step_bar()
        if (self.lab_progress.index, self.lab_progress.status) != before:
            self._announce()

    def on_resize(self, event: events.Resize) -> None:
        narrow = event.size.width < STEP_BAR_COLUMNS
        collapsing = narrow and not self.has_class("-step-bar")
        self.set_class(narrow, "-step-bar")
        if collapsing and self._focus_in_sidebar():
            # The sidebar is hidden now; left to itself the focus would land in a text field,
            # which swallows the lab keys (k, h, >) a trainee goes on pressing.
            self.show_tab(self.active_tab)

    def _focus_in_sidebar(self) -> bool:
        focused = self.focused
        return focused is not None and any(node.id == "lab-sidebar"
                                           for node in focused.ancestors_with_self)

    def _show_step_bar(self) -> None:
        """The one-line step bar of narrow screens: marks, the step, the check's status."""
        progress = self.lab_progress
        text, severity = progress.status_line()
        style = {"ok": "bold $success", "refused": "bold $error"}.get(severity, "$foreground")
        for bar in self.query("#lab-bar").results(Static):
            bar.update(Content.from_markup(
                f"[b]Lab $number[/] $marks  $heading  [{style}]$status[/]  "
                "[$foreground-muted](L: the lab)[/]", number=str(progress.lab.number),
                marks=progress.marks(), heading=progress.heading(), status=text))

    def _announce(self) -> None:
        """Say a change of the step on the acknowledgement line too: the sidebar may be
        hidden."""
        progress, number = self.lab_progress, self.lab_progress.index + 1
        if progress.status == OPEN:
            self.acknowledge(f"Lab step {number}/{progress.total}: {progress.step.title}",
                             "info")
        elif progress.status == PASSED:
            self.acknowledge(f"Lab step {number} passed: {progress.detail}. "
                             "> goes on.", "ok")
        elif progress.status == FAILED:
            self.acknowledge(f"Lab step {number} not passed: the answer was {progress.truth}. "
                             "> goes on.", "refused")
        elif progress.status == FINISHED and progress.score is not None:
            self.acknowledge(f"Lab over. {progress.score.line()}",
                             "ok" if progress.all_passed() else "info")
        elif progress.status == BROKEN:
            self.acknowledge(f"The lab cannot go on: {progress.detail}", "refused")

    # -- checks ----------------------------------------------------------------------------

    def queue_check(self, explicit: bool = False) -> None:
        """Evaluate the step's check in the machine thread, after what is queued there."""
        self._checks_pending += 1
        driver = self.lab_app.driver
        self.lab_app.runner.call(lambda session: driver.verdict(explicit))

    def _auto_check(self) -> None:
        frame = self.frame
        if (not self.lab_progress.can_check() or self._checks_pending or frame is None
                or frame.seq == self._frame_checked):
            return
        self._frame_checked = frame.seq
        self.queue_check()

    # -- the lab keys ------------------------------------------------------------------------

    def _not_now(self, what: str) -> bool:
        """True (and says why) when the step is not open for `what`."""
        status = self.lab_progress.status
        if status == OPEN:
            return False
        reason = {PASSED: "the step passed: > goes on", FAILED: "the step is over: > goes on",
                  FINISHED: "the lab is over", BROKEN: "the lab cannot go on"}.get(
                      status, "the step's setup is still running")
        self.acknowledge(f"Lab: no {what} now: {reason}.", "info")
        return True

    def action_lab_check(self) -> None:
        if self._not_now("check"):
            return
        self.queue_check(explicit=True)
        self.acknowledge(f"Lab: checking step {self.lab_progress.index + 1}…", "info")

    def action_lab_hint(self) -> None:
        if self._not_now("hint"):
            return
        # In the UI thread: hint() only counts, it does not touch the session, and the
        # engine changes steps only when the trainee goes on (the step is not open then).
        hint = self.lab_app.driver.run.hint()
        if hint is None:
            self.acknowledge("Lab: no more hints for this step.", "info")
            return
        progress = self.lab_progress
        progress.add_hint(hint)
        self.sidebar.show()
        self.acknowledge(f"Lab: hint {len(progress.hints)}/{len(progress.step.hints)}: {hint}",
                         "info")

    def action_lab_next(self) -> None:
        if not self.lab_progress.can_advance():
            text = ("the lab is over" if self.lab_progress.over else
                    "the step has not passed yet (k checks it now, h gives a hint)")
            self.acknowledge(f"Lab: not yet: {text}.", "info")
            return
        outcome = self.lab_progress.leave_step()
        self.sidebar.show()
        self._show_step_bar()
        driver = self.lab_app.driver
        self.lab_app.runner.call(lambda session: driver.advance(outcome))

    def action_lab_solve(self) -> None:
        if self._not_now("solve"):
            return
        progress = self.lab_progress
        number = progress.index + 1

        def answered(yes: bool | None) -> None:
            if yes and progress.status == OPEN and progress.index + 1 == number:
                driver = self.lab_app.driver
                self.lab_app.runner.call(lambda session: driver.solve())
                self.acknowledge(f"Lab: solving step {number} with its solve script…", "info")
            else:
                self.acknowledge("Lab: solve cancelled, nothing done.", "info")
        self.app.push_screen(ConfirmScreen(
            f"Solve step {number} automatically?",
            "Its solve script runs as if typed (for instructors); the step then counts as "
            "passed if its check passes."), answered)

    def action_lab_toggle(self) -> None:
        sidebar = self.sidebar
        sidebar.display = not sidebar.display
        if not sidebar.display and self._focus_inside(sidebar):
            self._focus_tab(self.active_tab)  # focus must not stay in a hidden widget
        elif sidebar.display:
            sidebar.focus_text()

    def _focus_inside(self, widget: Widget) -> bool:
        node = self.focused
        while node is not None:
            if node is widget:
                return True
            node = node.parent  # type: ignore[assignment]
        return False


class LabApp(DumpLabApp):
    """The console on a lab's profile, with the lab sidebar (see the module docstring)."""

    # Textual finds a relative CSS_PATH beside the subclass's module: name the console's.
    CSS_PATH = str(HELP_DIR.parent / "dumplab.tcss")
    TITLE = "DumpLab HMC: lab"

    def __init__(self, lab: Lab, workdir: Path, *, running: bool = True,
                 speed: str = DEFAULT_SPEED, lpar_name: str = "DUMPLAB1") -> None:
        super().__init__(workdir, overrides=lab.profile, running=running, speed=speed,
                         lpar_name=lpar_name)
        self.lab = lab
        self.lab_progress = LabProgress(lab)
        self.main: LabScreen = LabScreen(lpar_name, self.lab_progress)
        # The driver subscribes before the machine thread starts, so it sees every event.
        self.driver = LabDriver(lab, self.session, self._reported, self._line)
        self.runner.call(lambda session: self.driver.start_step())

    # -- from the machine thread (post_message is thread-safe) -------------------------------

    def _reported(self, report: StepReport) -> None:
        self.post_message(LabReported(report))

    def _line(self, outcome: Outcome) -> None:
        self.post_message(LabLine(outcome))

    @on(LabReported)
    def _lab_reported(self, message: LabReported) -> None:
        self._guarded(self.main.lab_report, message.report)

    @on(LabLine)
    def _lab_line(self, message: LabLine) -> None:
        self._guarded(self.main.show_outcome, message.outcome)

    # -- commands --------------------------------------------------------------------------

    def prompt_accepts(self, line: str) -> bool:
        return is_lab_line(line)

    def submit(self, line: str, source: str = "operator") -> int:
        """Lab commands go to the engine; operator commands to the command layer, then the
        step is checked (in the machine thread, after the command)."""
        if is_lab_line(line):
            driver = self.driver
            return self.runner.call(lambda session: driver.execute(line, source))
        ticket = super().submit(line, source)
        if self.lab_progress.can_check():
            self.main.queue_check()
        return ticket

    def score_summary(self) -> str:
        """What the terminal shows once the console closed: the lab, each step's mark, and the
        score as the text mode prints it (steps not reached count as not passed)."""
        progress = self.lab_progress
        passed = sum(outcome == PASSED for outcome in progress.outcomes)
        if progress.status == PASSED:
            passed += 1  # passed, but the trainee did not press > before quitting
        hints = sum(result.hints_used for result in self.driver.run.results)
        hints += 0 if progress.over else len(progress.hints)
        failed = sum(outcome == FAILED for outcome in progress.outcomes)
        score = progress.score or Score(progress.total, passed, failed,
                                        progress.total - passed - failed, hints)
        return (f"Lab {self.lab.number}: {self.lab.title}\n"
                f"  {progress.marks()}\n  {score.line()}\n")

    @property
    def exit_status(self) -> int:
        """0 if every step's check passed, 1 otherwise."""
        return EXIT_PASSED if self.lab_progress.all_passed() else EXIT_NOT_PASSED

    def on_unmount(self) -> None:
        # Runs before DumpLabApp.on_unmount: the engine lets go of the session only once the
        # machine thread, which uses it, has ended (stopping twice is harmless).
        self.runner.stop()
        self.driver.close()


def terminal_problem(lab: Lab) -> str | None:
    """Why the console cannot open here (no terminal), as `dumplab` itself says it, or None."""
    if not needs_terminal():
        return None
    return (NO_TERMINAL.splitlines()[0] + "\n"
            f"Run the lab at a text prompt instead: dumplab lab {lab.name} --headless\n")


def run_lab(lab: Lab, workdir: Path) -> int:
    """`dumplab lab NAME`: the console with the lab sidebar beside the HMC, until the trainee
    quits; 0 if every step's check passed by then, 1 otherwise, 2 without a terminal."""
    problem = terminal_problem(lab)
    if problem is not None:
        sys.stderr.write(problem)
        return EXIT_NO_TERMINAL
    app = LabApp(lab, workdir)
    if app.run_console() == EXIT_SOFTWARE:
        return EXIT_SOFTWARE  # the one line naming console.log is said
    sys.stdout.write(app.score_summary())
    return app.exit_status
