"""The console driven by keys (Textual Pilot): every task, the Load form, the OS command line,
faults, stepping, bad input, and the kdump flow. Assertions are on the session's events and
the LPAR's state (the frames the machine thread publishes), then on what the screen says.

The machine is held (`running=False`) so that only the operator's commands advance it: the
same keys give the same machine, run after run.
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Button, Input, Label

from console.tui.app import DumpLabApp
from console.tui.screens.dialogs import (
    CommandPrompt,
    ConfirmScreen,
    FaultsScreen,
    HelpScreen,
    OpenDumpScreen,
)
from console.tui.screens.load import LoadForm
from console.tui.widgets.dump.model import compare_cpu, open_dump_file
from machine.dumptools import DumpOnDevice, find_dump
from machine.events import Event, EventLog
from machine.paths import program_path

SIZE = (120, 40)
WAIT_S = 30.0


def pilot_test(test: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """Run an async test in its own event loop (no asyncio plugin needed)."""
    @functools.wraps(test)
    def run(*args: object, **kwargs: object) -> None:
        asyncio.run(test(*args, **kwargs))
    return run


def dump_on_device(image: Path) -> DumpOnDevice:
    """The full dump the stand-alone dumper left on a dump device image."""
    with open(image, "rb") as device:
        return find_dump(device, os.fstat(device.fileno()).st_size, image.name)


def make_app(workdir: Path, **kwargs: object) -> tuple[DumpLabApp, EventLog]:
    """A held console on a 2-CPU LPAR, with a log of every event of its session."""
    options: dict = {"overrides": {"cpus": 2}, "running": False}
    options.update(kwargs)
    app = DumpLabApp(workdir, **options)
    return app, EventLog(app.session.bus)


@pytest.fixture(autouse=True)
def steady_cursor(monkeypatch: pytest.MonkeyPatch) -> None:
    """No blinking cursor: screens are the same at every instant."""
    monkeypatch.setattr(Input, "_toggle_cursor", lambda self: None)


async def until(pilot: Pilot, condition: Callable[[], object], what: str,
                timeout: float = WAIT_S) -> None:
    """Let the app run until condition() holds (the machine works in its own thread)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.02)
    await pilot.pause()


def kinds(log: EventLog, kind: str) -> list[Event]:
    return [event for event in list(log.events) if event.kind == kind]


def stage_done(log: EventLog, name: str) -> bool:
    return any(e.stage == name and e.status == "done" for e in kinds(log, "stage"))


def outcomes(app: DumpLabApp) -> list[str]:
    return [line.text for line in app.main.hw_store.lines]


def ack(app: DumpLabApp) -> str:
    return str(app.main.query_one("#ack").render())


async def answered(pilot: Pilot, app: DumpLabApp, count: int) -> None:
    """Wait until `count` commands have been answered."""
    await until(pilot, lambda: len(app.session.history) >= count
                and app.main.outcomes_shown >= count, f"{count} command results")


async def leave_input(pilot: Pilot) -> None:
    """Esc: out of the command line, so the letter keys reach the screen."""
    await pilot.press("escape")
    await pilot.pause()


async def boot(pilot: Pilot, app: DumpLabApp, log: EventLog) -> None:
    """Activate and Load by keys, then wait for the workload (F7 runs to the next stages)."""
    await leave_input(pilot)
    await pilot.press("a")
    await answered(pilot, app, 1)
    await pilot.press("l")
    await until(pilot, lambda: isinstance(app.screen, LoadForm), "the Load form")
    await pilot.press("enter")
    await answered(pilot, app, 2)
    while not stage_done(log, "workload"):
        count = len(app.session.history)
        await pilot.press("f7")
        await answered(pilot, app, count + 1)
    await until(pilot, lambda: app.main.frame is not None
                and app.main.frame.status == "operating", "status operating")


# ---------------------------------------------------------------------------------------------


@pilot_test
async def test_activate_and_load_by_keys(tmp_path: Path) -> None:
    app, log = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await boot(pilot, app, log)
        assert [h.text for h in app.session.history][:2] == ["activate", "load 0100"]
        assert [e.operation for e in kinds(log, "hmc")][:2] == ["activate", "load"]
        assert stage_done(log, "ipl") and stage_done(log, "boot")
        snapshot = app.main.frame.snapshot
        assert snapshot.program == "kernel" and len(snapshot.cpus) == 2
        assert "OPERATING" in str(app.main.query_one("#lpar-status").render())
        assert "workload: running on all 2 CPUs" in [line.text for line in app.main.os_store.lines]
        assert app.main.timeline.stages["workload"].status == "done"


@pilot_test
async def test_the_load_form_rejects_bad_values_field_by_field(tmp_path: Path) -> None:
    app, log = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await leave_input(pilot)
        await pilot.press("a")
        await answered(pilot, app, 1)
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, LoadForm), "the Load form")
        form = app.screen

        def error(field: str) -> str:
            return str(form.query_one(f"#{field}-error", Label).render())

        address = form.query_one("#load-address", Input)
        address.value = ""
        await pilot.press(*"xyz")
        await pilot.pause()
        assert "hex digits" in error("load-address")
        assert form.query_one("#load-ok", Button).disabled
        address.value = ""
        await pilot.press(*"0300")
        await pilot.pause()
        assert "no device 0300" in error("load-address")
        address.value = ""
        await pilot.press(*"0x200")
        await pilot.pause()
        assert error("load-address") == ""
        await pilot.press("tab")  # to the load parameter
        await pilot.press(*"TOOLONG123")
        await pilot.pause()
        assert "at most 8" in error("load-parm")
        form.query_one("#load-parm", Input).value = "A@1"
        form.query_one("#load-timeout", Input).value = "5"
        await pilot.pause()
        assert error("load-parm") == "" and "60 to 600" in error("load-timeout")
        form.query_one("#load-timeout", Input).value = "120"
        form.query_one("#type-clear").value = True
        await pilot.pause()
        form.query_one("#load-store").value = True  # store status with a clear load
        await pilot.pause()
        assert "normal load" in error("load-store")
        await pilot.press("enter")  # refused: the form stays, nothing is sent
        await pilot.pause()
        assert isinstance(app.screen, LoadForm) and len(app.session.history) == 1
        await pilot.press("escape")
        await pilot.pause()
        assert "Load cancelled" in ack(app)
        assert kinds(log, "ipl") == []


@pilot_test
async def test_load_clear_and_reset_clear_ask_first(tmp_path: Path) -> None:
    app, log = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await boot(pilot, app, log)
        count = len(app.session.history)
        await pilot.press("c")  # Reset Clear
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation")
        await pilot.press("n")
        await pilot.pause()
        assert "cancelled, nothing done" in ack(app) and len(app.session.history) == count
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, LoadForm), "the Load form")
        app.screen.query_one("#type-clear").value = True
        await pilot.pause()
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation")
        await pilot.press("y")
        await answered(pilot, app, count + 1)
        assert app.session.history[-1].text == "load 0100 clear"
        ipl = kinds(log, "ipl")[-1]
        assert ipl.clear and ipl.program == "kernel"


@pilot_test
async def test_stop_all_store_status_and_psw_restart(tmp_path: Path) -> None:
    app, log = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await boot(pilot, app, log)
        count = len(app.session.history)
        await pilot.press("t")  # Store Status of an operating CPU: refused, plainly
        await answered(pilot, app, count + 1)
        assert "Stop it first" in ack(app) and "✘" in ack(app)
        await pilot.press("s")
        await answered(pilot, app, count + 2)
        await until(pilot, lambda: app.main.frame.status == "not operating", "Stop all")
        assert {c.state for c in app.main.frame.snapshot.cpus} == {"stopped"}
        assert "STOPPED" in str(app.main.query_one("#cpu-badges").render())
        await pilot.press("t")
        await answered(pilot, app, count + 3)
        stored = kinds(log, "store_status")[-1]
        assert (stored.cpu, stored.address, stored.by) == (0, 0x1200, "operator")
        await pilot.press("p")
        await answered(pilot, app, count + 4)
        assert kinds(log, "hmc")[-1].operation == "restart"
        assert "PSW Restart of CPU 0 done" in ack(app)
        app.submit("run 1ms")  # the machine is held: the interruption comes when it runs
        await answered(pilot, app, count + 5)
        restart = kinds(log, "restart")[-1]
        assert (restart.cpu, restart.source) == (0, "operator")


@pilot_test
async def test_os_command_line_with_history(tmp_path: Path) -> None:
    app, log = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await boot(pilot, app, log)
        await pilot.press("o")  # Operating System Messages: the command line has the focus
        line = app.main.query_one("#os-command", Input)
        assert app.focused is line
        count = len(app.session.history)
        await pilot.press(*"echo hello dumplab", "enter")
        await answered(pilot, app, count + 1)
        assert app.session.history[-1].text == "oscmd echo hello dumplab"
        app.submit("run 2ms")
        await answered(pilot, app, count + 2)
        texts = [(e.text, e.source) for e in kinds(log, "console")]
        assert ("echo hello dumplab", "operator") in texts
        assert ("hello dumplab", "os") in texts
        await until(pilot, lambda: any(l.text == "hello dumplab" for l in app.main.os_store.lines),
                    "the echo in the message log")
        assert line.value == ""
        await pilot.press("up")
        assert line.value == "echo hello dumplab"
        await pilot.press("down")
        assert line.value == ""
        await pilot.press("f9")  # priority on: the next command is a priority command
        await pilot.press(*"status", "enter")
        await answered(pilot, app, count + 3)
        assert app.session.history[-1].text == "oscmd --priority status"


@pilot_test
async def test_hang_fault_and_step(tmp_path: Path) -> None:
    app, log = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await boot(pilot, app, log)
        await leave_input(pilot)
        await pilot.press("f")
        await until(pilot, lambda: isinstance(app.screen, FaultsScreen), "the faults")
        count = len(app.session.history)
        await pilot.press("enter")  # the first fault: hang spin
        await answered(pilot, app, count + 1)
        assert app.session.history[-1].text == "fault hang spin"
        app.submit("wait-for event hang")
        await answered(pilot, app, count + 2)
        assert kinds(log, "hang")[-1].hang == "spin"
        await pilot.press("4")  # Registers
        before = app.main.frame.snapshot.cpus[0].psw_addr
        await pilot.press("f6")
        await answered(pilot, app, count + 3)
        assert app.session.history[-1].text == "step 1 cpu=0"
        assert app.session.history[-1].result.ok
        assert not app.runner.running
        await until(pilot, lambda: app.main.frame.snapshot.cpus[0].psw_addr != before
                    or app.main.frame.snapshot.t > 0, "a frame after the step")
        assert "PSW" in str(app.main.query_one("#registers-body").render())


@pilot_test
async def test_a_breakpoint_typed_at_the_breakpoint_task(tmp_path: Path) -> None:
    """b opens the command prompt with `break `; the CPU that reaches the symbol stops, the
    hardware messages say where, and the code view marks the breakpoint."""
    app, log = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await boot(pilot, app, log)
        await leave_input(pilot)
        await pilot.press("b")
        await until(pilot, lambda: isinstance(app.screen, CommandPrompt), "the prompt")
        assert app.screen.query_one("#prompt-input", Input).value == "break "
        count = len(app.session.history)
        await pilot.press(*"spin_unlock", "enter")
        await answered(pilot, app, count + 1)
        assert app.session.history[-1].text == "break spin_unlock"
        assert app.session.history[-1].result.ok
        app.submit("wait-for event breakpoint")
        await answered(pilot, app, count + 2)
        hit = kinds(log, "breakpoint")[-1]
        await until(pilot, lambda: any("stopped at breakpoint spin_unlock" in text
                                       for text in outcomes(app)), "the hardware message")
        await pilot.press("6")  # Code
        for _ in range(hit.cpu):
            await pilot.press("right_square_bracket")
        await until(pilot, lambda: "spin_unlock" in str(
            app.main.query_one("#disasm-body").render()),
            f"the code view: {app.main.query_one('#disasm-body').render()}")
        window = app.main.frame.probes.get("code")
        assert hit.address in window.breakpoints


@pilot_test
async def test_bad_input_anywhere_gives_a_message(tmp_path: Path) -> None:
    app, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await leave_input(pilot)
        await pilot.press("colon")
        await pilot.press(*"bogus 12", "enter")
        await answered(pilot, app, 1)
        assert "unknown command 'bogus'" in ack(app)
        await pilot.press("colon")
        await pilot.press(*"load xyz", "enter")
        await answered(pilot, app, 2)
        assert "bad device number" in ack(app)
        await pilot.press("s")  # Stop all before activation: refused
        await answered(pilot, app, 3)
        assert "not activated" in ack(app)
        await pilot.press("5")  # Storage: go to something that is nothing
        goto = app.main.query_one("#storage-goto", Input)
        goto.focus()
        await pilot.press(*"nowhere+zz", "enter")
        await pilot.pause()
        assert "not an address" in str(app.main.query_one("#storage-where").render())
        random_file = tmp_path / "random.bin"
        random_file.write_bytes(os.urandom(8192))
        truncated = tmp_path / "truncated"
        truncated.write_bytes(b"\x7fELF\x02\x02\x01" + b"\0" * 40)
        for path, problem in ((random_file, "not a dump"), (truncated, "not a dump"),
                              (tmp_path / "missing", "no such file"), (tmp_path, "not a file")):
            app.open_dump(path)
            await until(pilot, lambda problem=problem: problem in ack(app), f"refusal of {path}")
        assert app.is_running


@pilot_test
async def test_synthetic_stage_check_and_dump_events_light_the_timeline(tmp_path: Path) -> None:
    from machine.events import CheckEvent, DumpProgressEvent, DumpWrittenEvent, StageEvent

    app, _ = make_app(tmp_path)
    mib = 1 << 20
    events = [
        StageEvent(t=1_000, cpu=0, stage="dumper", status="running", detail="dumper at 0x2000"),
        CheckEvent(t=1_100, cpu=0, what="os_info checksum", expected="12345678",
                   computed="12345678", ok=True),
        CheckEvent(t=1_200, cpu=0, what="purgatory checksum", expected="aaaa0000",
                   computed="aaaa0001", ok=False),
        StageEvent(t=1_300, cpu=0, stage="checks", status="failed", detail="purgatory checksum"),
        StageEvent(t=1_400, cpu=0, stage="full-dump", status="running", detail="to 0200"),
        DumpProgressEvent(t=1_000_000, cpu=0, done=16 * mib, total=64 * mib),
        DumpProgressEvent(t=101_000_000, cpu=0, done=32 * mib, total=64 * mib),
    ]
    done = [
        DumpWrittenEvent(t=300_000_000, cpu=0, path=str(tmp_path / "dumps" / "dump.s390"),
                         format="s390", bytes=256 * mib, seconds=0.3),
        StageEvent(t=300_000_000, cpu=0, stage="full-dump", status="done", detail="256 MiB"),
        DumpWrittenEvent(t=400_000_000, cpu=0, path=str(tmp_path / "dumps" / "vmcore"),
                         format="elf", bytes=8 * mib, seconds=0.02),
        StageEvent(t=400_000_000, cpu=0, stage="brand-new-stage", status="done", detail="new"),
    ]
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("escape", "3")
        app.runner.call(lambda session: [session.bus.publish(e) for e in events])
        await until(pilot, lambda: app.main.progress.state is not None, "progress")
        timeline = app.main.timeline
        assert timeline.stages["dumper"].status == "running"
        assert timeline.stages["checks"].status == "failed"
        checks = timeline.stages["dumper"].checks
        assert [(c.what, c.ok) for c in checks] == [("os_info checksum", True),
                                                    ("purgatory checksum", False)]
        progress_text = str(app.main.query_one("#work-text").render())
        assert "32.0 of 64.0 MiB" in progress_text and "MB/s" in progress_text
        assert "s left" in progress_text
        assert "-active" in app.main.query_one("#work-progress").classes
        app.runner.call(lambda session: [session.bus.publish(e) for e in done])
        await until(pilot, lambda: len(app.main.dumps) == 2, "two dumps")
        assert app.main.progress.state is None
        assert timeline.stages["full-dump"].status == "done"
        assert list(timeline.stages)[-1] == "brand-new-stage"
        chart = str(app.main.query_one("#dump-chart").render())
        assert "kdump vmcore" in chart and "full dump" in chart and "256.0" in chart
        assert any("Check failed: purgatory checksum" in text for text in outcomes(app))


@pilot_test
async def test_palette_help_and_quit(tmp_path: Path) -> None:
    app, _ = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"Command: status")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await answered(pilot, app, 1)
        assert app.session.history[0].text == "status"
        await leave_input(pilot)
        await pilot.press("3")  # the workflow: F1 explains the workflow
        await pilot.press("f1")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), "help")
        assert "Workflow timeline" in app.screen.markdown
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("ctrl+q")
        await pilot.pause()
    assert not app.runner.alive


needs_kdump = pytest.mark.skipif(not program_path("purgatory").is_file(),
                                 reason="kdump is not built")


@needs_kdump
@pilot_test
async def test_psw_restart_takes_the_kdump_path(tmp_path: Path) -> None:
    app, log = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await boot(pilot, app, log)
        await leave_input(pilot)
        await pilot.press("f")
        await until(pilot, lambda: isinstance(app.screen, FaultsScreen), "the faults")
        fault_list = app.screen.query_one("#fault-list")
        fault_list.highlighted = next(i for i in range(fault_list.option_count)
                                      if fault_list.get_option_at_index(i).id == "kdump load")
        count = len(app.session.history)
        await pilot.press("enter")
        await answered(pilot, app, count + 1)
        app.submit("wait-for event kexec")
        await answered(pilot, app, count + 2)
        await pilot.press("s", "p")
        await answered(pilot, app, count + 4)
        app.submit("wait-for event dump_written timeout=30s")
        await answered(pilot, app, count + 5)
        assert app.session.history[-1].result.ok, app.session.history[-1].result.message
        for stage in ("purgatory-verify", "purgatory-load", "notes", "swap", "kdump-boot",
                      "vmcore"):
            assert stage_done(log, stage), stage
        assert all(check.ok for check in kinds(log, "check"))
        written = kinds(log, "dump_written")[-1]
        assert written.format == "elf" and Path(written.path).is_file()
        await until(pilot, lambda: app.main.timeline.stages["vmcore"].status == "done",
                    "the timeline")
        timeline = app.main.timeline
        assert timeline.stages["purgatory-verify"].checks
        assert all(c.ok for c in timeline.stages["purgatory-verify"].checks)
        # The acknowledgement names the dump; v then Enter opens it in the dump viewer,
        # beside the snapshot taken before the PSW Restart.
        await until(pilot, lambda: Path(written.path).name in ack(app), "the dump's name")
        assert "Press v to open it" in ack(app)
        await leave_input(pilot)
        await pilot.press("v")
        await until(pilot, lambda: isinstance(app.screen, OpenDumpScreen), "the file picker")
        assert app.screen.query_one("#open-path", Input).value == written.path
        await pilot.press("enter")
        await until(pilot, lambda: app.main.active_tab == "tab-dump", "the dump viewer")
        viewer = app.main.query_one("#dump-viewer")
        assert viewer.opened is not None and viewer.snapshot is not None
        assert viewer.snapshot[0] == "before PSW Restart"


needs_dumper = pytest.mark.skipif(not program_path("dumper").is_file(),
                                  reason="the stand-alone dumper is not built yet")


async def inject(pilot: Pilot, app: DumpLabApp, line: str) -> None:
    """Faults… (f), move down the list to the fault, Enter; wait for its result."""
    await leave_input(pilot)
    await pilot.press("f")
    await until(pilot, lambda: isinstance(app.screen, FaultsScreen), "the faults")
    fault_list = app.screen.query_one("#fault-list")
    wanted = next(i for i in range(fault_list.option_count)
                  if fault_list.get_option_at_index(i).id == line)
    while fault_list.highlighted != wanted:
        await pilot.press("down")
    count = len(app.session.history)
    await pilot.press("enter")
    await answered(pilot, app, count + 1)
    assert app.session.history[-1].text == line


@needs_dumper
@pilot_test
async def test_hang_then_the_stand_alone_dumper_starts_kdump(tmp_path: Path) -> None:
    """The product's main flow by keys: kdump loaded, the system hangs, Stop all, Load the
    dump device with store status (the Load form's dump type, chosen with the arrow keys),
    the dumper's checks pass and kdump writes a vmcore with the registers at the hang."""
    app, log = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await boot(pilot, app, log)
        await inject(pilot, app, "kdump load")
        app.submit("wait-for event kexec")
        await inject(pilot, app, "fault hang spin")
        count = len(app.session.history)
        app.submit("wait-for event hang")
        await answered(pilot, app, count + 1)
        await pilot.press("s")
        await answered(pilot, app, count + 2)
        await until(pilot, lambda: app.main.frame.status == "not operating", "all stopped")
        hung = app.main.frame.snapshot
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, LoadForm), "the Load form")
        await pilot.press("shift+tab", "down", "down", "enter")  # the load type: dump
        await until(pilot, lambda: app.screen.load_type == "dump", "the dump load type")
        await pilot.press("enter")
        await answered(pilot, app, count + 3)
        assert app.session.history[-1].text == "load 0200 store"
        app.submit("wait-for event dump_written timeout=60s")
        await answered(pilot, app, count + 4)
        assert app.session.history[-1].result.ok, app.session.history[-1].result.message

        checks = kinds(log, "check")
        assert checks and all(check.ok for check in checks), [c.name for c in checks if not c.ok]
        for stage in ("dumper", "cpu-status", "checks", "purgatory-load", "notes", "swap",
                      "kdump-boot", "vmcore"):
            assert stage_done(log, stage), stage
        assert not stage_done(log, "full-dump")
        written = kinds(log, "dump_written")[-1]
        assert written.format == "elf"
        opened = open_dump_file(written.path)
        assert len(opened.cpus) == len(hung.cpus)
        for cpu in opened.cpus:  # the IPL CPU's registers too, thanks to store status
            differing = [row.name for row in compare_cpu(cpu, hung) if row.differs]
            assert differing == [], (cpu["pid"], differing)
        await until(pilot, lambda: app.main.timeline.stages["vmcore"].status == "done",
                    "the timeline")
        shown = app.main.timeline.stages["checks"].checks
        assert len(shown) >= 6 and all(check.ok for check in shown)


@needs_dumper
@pilot_test
async def test_corrupted_purgatory_falls_back_to_a_full_dump(tmp_path: Path) -> None:
    app, log = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await boot(pilot, app, log)
        count = len(app.session.history)
        for line in ("kdump load", "wait-for event kexec", "fault corrupt purgatory",
                     "fault hang spin", "wait-for event hang"):
            app.submit(line)
        await answered(pilot, app, count + 5)
        await leave_input(pilot)
        await pilot.press("s", "l")
        await until(pilot, lambda: isinstance(app.screen, LoadForm), "the Load form")
        app.screen.query_one("#type-dump").value = True
        await pilot.pause()
        assert app.screen.query_one("#load-address", Input).value == "0200"
        count = len(app.session.history)
        await pilot.press("ctrl+s")
        await answered(pilot, app, count + 1)
        assert app.session.history[-1].text == "load 0200 store"
        app.submit("wait-for stage full-dump timeout=60s")
        await answered(pilot, app, count + 2)
        assert any(not c.ok for c in kinds(log, "check"))
        assert stage_done(log, "full-dump")
        # The dump stays on the device until zgetdump copies it off.
        assert kinds(log, "dump_written") == []
        assert dump_on_device(tmp_path / "dev-0200.img").memory_size == app.session.lpar.storage.size


def test_the_machine_thread_serves_commands_headless(tmp_path: Path) -> None:
    """The runner alone (no Textual): commands, frames at a bounded rate, events in order."""
    from console.control.runner import Runner
    from console.control.session import Session

    frames, batches, results = [], [], []
    session = Session(tmp_path, overrides={"cpus": 2})
    runner = Runner(session, on_frame=frames.append, on_events=batches.append,
                    on_outcome=results.append, running=True, speed="max")
    runner.start()
    try:
        for line in ("activate", "load 0100", "wait-for stage workload"):
            runner.submit(line)
        deadline = time.monotonic() + WAIT_S
        while len(results) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [r.result.ok for r in results] == [True, True, True]
        time.sleep(0.5)
        assert frames[-1].snapshot is not None and frames[-1].snapshot.t > 120_000
        seconds = 0.5 + 0.3
        assert len(frames) <= 20 * seconds * 2 + 10  # bounded rate (commands add a few)
        events = [e for batch in batches for e in batch]
        assert [e.t for e in events] == sorted(e.t for e in events)
    finally:
        runner.stop()
    assert not runner.alive and session.lpar is None


def test_quitting_the_runner_interrupts_a_long_wait(tmp_path: Path) -> None:
    from console.control.runner import Runner
    from console.control.session import Session

    results = []
    runner = Runner(Session(tmp_path, overrides={"cpus": 2}), on_outcome=results.append,
                    running=False)
    runner.start()
    for line in ("activate", "load 0100", "wait-for console never-printed timeout=100s"):
        runner.submit(line)
    time.sleep(0.5)
    started = time.monotonic()
    runner.stop()
    assert time.monotonic() - started < 3 and not runner.alive


