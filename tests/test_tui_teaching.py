"""Teaching mode's watchable detail in the console (issue 13): the purgatory's hashing per
segment and the swap's bar in the stage detail and on the stage card (from events, synthetic
here, so that the swap's future events are covered too), at 80x24; and on a real kdump flow
with stage stops, "Show me" moves the Code view to the purgatory's entry, the Registers view
to the CPU and register, and the Storage view follows the note being filled, with the bytes
written since the notes stage began marked."""

from __future__ import annotations

from pathlib import Path

from console.tui.bridge import EventsArrived
from console.tui.screens.stage_card import StageCard
from console.tui.stagecards import load_card
from console.tui.widgets.inspect.disasm import CodeWindow, DisassemblyView
from console.tui.widgets.inspect.registers import RegistersView
from console.tui.widgets.inspect.storage import HexView
from console.tui.widgets.workflow.timeline import StageList
from machine.events import CheckEvent, SegmentProgressEvent, StageEvent, SwapProgressEvent
from tests.test_tui_app import kinds, make_app, pilot_test, until

KDUMP_KERNEL = [SegmentProgressEvent(t=10 + i, cpu=0, index=0, name="kdump kernel",
                                     done=done, total=49152)
                for i, done in enumerate((0, 16384, 32768, 49152))]
DIGEST = "e5d00deda444fcda934f38501babe1bc75ca6a3e6cbb237ce8289f660bb94167"


def _text(app, selector: str) -> str:
    return str(app.screen.query_one(selector).render())


def _select(app, stage: str) -> None:
    stages = app.main.query_one(StageList)
    stages.highlighted = [stages.get_option_at_index(i).id
                          for i in range(stages.option_count)].index(stage)


@pilot_test
async def test_progress_lines_and_the_swap_bar_show_at_80x24(tmp_path: Path) -> None:
    app, _ = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        verify = StageEvent(t=5, cpu=0, stage="purgatory-verify", status="running")
        app.main.feed_events((verify, *KDUMP_KERNEL[:2]))
        app.main.show_tab("tab-workflow")
        await pilot.pause()
        _select(app, "purgatory-verify")
        await pilot.pause()
        detail = _text(app, "#stage-text")
        assert "▶ segment 0 kdump kernel [████" in detail and "16.0/48.0 KiB" in detail
        assert DIGEST[:16] not in detail  # no digests before the segment's check
        check = CheckEvent(t=20, cpu=0, what="segment 0 (kdump kernel) SHA-256", expected=DIGEST,
                           computed=DIGEST, ok=True, guest_ok=True, guest_computed=DIGEST)
        app.main.feed_events((*KDUMP_KERNEL[2:], check))
        await pilot.pause()
        detail = _text(app, "#stage-text")
        assert "✔ segment 0 kdump kernel [████████████] 48.0/48.0 KiB" in detail
        assert f"expected {DIGEST[:16]}… computed {DIGEST[:16]}…" in detail
        # The swap: its state while no progress comes, then the bar, on its card as well.
        swap = StageEvent(t=30, cpu=0, stage="swap", status="running")
        app.main.feed_events((swap,))
        app._cards.append(load_card("swap"))
        app._next_card()
        await until(pilot, lambda: isinstance(app.screen, StageCard), "the swap card")
        assert "exchanged: running (no progress reported)" in _text(app, "#card-progress")
        app.post_message(EventsArrived((SwapProgressEvent(t=31, cpu=0, done=8 << 20,
                                                          total=32 << 20),)))
        await until(pilot, lambda: "8.0 of 32.0 MiB" in _text(app, "#card-progress"), "the bar")
        assert "exchanged [███         ] 8.0 of 32.0 MiB" in _text(app, "#card-progress")
        await pilot.press("escape")
        _select(app, "swap")
        await pilot.pause()
        assert "exchanged [███         ] 8.0 of 32.0 MiB" in _text(app, "#stage-text")


async def _next_card(pilot, app, name: str) -> StageCard:
    app.runner.set_running(True)
    await until(pilot, lambda: isinstance(app.screen, StageCard), f"the {name} card", 30)
    card = app.screen
    assert card.card.name == name
    return card


@pilot_test
async def test_show_me_moves_code_registers_and_follows_the_note(tmp_path: Path) -> None:
    app, log = make_app(tmp_path, profile="production")
    app.session.execute("stage-stop purgatory-verify,purgatory-load,notes,swap")
    async with app.run_test(size=(80, 24)) as pilot:
        for line in ("activate", "load 0100", "wait-for event kexec timeout=30s", "stop all",
                     "restart 0"):
            app.submit(line)
        await until(pilot, lambda: len(app.session.history) >= 5, "the flow", 30)
        await _next_card(pilot, app, "purgatory-verify")
        lpar = app.session.lpar
        entry = lpar.code_address("purgatory:purgatory_main")
        await pilot.press("1")  # the purgatory's entry, in the Code view
        code = app.main.query_one(DisassemblyView)
        shown = lambda: app.main.frame and isinstance(app.main.frame.probes.get("code"), CodeWindow)
        await until(pilot, lambda: app.main.active_tab == "tab-code" and shown(), "the code")
        await until(pilot, lambda: app.main.frame.probes["code"].target is not None, "the target")
        assert app.main.frame.probes["code"].target[0] == entry
        await until(pilot, lambda: f"→ {entry:08x}" in str(code._body.render()), "the → line")
        await pilot.press("home")  # back to the PSW
        await until(pilot, lambda: app.main.frame.probes["code"].target is None, "the PSW")

        await _next_card(pilot, app, "purgatory-load")
        await pilot.press("2")  # CPU 0's PSW, in the Registers view
        registers = app.main.query_one(RegistersView)
        await until(pilot, lambda: app.main.active_tab == "tab-registers", "the registers")
        assert registers.focus_field == "psw_addr" and app.main.selected_cpu == 0
        psw = f"{lpar.cpus[0].psw[1]:016x}"
        await until(pilot, lambda: f"▸{psw}" in str(registers._body.render()), "the marked PSW")

        hex_view = app.main.query_one(HexView)
        header = [e for e in kinds(log, "segment_progress") if e.name == "elfcorehdr"][-1]
        # The header as verified is the notes stage's starting point (read while held here).
        await until(pilot, lambda: hex_view.baseline is not None, "the header as verified")
        assert hex_view.baseline[0] == header.address
        assert hex_view.baseline[1] == lpar.read(header.address, header.total)

        await _next_card(pilot, app, "notes")
        await pilot.press("1")  # follow the note being filled
        await until(pilot, lambda: app.main.active_tab == "tab-storage", "the storage view")
        last = kinds(log, "notes_saved")[-1]
        # Both CPUs' notes were written in the slice the stage began in: the last one shows.
        assert last.pid == 2 and header.address < last.address < header.address + header.total
        await until(pilot, lambda: hex_view.address == last.address & ~15, "the last note")
        base = hex_view._base(last.address, 16)
        now = lpar.read(last.address, 16)
        assert base is not None and base != now  # written in this stage: marked
        rendered = hex_view.render()
        assert f"{last.address & ~15:08x}" in str(rendered)
        marked = [span for span in rendered.spans if "underline" in str(span.style)]
        assert marked, "the bytes written in the notes stage are marked"
        await _next_card(pilot, app, "swap")
        # The kdump kernel's head reports the swap every MiB: the card's bar says how far the
        # last report got.
        swapped = kinds(log, "swap_progress")
        assert swapped and swapped[-1].done <= swapped[-1].total
        card = _text(app, "#card-progress")
        assert "exchanged [" in card
        assert f"{swapped[-1].done / (1 << 20):.1f} of {swapped[-1].total / (1 << 20):.1f} MiB" in card
