"""What keeps a key's answer quick while the machine runs (issue 10; the figures are in
bench/bench_tui_pty.py). These tests count, they do not time:

- after an operator's key the machine thread starts no new slice for a moment (it gives the
  UI the CPU and the GIL), and the virtual time it reaches is the same as without;
- while the console runs, Python's full garbage collections are the console's: objects that
  exist at start are frozen out of them, and they run when no key came for a moment;
- switching views does not rebuild the key bar: F4 Hold stays in it, dimmed away from Messages.
"""

from __future__ import annotations

import gc
import threading
import time
from pathlib import Path

from test_tui_app import make_app, pilot_test, until

from console.control.runner import Runner
from console.control.session import Session
from console.tui import app as console_app
from console.tui.widgets.footer import SteadyFooter

BOOT = ("activate", "load 0100")


def busy_runner(workdir: Path) -> tuple[Runner, threading.Event]:
    """A runner letting a booted 2-CPU LPAR run, as the console does."""
    done = threading.Event()
    runner = Runner(Session(workdir, overrides={"cpus": 2}), running=True, speed="max",
                    on_outcome=lambda outcome: done.set() if outcome.line == BOOT[-1] else None)
    runner.start()
    for line in BOOT:
        runner.submit(line)
    assert done.wait(30), "the LPAR did not boot"
    return runner, done


def turned(runner: Runner) -> None:
    """Wait until the worker has gone round its loop (it ran a call we queued)."""
    ran = threading.Event()
    runner.call(lambda session: ran.set())
    assert ran.wait(10), "the worker did not turn"


def slices_after(runner: Runner, count: int, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while runner.slices < count and time.monotonic() < deadline:
        time.sleep(0.005)
    return runner.slices


def test_giving_way_starts_no_slice_until_it_ends(tmp_path: Path) -> None:
    runner, _ = busy_runner(tmp_path)
    try:
        assert slices_after(runner, 3) >= 3  # it runs
        runner.give_way(60.0)
        turned(runner)  # a slice begun before give_way has ended by now
        before = runner.slices
        for _ in range(5):
            turned(runner)
        assert runner.slices == before
        runner.give_way(0.0)
        runner.call(lambda session: None)  # wake it up
        assert slices_after(runner, before + 3) >= before + 3
    finally:
        runner.stop()


def test_giving_way_does_not_change_the_virtual_time_a_slice_reaches(tmp_path: Path) -> None:
    """Slices stay whole: a run that gave way ends at a multiple of the slice length from
    where it started, as a journal's replay would run it."""
    runner, _ = busy_runner(tmp_path)
    try:
        turned(runner)
        runner.set_running(False)
        turned(runner)
        start = runner.session.now()
        runner.give_way(0.05)
        runner.set_running(True)
        slices_after(runner, runner.slices + 5)
        runner.set_running(False)
        turned(runner)
        moved = runner.session.now() - start
        assert moved > 0 and moved % runner._slice_ns() == 0
    finally:
        runner.stop()


@pilot_test
async def test_every_key_makes_the_machine_give_way(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    given: list[float] = []
    app, _log = make_app(tmp_path, running=True)
    monkeypatch.setattr(app.runner, "give_way", lambda seconds=0.2: given.append(seconds))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("escape", "2", "1", "2")
        assert len(given) == 4
        assert app.screen is app.main and app.main.active_tab == "tab-hardware"


@pilot_test
async def test_full_collections_are_the_consoles_while_it_runs(tmp_path: Path) -> None:
    threshold = gc.get_threshold()
    app, _log = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.runner.alive, "the machine thread")
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold()[2] == console_app.NO_AUTOMATIC_FULL_COLLECTION
        assert gc.get_threshold()[:2] == threshold[:2]
        # A key just now: no collection yet (unless the last one is long ago).
        await pilot.press("escape")
        app._collect_when_quiet()
        assert app.full_collections == 0
        # No key for a while: collected.
        app._last_key -= console_app.KEYS_QUIET_S
        app._collect_when_quiet()
        assert app.full_collections == 1
        # Not again before 20 times as long as the last one took, even when quiet.
        app._full_collection_s = 10.0
        app._collect_when_quiet()
        assert app.full_collections == 1
        # Typing for ever does not put it off for ever.
        app._last_key = time.monotonic()
        app._last_full_collection -= console_app.FORCED_COLLECT_S
        app._collect_when_quiet()
        assert app.full_collections == 2
    assert gc.get_threshold() == threshold
    assert gc.get_freeze_count() == 0


@pilot_test
async def test_a_second_console_in_the_process_leaves_the_collector_be(tmp_path: Path) -> None:
    """Another console of the same process has taken the collections over: this one
    neither freezes nor gives back what it did not take."""
    threshold = gc.get_threshold()
    taken = (threshold[0], threshold[1], console_app.NO_AUTOMATIC_FULL_COLLECTION)
    gc.set_threshold(*taken)
    try:
        app, _log = make_app(tmp_path)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: app.runner.alive, "the machine thread")
            assert gc.get_freeze_count() == 0
        assert gc.get_threshold() == taken
    finally:
        gc.set_threshold(*threshold)


@pilot_test
async def test_switching_views_keeps_the_key_bar_and_dims_hold_away_from_messages(
        tmp_path: Path) -> None:
    app, _ = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        footer = app.main.query_one(SteadyFooter)
        await pilot.press("1")
        await until(pilot, lambda: app.main.active_tab == "tab-messages", "the Messages view")
        await pilot.pause(0.2)
        built = [id(key) for key in footer.children]

        def hold_dimmed() -> bool:
            return next(key for key in footer.children if getattr(key, "key", "") == "f4") \
                .has_class("-disabled")

        assert not hold_dimmed()
        for view, tab, dimmed in (("2", "tab-hardware", True), ("1", "tab-messages", False)) * 3:
            await pilot.press(view)
            await until(pilot, lambda tab=tab: app.main.active_tab == tab, tab)
            await until(pilot, lambda dimmed=dimmed: hold_dimmed() == dimmed,
                        f"F4 {'dim' if dimmed else 'lit'}")
            assert [id(key) for key in footer.children] == built  # the same keys, not rebuilt
        hold = app.main.query_one("#messages-hold")
        await pilot.press("f4")  # on Messages, F4 still holds
        await until(pilot, lambda: hold.value, "Hold on")
        await pilot.press("2", "f4")  # dimmed elsewhere: nothing happens
        await pilot.pause(0.2)
        assert hold.value
