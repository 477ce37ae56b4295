"""The lab sidebar in the console (Textual Pilot): a lab driven by keys and the command layer,
graded by the same engine as the headless mode (console/training/labs.py) against the session's
events, state and files; a whole lab solved through the sidebar; a hidden setup; and
`dumplab lab NAME` without a terminal.

The machine is held (`running=False`): only the lab's setups, the trainee's commands and the
solve scripts advance it, so every run gives the same checks.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
from test_tui_app import pilot_test, until
from textual.pilot import Pilot
from textual.widgets import Input

from console import cli
from console.training.labs import Lab, Score, load_labs
from console.tui.app import HELP_DIR, DumpLabApp
from console.tui.screens.dialogs import CommandPrompt, ConfirmScreen, HelpScreen
from console.tui.screens.lab import LabApp, LabScreen, run_lab
from console.tui.screens.main import MainScreen
from console.tui.widgets.lab.driver import StepReport
from console.tui.widgets.lab.model import HIDDEN_SETUP_NOTE, LabProgress
from console.tui.widgets.lab.sidebar import LabSidebar
from machine.events import EventLog

SIZE = (120, 40)
LABS = load_labs()


@pytest.fixture(autouse=True)
def steady_cursor(monkeypatch: pytest.MonkeyPatch) -> None:
    """No blinking cursor: screens are the same at every instant."""
    monkeypatch.setattr(Input, "_toggle_cursor", lambda self: None)


def lab(name: str) -> Lab:
    found = LABS.find(name)
    assert found is not None, name
    return found


def make_lab_app(name: str, workdir: Path, *, running: bool = False) -> tuple[LabApp, EventLog]:
    """A console (held unless `running`) with lab `name`, and a log of every event of its
    session."""
    app = LabApp(lab(name), workdir, running=running)
    return app, EventLog(app.session.bus)


def sidebar(app: LabApp) -> str:
    return app.main.query_one(LabSidebar).text()


def ack(app: LabApp) -> str:
    return str(app.main.query_one("#ack").render())


def hardware_lines(app: LabApp) -> list[str]:
    return [line.text for line in app.main.hw_store.lines]


async def step_open(pilot: Pilot, app: LabApp, index: int) -> None:
    """Wait until step `index` (0-based) has run its setup and is the trainee's."""
    progress = app.lab_progress
    await until(pilot, lambda: progress.index == index and progress.status == "open",
                f"step {index + 1} open")


async def status(pilot: Pilot, app: LabApp, wanted: str) -> None:
    await until(pilot, lambda: app.lab_progress.status == wanted, f"lab status {wanted}")


async def typed(pilot: Pilot, app: LabApp, line: str) -> None:
    """A command at the `:` prompt, as an operator types it; wait for its answer."""
    count = len(app.session.history)
    await pilot.press("colon")
    await pilot.pause()
    await pilot.press(*line, "enter")
    await until(pilot, lambda: len(app.session.history) > count, f"'{line}' answered")


# ---------------------------------------------------------------------------------------------


@pilot_test
async def test_lab_one_by_keys_and_the_command_layer(tmp_path: Path) -> None:
    app, log = make_lab_app("hung-system", tmp_path)
    first, step = app.lab.steps[0], app.lab.steps[1]
    async with app.run_test(size=SIZE) as pilot:
        await step_open(pilot, app, 0)
        # The setup ran through the command layer and is shown as the operator's would be.
        assert [h.text for h in app.session.history] == list(first.setup)
        assert "load 0100: " in "\n".join(hardware_lines(app))
        text = sidebar(app)
        assert "Step 1 of 5: Prepare the dump device" in text and "▶ · · · ·" in text
        assert app.focused is app.main.query_one("#lab-scroll")  # the keys work at once
        await typed(pilot, app, "oscmd zipl -d 0200")  # the dump device first (zipl -d)
        app.submit("wait-for stage zipl")
        await status(pilot, app, "passed")
        await pilot.press(">")
        await step_open(pilot, app, 1)
        assert "Step 2 of 5: Load kdump" in sidebar(app) and "✔ ▶ · · ·" in sidebar(app)

        await pilot.press("k")  # a real check, before anything was done: it fails
        await until(pilot, lambda: app.lab_progress.explain, "the explanation")
        text = sidebar(app)
        assert "Check: not yet: no kexec event with loaded = true" in text
        assert "kdump counts as loaded when the kernel says so" in text

        await pilot.press(">")  # not passed: no next step
        await pilot.pause()
        assert "has not passed yet" in ack(app) and app.lab_progress.index == 1

        await pilot.press("h")  # hints one at a time
        await pilot.pause()
        assert step.hints[0] in sidebar(app) and step.hints[1] not in sidebar(app)
        await pilot.press("h")
        await pilot.pause()
        assert "Hint 2/2." in sidebar(app) and step.hints[1] in sidebar(app)
        await pilot.press("h")
        await pilot.pause()
        assert "no more hints" in ack(app) and app.lab_progress.hints == list(step.hints)

        await typed(pilot, app, "kdump load")  # by keys at the prompt,
        app.submit("wait-for event kexec")  # and straight to the console's command path
        await status(pilot, app, "passed")
        assert [e.loaded for e in log.of_kind("kexec")] == [True]
        text = sidebar(app)
        assert "✔ Passed" in text and "✔ ✔ · · ·" in text and "now names the crashkernel" in text

        await pilot.press(">")  # step 3: its setup makes CPU 0 hang
        await step_open(pilot, app, 2)
        assert log.of_kind("hang") and "Step 3 of 5" in sidebar(app)
        await pilot.press("k")
        await until(pilot, lambda: app.lab_progress.explain, "the explanation")
        assert "Every CPU must be stopped" in sidebar(app)

        await pilot.press("s")  # the HMC's Stop all key, graded after the command
        await status(pilot, app, "passed")
        assert {c.state for c in app.main.frame.snapshot.cpus} == {"stopped"}
        assert "✔ ✔ ✔ · ·" in sidebar(app) and "passed" in ack(app)

        await pilot.press(">")  # step 4 has no setup: the lab line takes the lab's commands
        await step_open(pilot, app, 3)
        app.main.query_one("#lab-input").focus()
        await pilot.press(*"answer 0200", "enter")
        await until(pilot, lambda: "asks no question" in ack(app), "the refusal")
        await pilot.press("escape")

        app.main.query_one("#lab-scroll").focus()
        await pilot.press("L")  # narrow terminals: the sidebar goes away and comes back
        await pilot.pause()
        assert not app.main.query_one(LabSidebar).display
        await pilot.press("L")
        await pilot.pause()
        assert app.main.query_one(LabSidebar).display
        await pilot.press("f1")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), "help")
        assert "The lab sidebar" in app.screen.markdown
        await pilot.press("escape")
        await pilot.press("ctrl+q")
        await pilot.pause()
    assert not app.runner.alive
    assert app.exit_status == 1  # three of five steps passed


@pilot_test
async def test_a_whole_lab_solved_through_the_sidebar(tmp_path: Path) -> None:
    app, log = make_lab_app("panic-no-kdump", tmp_path)  # the fastest lab to solve
    total = len(app.lab.steps)
    async with app.run_test(size=(80, 24)) as pilot:
        for index in range(total):
            await step_open(pilot, app, index)
            await pilot.press("exclamation_mark")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question")
            await pilot.press("y")
            await status(pilot, app, "passed")
            await pilot.press(">")
        await status(pilot, app, "finished")
        text = sidebar(app)
        assert f"Score: {total}/{total} steps passed, 0 hints used" in text
        assert "✔ ✔ ✔ ✔" in text
        assert app.lab_progress.score == Score(total, total, 0, 0, 0)
        # The solve scripts ran through the engine: the full dump, the derived answer.
        assert [e.format for e in log.of_kind("dump_written")] == ["s390"]
        assert "answer crashkernel: Answer: crashkernel" in hardware_lines(app)
        assert app.exit_status == 0


@pilot_test
async def test_a_hidden_setup_shows_nothing_of_what_it_did(tmp_path: Path) -> None:
    app, log = make_lab_app("reading-a-vmcore", tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await step_open(pilot, app, 0)
        assert log.of_kind("hang") and log.of_kind("dump_written")  # it did happen
        await pilot.pause(0.2)
        assert list(app.main.os_store.lines) == [] and hardware_lines(app) == []
        assert app.main.dumps == [] and app.main.timeline.current is None
        assert HIDDEN_SETUP_NOTE in sidebar(app)

        app.main.query_one("#lab-input").focus()
        await pilot.press(*"vmcore", "enter")  # a lab command: `ran` sees it via LabRun
        await status(pilot, app, "passed")
        assert any(line.startswith("vmcore: ") for line in hardware_lines(app))
        await pilot.press("escape")  # out of the lab line
        assert app.focused is app.main.query_one("#lab-scroll")
        # At the `:` prompt, lab words get no "unknown command" warning; typos still do.
        await pilot.press("colon")
        await until(pilot, lambda: isinstance(app.screen, CommandPrompt), "the prompt")
        await pilot.press(*"answer 1")
        await pilot.pause()
        assert str(app.screen.query_one("#prompt-error").render()) == ""
        app.screen.query_one("#prompt-input").value = "lod 0100"
        await pilot.pause()
        assert "unknown command 'lod'" in str(app.screen.query_one("#prompt-error").render())
        await pilot.press("escape")
        app.submit("kdump status")  # after the setup, messages show again
        app.submit("wait-for console kdump:")
        await until(pilot, lambda: any("kdump:" in line.text
                                       for line in app.main.os_store.lines), "the OS reply")


def test_the_lab_console_needs_a_terminal(capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert cli.main(["lab", "hung-system"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    assert "needs a terminal" in err and "dumplab lab hung-system --headless" in err
    assert run_lab(lab("1"), Path("unused")) == 2


def test_lab_progress_follows_only_the_engine() -> None:
    progress = LabProgress(lab("hung-system"))
    progress.take(StepReport(0, "setup"))
    progress.take(StepReport(0, "started"))
    assert progress.can_check() and not progress.can_advance()
    progress.take(StepReport(0, "verdict", False, "not yet"))
    assert progress.status == "open" and not progress.explain
    progress.take(StepReport(0, "verdict", True, "done"))
    progress.take(StepReport(0, "verdict", False, "later"))  # a pass stays a pass
    assert progress.status == "passed" and progress.detail == "done"
    assert not progress.all_passed() and progress.can_advance()
    assert progress.leave_step() == "passed"
    assert not progress.take(StepReport(0, "verdict", True))  # about a step left behind
    progress.take(StepReport(1, "setup"))
    progress.take(StepReport(1, "broken", detail="setup of step 2 failed",
                             score=Score(5, 1, 4, 0, 0)))
    assert progress.outcomes == ["passed", "failed", "failed", "failed", "failed"]
    assert "The lab cannot go on" in progress.markdown() and "Score: 1/5" in progress.markdown()


def test_lab_keys_have_ids_help_and_no_clash_with_the_hmc() -> None:
    def own(cls: type) -> list:
        return list(vars(cls).get("BINDINGS", []))

    lab_bindings = own(LabScreen) + own(LabSidebar)
    hmc_bindings = own(MainScreen) + own(DumpLabApp)
    assert all(binding.id for binding in lab_bindings)
    assert not {b.id for b in lab_bindings} & {b.id for b in hmc_bindings}
    assert not {b.key for b in lab_bindings} & {b.key for b in hmc_bindings}
    assert (HELP_DIR / f"{LabSidebar.HELP_TOPIC}.md").is_file()


@pilot_test
async def test_the_lab_keys_still_work_after_narrowing_the_window_mid_lab(tmp_path: Path) -> None:
    """Found in tmux: the sidebar had the focus at 120 columns; at 80 it is hidden and the focus
    fell into a text field, which took the trainee's `h` and `>` as text."""
    app, _ = make_lab_app("hung-system", tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.focused is not None and app.focused.id == "lab-scroll",
                    "the sidebar focused")
        await pilot.resize_terminal(80, 24)
        await pilot.pause(0.3)
        assert not isinstance(app.focused, Input)
        before = len(app.lab_progress.hints)
        await pilot.press("h")
        await until(pilot, lambda: len(app.lab_progress.hints) == before + 1, "a hint")
