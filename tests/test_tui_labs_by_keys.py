"""Every lab finished in the console by keys, as a trainee does it: at 80×24, at the default
speed, with the machine running (issue 10). The machine runs on while a passed step waits for
`>`: what it does meanwhile (the vmcore of hung-system, the dump after a PSW restart) counts
for the next step (docs/LABS.md, "What a step's check sees").

Each step's solve script is typed at the `:` prompt key by key; a derived answer
(`answer lock-owner SYMBOL`, refused to trainees) is typed as the value a trainee reads from
the dump. A solve's `wait-for` is typed even when the step passed already, as a trainee who
follows the hint late does: it must answer at once with the event that happened (issue 10).
Another test uses the instructor's solve key (`!`, `y`) on every step.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import textual.app
import textual.pilot
from test_tui_app import pilot_test, until
from test_tui_lab import LABS, make_lab_app
from textual.pilot import Pilot

from console.training import labtools
from console.training.labs import Score
from console.tui.screens.dialogs import CommandPrompt, ConfirmScreen
from console.tui.screens.lab import LabApp
from console.tui.widgets.lab.model import FINISHED, OPEN, PASSED
from machine.events import EventLog

SMALL = (80, 24)
STEP_WAIT_S = 120.0  # a dump written by the running machine, on a shared CI core


async def _no_idle_wait(min_sleep: float = 0.0, max_sleep: float = 1.0) -> None:
    await asyncio.sleep(0)


@pytest.fixture(autouse=True)
def quick_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys without Textual's wait for an idle process after each: the machine thread keeps
    the process busy, so that wait would always last its 1 s maximum (two per key). Keys are
    still queued in order and each press waits until the screen handled it."""
    monkeypatch.setattr(textual.app, "wait_for_idle", _no_idle_wait)
    monkeypatch.setattr(textual.pilot, "wait_for_idle", _no_idle_wait)


def lab_names() -> list[str]:
    return [lab.name for lab in LABS.labs]


async def step_current(pilot: Pilot, app: LabApp, index: int) -> None:
    """Wait until step `index` ran its setup and is the trainee's (open, or passed at once
    because the machine already did what it asks)."""
    progress = app.lab_progress
    await until(pilot, lambda: progress.index == index and progress.status in (OPEN, PASSED),
                f"step {index + 1} current", timeout=STEP_WAIT_S)


async def type_line(pilot: Pilot, app: LabApp, line: str) -> None:
    """A line typed at the `:` prompt, then Enter; wait for its answer on the screen."""
    shown = app.main.outcomes_shown
    await pilot.press("colon")
    await until(pilot, lambda: isinstance(app.screen, CommandPrompt), "the prompt")
    await pilot.press(*line, "enter")
    await until(pilot, lambda: app.main.outcomes_shown > shown, f"'{line}' answered",
                timeout=STEP_WAIT_S)


def as_trainee(app: LabApp, line: str) -> str:
    """A solve line as a trainee types it: a derived answer becomes the value itself."""
    words = line.split()
    if words[:1] == ["answer"] and len(words) > 1 and words[1] in labtools.DERIVATIONS:
        return f"answer {app.driver.run.truth()}"
    return line


async def finish(pilot: Pilot, app: LabApp, log: EventLog, *, solve_key: bool) -> None:
    progress = app.lab_progress
    for index, step in enumerate(app.lab.steps):
        await step_current(pilot, app, index)
        if solve_key and progress.status == OPEN:
            await pilot.press("exclamation_mark")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question")
            await pilot.press("y")
        for line in () if solve_key else step.solve:
            late_wait = line.startswith("wait-for ")
            if progress.status != OPEN and not late_wait:
                break  # passed already: the rest of the script only looks
            # A wait-for is typed even when its event already happened (the vmcore written
            # while the step was read): it answers with that event at once.
            await type_line(pilot, app, as_trainee(app, line))
            if late_wait:
                answer = app.session.history[-1]
                assert answer.result.ok, f"{line}: {answer.result.message}"
        await until(pilot, lambda: progress.status == PASSED,
                    f"step {index + 1} passed ({progress.detail})", timeout=STEP_WAIT_S)
        await pilot.press(">")
    await until(pilot, lambda: progress.status == FINISHED, "the debrief")


def full_score(app: LabApp) -> None:
    total = len(app.lab.steps)
    assert app.lab_progress.score == Score(total, total, 0, 0, 0)
    assert app.exit_status == 0
    assert app.crashes.errors == []
    # What the terminal shows after Ctrl+Q.
    summary = app.score_summary()
    assert f"Score: {total}/{total} steps passed, 0 hints used" in summary
    assert " ".join(["✔"] * total) in summary


@pytest.mark.parametrize("name", lab_names())
@pilot_test
async def test_every_lab_finished_by_keys_at_80x24_running(name: str, tmp_path: Path) -> None:
    app, log = make_lab_app(name, tmp_path, running=True)
    async with app.run_test(size=SMALL) as pilot:
        await finish(pilot, app, log, solve_key=False)
        full_score(app)
        assert not [line for line in app.main.hw_store.lines if line.severity == "refused"
                    and line.text.startswith("answer")]


@pytest.mark.parametrize("name", ["hung-system", "psw-restart"])
@pilot_test
async def test_the_solve_key_finishes_labs_whose_dump_comes_early(name: str,
                                                                  tmp_path: Path) -> None:
    """The instructor solve on a step whose dump the running machine already wrote: the
    script stops once the check passes instead of waiting for a second dump in vain."""
    app, log = make_lab_app(name, tmp_path, running=True)
    async with app.run_test(size=SMALL) as pilot:
        await finish(pilot, app, log, solve_key=True)
        full_score(app)
        assert len(log.of_kind("dump_written")) == 1


@pilot_test
async def test_the_score_summary_after_quitting_midway(tmp_path: Path) -> None:
    app, _log = make_lab_app("hung-system", tmp_path)
    async with app.run_test(size=SMALL) as pilot:
        await step_current(pilot, app, 0)
        await pilot.pause(0.3)
        await pilot.press("h")
        await until(pilot, lambda: app.lab_progress.hints, "a hint")
        await pilot.press("ctrl+q")
    assert app.score_summary() == (f"Lab 1: {app.lab.title}\n  ▶ · · · ·\n"
                                   "  Score: 0/5 steps passed, 5 skipped, 1 hint used\n")


@pilot_test
async def test_under_100_columns_the_sidebar_is_a_step_bar(tmp_path: Path) -> None:
    app, _log = make_lab_app("hung-system", tmp_path)
    async with app.run_test(size=SMALL) as pilot:
        await step_current(pilot, app, 0)
        await pilot.pause()
        bar, sidebar = app.main.query_one("#lab-bar"), app.main.query_one("#lab-sidebar")
        assert bar.display and not sidebar.display and bar.size.height == 1
        assert "Lab 1 ▶ · · · ·  Step 1 of 5: Prepare the dump device" in str(bar.render())
        await pilot.press("L")  # the whole sidebar, on request
        await pilot.pause()
        assert sidebar.display and sidebar.size.width > 0
        await pilot.resize_terminal(120, 40)
        await until(pilot, lambda: not bar.display, "the step bar gone at 120 columns")
        assert sidebar.display
