"""A `wait-for` typed after its event (issue 10): in the console the machine runs between
commands, and what it did meanwhile counts for the next wait-for (`since=last`, the default),
as what a command set off does in a script; `since=now` waits for a new one.
"""

from __future__ import annotations

import re
from pathlib import Path

from test_tui_app import pilot_test, until
from test_tui_lab import make_lab_app
from test_tui_labs_by_keys import quick_keys, step_current, type_line  # noqa: F401 - fixture

from console.control.session import Session
from machine.events import EventLog

SLICE_NS = 200_000  # what the console's runner advances per slice (console/control/runner.py)


def workload_live(session: Session, log: EventLog, limit_ns: int = 2_000_000_000) -> int:
    """Advance as the console does between commands until the workload stage is done (the
    boot reaches it only after `load` returned); its virtual time."""
    begun = len(log.events)
    for _ in range(limit_ns // SLICE_NS):
        session.advance(SLICE_NS)
        done = [e for e in log.events[begun:] if e.kind == "stage"
                and e.stage == "workload" and e.status == "done"]  # type: ignore[attr-defined]
        if done:
            return done[0].t
    raise AssertionError(f"the workload did not start within {limit_ns} ns")


def booted(tmp_path: Path) -> tuple[Session, EventLog]:
    session = Session(tmp_path, overrides={"cpus": 2})
    log = EventLog(session.bus)
    for line in ("activate", "load 0100"):
        assert session.execute(line).ok
    return session, log


def test_a_wait_for_typed_after_a_live_event_returns_that_event(tmp_path: Path) -> None:
    session, log = booted(tmp_path)
    with session:
        when = workload_live(session, log)
        before = session.now()
        result = session.execute("wait-for stage workload timeout=1ms")
        assert result.ok, result.message
        assert result.data["t"] == when
        assert session.now() == before  # answered from what happened: nothing ran


def test_since_now_waits_for_a_new_event(tmp_path: Path) -> None:
    session, log = booted(tmp_path)
    with session:
        workload_live(session, log)
        result = session.execute("wait-for stage workload since=now timeout=1ms")
        assert not result.ok
        assert "timed out after 1ms" in result.message


def test_a_consumed_event_is_not_counted_twice(tmp_path: Path) -> None:
    session, log = booted(tmp_path)
    with session:
        workload_live(session, log)
        assert session.execute("wait-for stage workload timeout=1ms").ok
        assert not session.execute("wait-for stage workload timeout=1ms").ok


def test_a_bad_since_is_refused_with_its_choices(tmp_path: Path) -> None:
    with Session(tmp_path) as session:
        result = session.execute("wait-for event ipl since=then")
        assert not result.ok
        assert "bad since 'then' (expected last or now)" in result.message


@pilot_test
async def test_a_lab_hint_typed_after_its_event_returns_at_once(tmp_path: Path) -> None:
    """hung-system step 2: `kdump load`, then the trainee reads the kexec line on the screen
    and only then types the hint's `wait-for event kexec`: answered with that very event."""
    app, log = make_lab_app("hung-system", tmp_path, running=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await step_current(pilot, app, 0)  # prepare the dump device first
        for line in app.lab.steps[0].solve:
            await type_line(pilot, app, line)
        await until(pilot, lambda: app.lab_progress.status == "passed", "step 1 passed")
        await pilot.press(">")
        await step_current(pilot, app, 1)
        hint = next(command for text in app.lab.steps[1].hints
                    for command in re.findall(r"`([^`]+)`", text) if command.startswith("wait-for"))
        assert hint == "wait-for event kexec"
        await type_line(pilot, app, "kdump load")
        await until(pilot, lambda: log.of_kind("kexec"), "the kexec event", timeout=60)
        kexec = log.of_kind("kexec")[0]
        await pilot.pause(0.3)  # the machine runs on meanwhile
        await type_line(pilot, app, hint)
        answer = app.session.history[-1]
        assert answer.text == hint
        assert answer.result.ok, answer.result.message
        assert answer.result.data["t"] == kexec.t
        await until(pilot, lambda: app.lab_progress.status == "passed", "step 2 passed")
