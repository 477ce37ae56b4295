"""Stage stops: every stage and check has its card, each card's "Show me" places exist, and in
the console the kdump flow stops at each stage with its card; Enter walks through it and the
dump is the one a run without stops writes."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from console.control.commands import WORKFLOW_STAGES
from console.control.session import Session
from console.tui.screens.stage_card import StageCard
from console.tui.stagecards import (
    SHOW_VIEWS,
    card_names,
    check_card_name,
    follows_note,
    load_card,
    register_target,
)
from console.tui.widgets.inspect.registers import register_field
from machine.events import EventLog
from machine.images import built_programs
from machine.kdump import KDUMP_CHECKS
from machine.sadump import CHECKS as DUMPER_CHECKS
from machine.zipl_kdump import CHECKS as LOADER_CHECKS
from tests.test_tui_app import make_app, pilot_test, until

STAGES = WORKFLOW_STAGES + ("ipl", "boot", "workload", "workload-filled", "kexec-load", "hang",
                            "panic", "zipl", "zgetdump")
CHECKS = (*DUMPER_CHECKS.values(), *KDUMP_CHECKS.values(), *LOADER_CHECKS.values(), "os_info checksum",
          "purgatory checksum", "segment 1 (elfcorehdr) SHA-256")
FLOW = ("activate", "load 0100", "wait-for event kexec timeout=30s", "stop all", "restart 0")


@pytest.mark.parametrize("name", STAGES + tuple(check_card_name(c) for c in CHECKS))
def test_every_stage_and_check_has_a_card_whose_places_exist(name: str) -> None:
    card = load_card(name)
    assert card is not None, f"no card console/tui/help/stages/{name}.md"
    assert card.markdown.startswith("# ")
    programs = built_programs()
    for show in card.shows:
        assert show.view in SHOW_VIEWS
        program, _, symbol = show.target.rpartition(":")
        if show.view == "registers":
            target = register_target(show)
            assert target is not None, show
            assert not target[1] or register_field(target[1]) is not None, show
        elif follows_note(show):
            continue
        elif re.fullmatch(r"0x[0-9a-f]+", show.target) is None:
            assert symbol in programs[program or "kernel"].symbols, show


def test_no_card_without_a_stage_or_check() -> None:
    known = set(STAGES) | {check_card_name(c) for c in CHECKS}
    assert set(card_names()) - known == set()


def _digest(log: EventLog) -> str:
    path = [e for e in log.events if e.kind == "dump_written"][-1].path
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pilot_test
async def test_the_console_stops_at_each_stage_with_its_card(tmp_path: Path) -> None:
    with Session(tmp_path / "plain", "production", {"cpus": 2}) as session:
        log = EventLog(session.bus)
        for line in (*FLOW, "wait-for event dump_written timeout=30s"):
            assert session.execute(line).ok, line
        expected = _digest(log)
    app, log = make_app(tmp_path / "console", profile="production")
    app.session.execute("stage-stop on")
    async with app.run_test(size=(120, 40)) as pilot:
        for line in FLOW:
            app.submit(line)
        await until(pilot, lambda: len(app.session.history) >= len(FLOW) + 1, "the flow")
        app.runner.set_running(True)
        cards = []
        written = lambda: any(e.kind == "dump_written" for e in log.events)
        while True:
            await until(pilot, lambda: isinstance(app.screen, StageCard) or written(), "a card")
            await pilot.pause(0.3)  # the stops of the vmcore's slice come with it
            shown = app.screen
            if not isinstance(shown, StageCard):
                break
            cards.append(shown.card.name)
            await pilot.press("enter")
            await until(pilot, lambda s=shown: app.screen is not s, "the card closed")
        app.runner.set_running(False)
    assert cards == ["purgatory-verify", "crash-kexec", "purgatory-load", "notes", "swap",
                     "kdump-boot", "vmcore"]
    assert _digest(log) == expected


@pilot_test
async def test_r_on_the_timeline_rewinds_and_the_timeline_forgets_what_came_after(
        tmp_path: Path) -> None:
    from console.tui.widgets.workflow.timeline import StageList

    app, _ = make_app(tmp_path, profile="production")
    async with app.run_test(size=(120, 40)) as pilot:
        for line in (*FLOW, "wait-for event dump_written timeout=30s"):
            app.submit(line)
        await until(pilot, lambda: len(app.session.history) >= len(FLOW) + 1, "the flow")
        await until(pilot, lambda: app.main.timeline.stage("vmcore").status == "done", "vmcore")
        app.main.show_tab("tab-workflow")  # showing it highlights the latest stage
        await pilot.pause(0.5)
        stages = app.main.query_one(StageList)
        stages.highlighted = [stages.get_option_at_index(i).id
                              for i in range(stages.option_count)].index("swap")
        await pilot.pause()
        await pilot.press("r")
        await until(pilot, lambda: len(app.session.history) >= len(FLOW) + 2, "the rewind")
        assert app.session.history[-1].text == "rewind swap"
        assert app.session.history[-1].result.ok
        await until(pilot, lambda: app.main.timeline.stage("vmcore").status == "pending",
                    "vmcore forgotten")
        assert app.main.timeline.stage("swap").status != "pending"


@pilot_test
async def test_show_me_moves_the_storage_view_to_the_place(tmp_path: Path) -> None:
    from console.tui.screens.stage_card import StageCard as Card_

    app, _ = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        app.submit("activate")
        await until(pilot, lambda: len(app.session.history) >= 1, "activate")
        card = load_card("swap")
        assert card is not None and card.shows[0].target == "0x10418"
        app.push_screen(Card_(card), lambda choice: app._card_done(card, choice))
        await until(pilot, lambda: isinstance(app.screen, Card_), "the card")
        await pilot.press("1")
        await until(pilot, lambda: app.main.active_tab == "tab-storage", "the storage view")
        assert not isinstance(app.screen, Card_)
