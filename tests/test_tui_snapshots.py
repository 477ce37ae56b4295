"""SVG snapshots of the console (pytest-textual-snapshot): the main screen after boot, the
timeline after a kdump, the timeline after a fallback to a full dump, and the dump viewer.

The machine is held and driven by commands, so every snapshot shows the same virtual time;
the cursor does not blink. Update with `pytest tests/test_tui_snapshots.py --snapshot-update`
after checking the new pictures.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from test_tui_app import until
from textual.pilot import Pilot
from textual.widgets import Input

import console.tui.screens.main as main_screen
from console.training.labs import load_labs
from console.tui.app import DumpLabApp
from console.tui.screens.lab import LabApp
from console.tui.widgets.workflow.model import DumpRecord
from machine.events import Event
from machine.paths import program_path

pytest.importorskip("pytest_textual_snapshot")

BOOT = ("activate", "load 0100", "wait-for stage workload")
KDUMP = (*BOOT, "kdump load", "wait-for event kexec", "stop all", "restart 0",
         "wait-for event dump_written timeout=30s")
FALLBACK = (*BOOT, "kdump load", "wait-for event kexec", "fault corrupt purgatory",
            "fault hang spin", "wait-for event hang", "stop all", "load 0200 store",
            "wait-for stage full-dump timeout=60s", "load 0100", "wait-for stage workload",
            "oscmd zgetdump 0200 dump.s390 -f s390", "wait-for event dump_written timeout=60s")


@pytest.fixture(autouse=True)
def steady_screen(monkeypatch: pytest.MonkeyPatch) -> None:
    """No blinking cursor, and dump write times that do not depend on the host's speed."""
    monkeypatch.setattr(Input, "_toggle_cursor", lambda self: None)
    measured = main_screen.dump_record

    def fixed_time(event: Event) -> DumpRecord:
        return replace(measured(event), seconds=measured(event).bytes / 200e6)
    monkeypatch.setattr(main_screen, "dump_record", fixed_time)


def console(tmp_path: Path) -> DumpLabApp:
    return DumpLabApp(tmp_path / "work", overrides={"cpus": 2}, running=False)


def lab_console(tmp_path: Path) -> LabApp:
    found = load_labs().find("hung-system")
    assert found is not None
    return LabApp(found, tmp_path / "work", running=False)


async def run_commands(pilot: Pilot, lines: tuple[str, ...]) -> None:
    app: DumpLabApp = pilot.app  # type: ignore[assignment]
    for line in lines:
        app.submit(line)
    await until(pilot, lambda: app.main.outcomes_shown >= len(lines), "the commands")
    failed = [h for h in app.session.history if not h.result.ok]
    assert not failed, failed[0].result.message
    await pilot.pause(0.3)  # the last frame


async def show_stage(pilot: Pilot, name: str) -> None:
    app: DumpLabApp = pilot.app  # type: ignore[assignment]
    await pilot.press("escape", "3")
    stage_list = app.main.query_one("#stage-list")
    stage_list.highlighted = list(app.main.timeline.stages).index(name)
    await pilot.pause()


def test_main_screen_after_boot(snap_compare, tmp_path: Path) -> None:
    async def before(pilot: Pilot) -> None:
        await run_commands(pilot, BOOT)
        await pilot.press("escape")
    assert snap_compare(console(tmp_path), terminal_size=(120, 36), run_before=before)


def test_main_screen_after_boot_at_80x24(snap_compare, tmp_path: Path) -> None:
    async def before(pilot: Pilot) -> None:
        await run_commands(pilot, BOOT)
        await pilot.press("escape")
    assert snap_compare(console(tmp_path), terminal_size=(80, 24), run_before=before)


def test_main_screen_after_boot_at_160x48(snap_compare, tmp_path: Path) -> None:
    async def before(pilot: Pilot) -> None:
        await run_commands(pilot, BOOT)
        await pilot.press("escape")
    assert snap_compare(console(tmp_path), terminal_size=(160, 48), run_before=before)


def test_main_screen_with_eight_cpus_at_80x24(snap_compare, tmp_path: Path) -> None:
    """Eight CPU badges and the run state still fit at 80×24."""
    async def before(pilot: Pilot) -> None:
        await run_commands(pilot, BOOT)
        await pilot.press("escape")
    app = DumpLabApp(tmp_path / "work", overrides={"cpus": 8}, running=False)
    assert snap_compare(app, terminal_size=(80, 24), run_before=before)


def test_lab_screen_at_80x24(snap_compare, tmp_path: Path) -> None:
    """Under 100 columns the lab sidebar is a one-line step bar."""
    async def before(pilot: Pilot) -> None:
        app = pilot.app
        await until(pilot, lambda: app.lab_progress.status == "open", "step 1 open")
        await pilot.pause(0.3)
    assert snap_compare(lab_console(tmp_path), terminal_size=(80, 24), run_before=before)


def test_lab_screen_at_160x48(snap_compare, tmp_path: Path) -> None:
    async def before(pilot: Pilot) -> None:
        app = pilot.app
        await until(pilot, lambda: app.lab_progress.status == "open", "step 1 open")
        await pilot.pause(0.3)
    assert snap_compare(lab_console(tmp_path), terminal_size=(160, 48), run_before=before)


@pytest.mark.skipif(not program_path("purgatory").is_file(), reason="kdump is not built")
def test_timeline_after_kdump(snap_compare, tmp_path: Path) -> None:
    async def before(pilot: Pilot) -> None:
        await run_commands(pilot, KDUMP)
        await show_stage(pilot, "purgatory-verify")
    assert snap_compare(console(tmp_path), terminal_size=(140, 40), run_before=before)


@pytest.mark.skipif(not program_path("purgatory").is_file(), reason="kdump is not built")
@pytest.mark.parametrize("size", [(80, 24), (160, 48)])
def test_timeline_after_kdump_at(size: tuple[int, int], snap_compare, tmp_path: Path) -> None:
    async def before(pilot: Pilot) -> None:
        await run_commands(pilot, KDUMP)
        await show_stage(pilot, "notes")
    assert snap_compare(console(tmp_path), terminal_size=size, run_before=before)


@pytest.mark.skipif(not program_path("dumper").is_file(), reason="the dumper is not built")
def test_timeline_after_fallback_to_a_full_dump(snap_compare, tmp_path: Path) -> None:
    async def before(pilot: Pilot) -> None:
        await run_commands(pilot, FALLBACK)
        await show_stage(pilot, "checks")
    assert snap_compare(console(tmp_path), terminal_size=(140, 40), run_before=before)


@pytest.mark.skipif(not program_path("purgatory").is_file(), reason="kdump is not built")
def test_dump_viewer(snap_compare, tmp_path: Path) -> None:
    async def before(pilot: Pilot) -> None:
        app: DumpLabApp = pilot.app  # type: ignore[assignment]
        await run_commands(pilot, KDUMP)
        app.open_dump(Path(app.main.dumps[-1].path))
        await until(pilot, lambda: app.main.active_tab == "tab-dump", "the dump viewer")
        viewer = app.main.query_one("#dump-viewer")
        viewer.query_one("#dump-tabs").active = "dump-cpus-pane"
        await pilot.pause(0.2)
    assert snap_compare(console(tmp_path), terminal_size=(120, 40), run_before=before)
