"""The console survives what a classroom does to it (issue 10): resizes in the middle of a
view, a bug in a widget, a crash loop. Each test names the failure it guards against.

Crash containment (console/tui/crash.py): an exception in a handler is logged with its
traceback to the work directory's console.log, said in one line in hardware messages, and the
console goes on with the machine; a crash loop ends the app with status 70.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from rich._wrap import divide_line
from test_tui_app import (
    ack,
    answered,
    boot,
    kinds,
    leave_input,
    make_app,
    pilot_test,
    until,
)
from textual.content import Content
from textual.widgets import Input, OptionList

from console.control.exits import EXIT_SOFTWARE
from console.tui import crash
from console.tui.app import DumpLabApp
from console.tui.screens.load import LoadForm
from console.tui.screens.main import MainScreen
from console.tui.widgets.hmc.status import LparStatus
from console.tui.widgets.messages.log import MessageLog
from console.tui.widgets.workflow.model import Timeline
from machine.events import NotesSavedEvent, StageEvent


@pytest.fixture(autouse=True)
def steady_cursor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Input, "_toggle_cursor", lambda self: None)


def internal_error_lines(app: DumpLabApp) -> list[str]:
    return [line.text for line in app.main.hw_store.lines
            if line.text.startswith("Internal error in the console")]


@pilot_test
async def test_resize_to_80x24_with_where_in_memory_shown(tmp_path: Path) -> None:
    """Found 1: at 120×40, Workflow, a stage with addresses, then 80×24: rich's chop_cells
    divided by a width of 0 laying out "Where in memory", and the console died."""
    app, log = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await boot(pilot, app, log)
        await pilot.press("escape", "3", "down", "down", "down")  # workload -> hang
        where = app.main.query_one("#stage-where", OptionList)
        await until(pilot, lambda: where.option_count > 1, "addresses in Where in memory")
        for size in ((80, 24), (60, 20), (20, 8), (200, 60), (80, 24)):
            await pilot.resize_terminal(*size)
            await pilot.pause()
            assert app.crashes.errors == [], size
        assert app.is_running and app.runner.alive
        assert where.size.width > 0


@pilot_test
async def test_an_exception_in_a_key_handler_is_contained(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: MainScreen, delta: int) -> None:
        raise ZeroDivisionError("a bug in the CPU selection")
    monkeypatch.setattr(MainScreen, "action_cpu", broken)
    app, log = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await leave_input(pilot)
        await pilot.press("right_square_bracket")
        await until(pilot, lambda: app.crashes.errors, "the error contained")
        # One line in hardware messages and on the acknowledgement line; the details in the log.
        lines = internal_error_lines(app)
        assert len(lines) == 1 and "ZeroDivisionError" in lines[0]
        assert "console.log" in lines[0] and "ZeroDivisionError" in ack(app)
        text = (tmp_path / "console.log").read_text(encoding="utf-8")
        assert "Traceback (most recent call last)" in text
        assert "a bug in the CPU selection" in text
        # The console and the machine go on: the next key still works.
        await pilot.press("a")
        await until(pilot, lambda: [e.operation for e in log.of_kind("hmc")] == ["activate"],
                    "Activate after the error")
        assert app.is_running and app.runner.alive and app.return_code is None


@pilot_test
async def test_an_exception_in_a_message_from_the_machine_is_contained(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def broken(self: MainScreen, outcome: object) -> None:
        calls.append(outcome)
        raise KeyError("outcome view")
    monkeypatch.setattr(MainScreen, "show_outcome", broken)
    app, log = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        app.submit("activate")
        await until(pilot, lambda: calls and app.crashes.errors, "the error contained")
        assert log.of_kind("hmc") and app.is_running and app.runner.alive
        assert "showing Outcome: KeyError" in app.crashes.errors[0]


@pilot_test
async def test_a_crash_loop_ends_the_app_with_status_70(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: LparStatus) -> str:
        raise RuntimeError("every redraw fails")
    app, _log = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        monkeypatch.setattr(LparStatus, "render", broken)
        # Not pilot.pause(): it redraws from the test itself, outside the app's handlers.
        for _ in range(200):
            if app.return_code is not None:
                break
            app.main.query_one(LparStatus).refresh()
            await asyncio.sleep(0.02)
        assert app.return_code == EXIT_SOFTWARE
    assert len(app.crashes.errors) >= crash.CRASH_LOOP_ERRORS
    text = (tmp_path / "console.log").read_text(encoding="utf-8")
    assert "every redraw fails" in text and "stops with status 70" in text


def test_run_console_says_one_line_and_exits_70(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    def broken_run(self: DumpLabApp, **kwargs: object) -> None:
        raise OSError("the terminal went away")
    monkeypatch.setattr(DumpLabApp, "run", broken_run)
    app = DumpLabApp(tmp_path, overrides={"cpus": 1}, running=False)
    assert app.run_console() == EXIT_SOFTWARE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(tmp_path / "console.log") in err
    assert "Traceback" not in err
    assert "the terminal went away" in (tmp_path / "console.log").read_text(encoding="utf-8")


@pilot_test
async def test_f7_says_each_stage_event_with_its_own_status(tmp_path: Path) -> None:
    """Found 3: F7 (`wait-for event stage`) said "Stage checks done" for a failed check and
    "Stage cpu-status done" once per CPU, all alike."""
    app, log = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await boot(pilot, app, log)
        lines = ("kdump load", "wait-for event kexec", "fault corrupt purgatory",
                 "fault hang spin", "wait-for event hang", "stop all", "load 0200 store")
        count = len(app.session.history)
        for line in lines:
            app.submit(line)
        await answered(pilot, app, count + len(lines))
        await leave_input(pilot)
        said: list[str] = []
        # Each F7 says the next stage event, in order (the machine may have run past it).
        while not any(m.startswith("Stage full-dump done") for m in said) and len(said) < 80:
            count = len(app.session.history)
            await pilot.press("f7")
            await answered(pilot, app, count + 1)
            said.append(app.session.history[-1].result.message)
    stages = [e for e in kinds(log, "stage") if e.t >= kinds(log, "ipl")[-1].t]
    failed = [e for e in stages if e.stage == "checks" and e.status == "failed"]
    assert failed, "the corrupted purgatory fails the checks"
    assert any(m.startswith("Stage checks failed at t=") and failed[0].detail in m
               for m in said)
    assert not any(m.startswith("Stage checks done") for m in said)
    per_cpu = [m for m in said if m.startswith("Stage cpu-status")]
    assert len(per_cpu) == 2 and per_cpu[0].endswith("CPU 0: " + per_cpu[0].split("CPU 0: ")[-1])
    assert len(set(per_cpu)) == 2 and {"CPU 0:", "CPU 1:"} <= {m.split(": ", 1)[1][:6]
                                                              for m in per_cpu}


def test_where_in_memory_lists_only_addresses_inside_storage() -> None:
    """Found 4: the date in a dump's file name, a byte count and addresses beyond storage were
    offered as places in memory."""
    timeline = Timeline()
    timeline.feed([
        StageEvent(t=1, cpu=0, stage="vmcore", status="done",
                   detail="vmcore-20260101-000020: 53968896 bytes at 0x2000000"),
        StageEvent(t=2, cpu=0, stage="vmcore", status="done", detail="beyond at 0x40000000"),
    ])
    record = timeline.stages["vmcore"]
    assert record.addresses(storage=128 << 20) == [0x2000000]
    assert sorted(record.addresses()) == [0x2000000, 0x40000000]


def test_each_elf_note_names_the_cpu_it_belongs_to() -> None:
    """Found 4: "CPU 0 registers saved" four times: the event's cpu runs the purgatory; the
    note is of pr_pid (CPU address + 1) and its prefix."""
    timeline = Timeline()
    timeline.feed([NotesSavedEvent(t=n, cpu=0, pid=n + 1, prefix=0x10000 * (n + 1),
                                   address=0x1800000 + 0x200 * n, size=0x200)
                   for n in range(4)])
    notes = [text for _, text in timeline.stages["notes"].notes]
    assert notes[0] == ("CPU 0 (pr_pid 1, prefix 0x10000): registers saved in the note at "
                        "0x1800000")
    assert [text.split(" (")[0] for text in notes] == ["CPU 0", "CPU 1", "CPU 2", "CPU 3"]


@pilot_test
async def test_the_messages_log_follows_new_lines_at_80x24(tmp_path: Path) -> None:
    """Found 5: once the boot messages filled the log at 80×24 (long lines: a horizontal
    scrollbar came and shrank the view), it stopped following: the reply to `kdump load`
    was not visible until Esc, End."""
    app, log = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await boot(pilot, app, log)
        os_log = app.main.query_one("#os-log", MessageLog)
        count = len(app.session.history)
        while os_log.max_scroll_y < 5 and count < 80:  # the log full, as after a long boot
            app.submit("oscmd kdump status")
            app.submit("wait-for console kdump:")
            count += 2
            await answered(pilot, app, count)
            await pilot.pause()
        assert os_log.max_scroll_y >= 5, "the log is full"
        app.submit("kdump load")
        app.submit("wait-for event kexec")
        await answered(pilot, app, count + 2)
        await pilot.pause()
        newest = app.main.os_store.lines[-1].seq
        shown = os_log.visible_lines[int(os_log.scroll_y):
                                     int(os_log.scroll_y) + os_log.scrollable_content_region.height]
        assert newest in [line.seq for line in shown]
        assert any(line.text.startswith("kdump") and "loaded" in line.text
                   and "not loaded" not in line.text for line in shown), [l.text for l in shown]
        # Scrolled up by the reader, it stays where the reader is.
        os_log.focus()
        await pilot.press("home")
        app.submit("status")
        await answered(pilot, app, count + 3)
        assert os_log.scroll_y == 0 and not os_log.following


@pytest.mark.parametrize("query", ["stand-alone", "dump program", "SAD"])
@pilot_test
async def test_the_palette_finds_the_stand_alone_dumper(query: str, tmp_path: Path) -> None:
    """Found 9: the command palette found nothing for "stand-alone", "dump program", "SAD"."""
    app, _log = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*query)
        await pilot.pause(0.5)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, LoadForm), "the Load form")
        assert app.screen.load_type == "dump"
        assert app.screen.query_one("#load-address", Input).value == "0200"


@pilot_test
async def test_the_first_keys_work_where_the_welcome_says(tmp_path: Path) -> None:
    """Found 7: the welcome says "Press a to Activate" but the focus was in the OS command
    line; the Load form selected 0100 (Space erased it) and its type needed Shift+Tab."""
    app, log = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert "Press a to Activate" in ack(app) and "F5" in ack(app)
        await pilot.press("a")  # no Esc first
        await answered(pilot, app, 1)
        assert [e.operation for e in kinds(log, "hmc")] == ["activate"]
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, LoadForm), "the Load form")
        address = app.screen.query_one("#load-address", Input)
        assert app.focused is address and address.selected_text == ""
        await pilot.press("space")  # typed after 0100, not over it
        assert address.value == "0100 "
        await pilot.press("backspace", "down", "down")  # normal -> clear -> dump
        assert app.screen.load_type == "dump" and address.value == "0200"
        await pilot.press("up", "up")
        assert app.screen.load_type == "normal" and address.value == "0100"
        await pilot.press("enter")
        await answered(pilot, app, 2)
        assert app.session.history[-1].text == "load 0100"


@pilot_test
async def test_tab_reaches_where_in_memory(tmp_path: Path) -> None:
    """Found 7: the "Where in memory" list could not be reached with Tab."""
    app, log = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await boot(pilot, app, log)
        await pilot.press("escape", "3")
        where = app.main.query_one("#stage-where", OptionList)
        for _ in range(12):
            if app.focused is where:
                break
            await pilot.press("tab")
        assert app.focused is where


def test_text_folded_into_no_width_does_not_raise(tmp_path: Path) -> None:
    """Found by the UI fuzzer (seed 20261207, a lab, keys `3ml0` and a paste): a widget laid
    out at width 0 for a moment with a long word in its text raised in rich's chop_cells."""
    DumpLabApp(tmp_path, overrides={"cpus": 1}, running=False)  # installs the guard
    word = "0100¸×±ß" * 8
    assert Content(word).get_height({}, 0) >= 1
    assert divide_line(word, 0, fold=True)


@pilot_test
async def test_a_usage_line_with_brackets_is_shown_as_text(tmp_path: Path) -> None:
    """Found with issue 10's wait-for: the prompt's syntax line read the usage
    `[since=last|now]` as a markup tag, raised at every key, and the crash loop ended the
    console with status 70."""
    app, _log = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("escape", "colon")
        await until(pilot, lambda: app.screen.query("#prompt-error"), "the prompt")
        await pilot.press(*"wait-for")
        error = app.screen.query_one("#prompt-error")
        assert "[since=last|now]" in str(error.render())
        count = len(app.session.history)
        await pilot.press("enter")
        await answered(pilot, app, count + 1)
        assert "[since=last|now]" in app.session.history[-1].result.message
        assert "[since=last|now]" in ack(app)
        assert app.crashes.errors == [] and app.is_running
