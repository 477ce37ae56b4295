"""Demos in the console: playback driven through the command layer with its captions, keys
and stage events (Textual Pilot), the SVG screenshots at each stage, and the refusals (no
terminal, a directory that cannot be made).

The demos are short ones written here, played with their pauses made instant (`pace=0`)
except where the keys are tested, so that the tests take seconds.
"""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from pathlib import Path

from test_tui_app import SIZE, ack, kinds, pilot_test, stage_done, until

from console.cli import main
from console.training import labtools
from console.training.demos import Demo, load_demo
from console.tui.app import HELP_DIR, DumpLabApp
from console.tui.demo import CaptionBar, DemoApp, record_demo_screenshots
from console.tui.widgets.workflow.model import STORY
from machine.events import EventLog

BOOT = '''title = "Boot, and look"

[profile]
cpus = 2
memory = "128M"

[[steps]]
caption = "Activate the LPAR and IPL Linux."
commands = ["activate", "load 0100", "wait-for stage workload"]
pause = 5

[[steps]]
caption = "What the HMC says, and the dumps so far."
commands = ["status", "dumps"]
pause = 5
'''

# Long pauses: the keys are pressed while the demo waits in them.
SLOW = '''title = "Slow"

[pacing]
caption = 0
command = 0

[[steps]]
caption = "Activate."
commands = ["activate"]
pause = 600

[[steps]]
caption = "Status."
commands = ["status"]
pause = 600

[[steps]]
caption = "Never reached."
commands = ["load 0100"]
'''

FAILING = '''title = "A demo with a bad device"

[[steps]]
caption = "Load from a device that is not there."
commands = ["activate", "load 0300", "status"]
'''

TITLES = {info.name: info.title for info in STORY}


def write_demo(tmp_path: Path, name: str, text: str) -> Demo:
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return load_demo(path)


def bar_text(app: DumpLabApp) -> str:
    return str(app.main.query_one(CaptionBar).render())


def hardware_lines(app: DumpLabApp) -> list[str]:
    return [line.text for line in app.main.hw_store.lines]


# --------------------------------------------------------------------------------------------
# Playback


@pilot_test
async def test_a_demo_plays_through_the_command_layer_with_its_captions(tmp_path: Path) -> None:
    demo = write_demo(tmp_path, "boot", BOOT)
    app = DemoApp(demo, tmp_path / "work", pace=0.0)
    log = EventLog(app.session.bus)
    async with app.run_test(size=SIZE) as pilot:
        director = app.director
        await until(pilot, lambda: director.finished or director.failure, "the demo's end")
        assert director.exit_status == 0, director.failure
        shown = director.shown
        assert [s.text for s in shown if s.kind == "caption"] == [s.caption for s in demo.steps]
        commands = [line for step in demo.steps for line in step.commands]
        assert [s.text for s in shown if s.kind == "command"] == commands
        # The operator commands went to the session through the machine thread, in order,
        # and each was acknowledged on the HMC in that order; `dumps` ran there as well.
        operator = [line for line in commands if not labtools.tool_word(line)]
        assert [entry.text for entry in app.session.history] == operator
        assert all(entry.result.ok for entry in app.session.history)
        acknowledged = [text.split(":")[0] for text in hardware_lines(app)
                        if text.split(":")[0] in commands]
        assert acknowledged == commands
        assert "dumps: No dump written in this session yet." in hardware_lines(app)
        # The stages the demo is about happened, and the player followed them.
        for stage in ("ipl", "boot", "workload"):
            assert stage_done(log, stage), stage
        assert "workload: done" in [s.text for s in shown if s.kind == "stage"]
        assert app.main.timeline.stages["workload"].status == "done"
        assert [e.operation for e in kinds(log, "hmc")][:2] == ["activate", "load"]
        # The end: the bar says so with the last caption, the machine is still held, and
        # the output of the last commands is in view.
        await pilot.pause()
        assert "finished" in bar_text(app) and demo.steps[-1].caption in bar_text(app)
        assert "Demo finished" in ack(app)
        assert not app.runner.running
        assert app.main.active_tab == "tab-hardware"


@pilot_test
async def test_space_pauses_n_skips_and_q_stops_leaving_the_console_usable(
        tmp_path: Path) -> None:
    demo = write_demo(tmp_path, "slow", SLOW)
    app = DemoApp(demo, tmp_path / "work", pace=1.0)
    async with app.run_test(size=SIZE) as pilot:
        director = app.director
        await until(pilot, lambda: app.main.outcomes_shown == 1, "step 1's command")
        await pilot.press("space")
        assert director.paused and "paused" in bar_text(app)
        await pilot.press("space")
        assert not director.paused and "playing" in bar_text(app)
        await pilot.press("f5")  # greyed out: only the demo's commands move the machine
        assert not app.runner.running
        await pilot.press("n")  # the 600 s pause ends now: step 2
        await until(pilot, lambda: app.main.outcomes_shown == 2, "step 2's command")
        assert director.step == 2 and "step 2/3" in bar_text(app)
        await pilot.press("q")
        await until(pilot, lambda: not director.playing, "the demo to stop")
        assert director.stopped and director.exit_status == 1
        assert [entry.text for entry in app.session.history] == ["activate", "status"]
        assert "stopped" in bar_text(app) and "Demo stopped at step 2" in ack(app)
        # The console is the operator's again: n is Reset Normal, : a command line.
        await pilot.press("n")
        await until(pilot, lambda: app.main.outcomes_shown == 3, "Reset Normal")
        assert app.session.history[-1].text == "reset normal"
        await pilot.press("colon", *"status", "enter")
        await until(pilot, lambda: app.main.outcomes_shown == 4, "the typed command")
        assert app.session.history[-1].text == "status"
        assert not director.playing and director.step == 2


@pilot_test
async def test_a_failing_command_ends_the_demo_and_says_where(tmp_path: Path) -> None:
    demo = write_demo(tmp_path, "failing", FAILING)
    app = DemoApp(demo, tmp_path / "work", pace=0.0)
    async with app.run_test(size=SIZE) as pilot:
        director = app.director
        await until(pilot, lambda: not director.playing and director.shown, "the demo's end")
        await pilot.pause()
        assert director.exit_status == 1
        assert director.failure is not None and director.failure.startswith("step 1: 'load 0300'")
        assert [entry.text for entry in app.session.history] == ["activate", "load 0300"]
        assert "failed" in bar_text(app) and "load 0300" in bar_text(app)
        assert "Demo failed at step 1" in ack(app)


def test_the_demo_keys_have_ids_and_a_help_topic() -> None:
    ids = [binding.id for binding in DemoApp.BINDINGS]  # type: ignore[union-attr]
    assert all(ids) and len(set(ids)) == len(ids)
    inherited = {binding.id for binding in DumpLabApp.BINDINGS}  # type: ignore[union-attr]
    assert not inherited & set(ids)
    assert (HELP_DIR / f"{CaptionBar.HELP_TOPIC}.md").is_file()


# --------------------------------------------------------------------------------------------
# Screenshots


def svg_text(path: Path) -> str:
    """The text an SVG screenshot shows, without spaces (the SVG places runs of text, not
    the spaces between them); it must parse as XML."""
    root = ET.parse(path).getroot()
    assert root.tag.endswith("svg")
    return "".join("".join(root.itertext()).split())


def squeezed(text: str) -> str:
    return "".join(text.split())


def test_screenshots_at_each_stage_in_order_and_the_same_names_again(tmp_path: Path) -> None:
    demo = write_demo(tmp_path, "boot", BOOT)
    shots = tmp_path / "shots"
    out, err = io.StringIO(), io.StringIO()
    assert record_demo_screenshots(demo, shots, tmp_path / "work1", out=out, err=err) == 0
    assert err.getvalue() == ""
    names = sorted(path.name for path in shots.iterdir())
    assert names[0] == "01-stage-ipl-done.svg" and names[-1] == f"{len(names):02d}-end.svg"
    assert "02-stage-boot-running.svg" in names and "stage-workload-done.svg" in names[-2]
    assert f"Wrote {len(names)} screenshots to {shots}" in out.getvalue()
    for name in names[:-1]:  # each stage on the timeline, with its status beside its title
        _, _, stage, status = name.removesuffix(".svg").split("-", 3)
        text = svg_text(shots / name)
        assert squeezed(f"{status.upper()} {TITLES[stage]}") in text, name
        assert squeezed(demo.steps[0].caption) in text
    end = svg_text(shots / names[-1])
    assert "finished" in end and squeezed(demo.steps[-1].caption) in end
    assert squeezed("No dump written in this session yet.") in end
    assert record_demo_screenshots(demo, shots, tmp_path / "work2", out=out, err=err) == 0
    assert sorted(path.name for path in shots.iterdir()) == names  # no partial files either


def test_the_psw_restart_demo_through_the_purgatory_stages(tmp_path: Path) -> None:
    """A shipped demo that reaches the purgatory: the timeline's "where in memory" list once
    named the purgatory's start twice (a region and an event) and the console died."""
    demo = load_demo(Path(__file__).resolve().parent.parent / "assets/demos/psw-restart.toml")
    shots = tmp_path / "shots"
    out, err = io.StringIO(), io.StringIO()
    assert record_demo_screenshots(demo, shots, tmp_path / "work", out=out, err=err) == 0, \
        err.getvalue()
    names = sorted(path.name for path in shots.iterdir())
    for stage in ("purgatory-verify-done", "notes-done", "swap-done", "vmcore-done"):
        assert any(f"-stage-{stage}.svg" in name for name in names), stage
    verified = next(shots / name for name in names if "purgatory-verify-done" in name)
    assert squeezed("DONE Purgatory verify") in svg_text(verified)


# --------------------------------------------------------------------------------------------
# Refusals


def test_without_a_terminal_the_console_demo_says_so(capsys) -> None:
    status = main(["demo", "psw-restart"])
    out, err = capsys.readouterr()
    assert (status, out) == (2, "")
    assert "needs a terminal" in err and "dumplab demo psw-restart --headless" in err
    assert "Traceback" not in err and len(err.splitlines()) == 2


def test_screenshots_into_a_file_are_refused_in_one_line(tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    status = main(["demo", "psw-restart", "--screenshots", str(blocker / "shots")])
    out, err = capsys.readouterr()
    assert status == 2 and out == ""
    assert err.startswith(f"dumplab demo: cannot write screenshots to {blocker / 'shots'}: ")
    assert len(err.splitlines()) == 1
