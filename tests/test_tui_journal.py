"""A console session is journaled with the time the machine ran between commands, so that
`dumplab replay` gives the same events although the operator's timing came from the host."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import time
from pathlib import Path

from console.control.journal import JournalRun, read_journal, recording, replay, replay_command
from console.tui.app import DumpLabApp
from console.tui.screens.load import LoadForm


async def until(pilot, condition, what: str, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await pilot.pause(0.02)


async def operate(app: DumpLabApp) -> None:
    """Activate, Load, let it run, Stop all, Start all, let it run, quit: by keys, with the
    machine running freely in between (deterministic speed)."""
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("escape", "a")
        await until(pilot, lambda: len(app.session.history) == 1, "activate")
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, LoadForm), "the Load form")
        await pilot.press("enter")
        await until(pilot, lambda: app.session.now() > 2_000_000, "the machine to run")
        await pilot.press("s")
        await until(pilot, lambda: len(app.session.history) == 3, "stop all")
        await pilot.press("g")
        await until(pilot, lambda: len(app.session.history) == 4, "start all")
        started = app.session.now()
        await until(pilot, lambda: app.session.now() > started + 1_000_000, "more running")
        await pilot.press("ctrl+q")


def test_a_console_session_replays_identically(tmp_path: Path) -> None:
    path = tmp_path / "console.jsonl"
    app = DumpLabApp(tmp_path / "recorded", overrides={"cpus": 2}, running=True, speed="max")
    with recording(app.session, path, created_by="test console"):
        asyncio.run(operate(app))

    journal = read_journal(path)
    assert [c.text for c in journal.commands] == ["activate", "load 0100", "stop all",
                                                  "start all"]
    runs = [step for step in journal.steps if isinstance(step, JournalRun)]
    assert runs and sum(run.ns * run.times for run in runs) > 3_000_000
    assert not journal.free_running
    # The runs sit between the commands where they happened: after load, after start all.
    kinds = ["run" if isinstance(step, JournalRun) else step.text for step in journal.steps]
    assert kinds.index("load 0100") < kinds.index("run") < kinds.index("stop all")
    assert kinds[-1] == "run"

    outcome = replay(journal, tmp_path / "replayed")
    assert outcome.identical, outcome
    assert outcome.events == len(journal.events) > 20

    # Without the recorded runs the events would not come again: the runs matter.
    records = path.read_text().splitlines()
    no_runs = tmp_path / "no-runs.jsonl"
    no_runs.write_text("".join(line + "\n" for line in records if '"kind":"run"' not in line))
    assert not replay(read_journal(no_runs), tmp_path / "without-runs").identical


def test_a_run_is_recorded_once_for_many_slices(tmp_path: Path) -> None:
    """Slices of one length in a row are one record, written after their events."""
    from console.control.session import Session

    path = tmp_path / "j.jsonl"
    with Session(tmp_path, overrides={"cpus": 1}) as session, recording(session, path):
        session.execute("activate")
        session.execute("load 0100")
        for _ in range(5):
            session.advance(100_000)
        session.advance(50_000)
    records = [json.loads(line) for line in path.read_text().splitlines()[1:]]
    runs = [r for r in records if r["kind"] == "run"]
    assert [(r["ns"], r["times"]) for r in runs] == [(100_000, 5), (50_000, 1)]
    assert runs[-1]["t"] == records[-1]["t"]  # the last record: the time after the runs


def test_a_free_running_journal_is_refused_for_replay(tmp_path: Path) -> None:
    path = tmp_path / "free.jsonl"
    header = {"journal": "dumplab", "version": 1, "profile": "default", "overrides": {}}
    lines = [header, {"kind": "command", "t": 0, "command": "activate", "ok": True},
             {"kind": "run", "t": 200000, "ns": 200000, "times": 1, "free_running": True}]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    out, err = io.StringIO(), io.StringIO()
    status = replay_command(argparse.Namespace(journal=path, workdir=None), out, err)
    assert status == 2 and "free-running" in err.getvalue() and str(path) in err.getvalue()


def test_a_bad_run_record_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    header = {"journal": "dumplab", "version": 1, "profile": "default", "overrides": {}}
    path.write_text(json.dumps(header) + "\n" + json.dumps({"kind": "run", "ns": -1}) + "\n")
    out, err = io.StringIO(), io.StringIO()
    assert replay_command(argparse.Namespace(journal=path, workdir=None), out, err) == 2
    assert f"{path}:2:" in err.getvalue() and "'ns' and 'times'" in err.getvalue()
