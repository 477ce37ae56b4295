"""The DumpLab console: a Textual HMC for the emulated LPAR.

The app is thin: it starts the machine thread (console/control/runner.py) with a Session, routes
what the thread posts (frames, event batches, command outcomes) to the main screen, and owns
the keys that control the simulation itself (run/hold, step, next stage, speed). Everything
the operator does becomes a command line for the command layer.
"""

from __future__ import annotations

import gc
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from textual import events, on, work
from textual.app import App
from textual.binding import Binding, BindingType

from console.control.exits import EXIT_OK, EXIT_SOFTWARE
from console.control.runner import DEFAULT_SPEED, SPEEDS, Runner
from console.control.session import Session
from console.tui.bridge import CommandDone, EventsArrived, FrameReady, GoToAddress, RunnerBridge
from console.tui.crash import CrashGuard, guard_dispatch, install_width_guard
from console.tui.screens.dialogs import CommandPrompt, HelpScreen, OpenDumpScreen
from console.tui.screens.main import MainScreen
from console.tui.screens.palette import DumpLabCommands
from console.tui.screens.stage_card import StageCard
from console.tui.stagecards import (
    Card,
    Show,
    follows_note,
    load_card,
    register_target,
    show_address,
)
from console.tui.widgets.command_line import CommandHistory
from console.tui.widgets.dump.model import DumpOpenError, open_dump_file
from console.tui.widgets.dump.viewer import DumpViewer
from console.tui.widgets.workflow.progress import stage_progress

HELP_DIR = Path(__file__).resolve().parent / "help"
log = logging.getLogger("dumplab.console")
NEXT_STAGE_TIMEOUT = "10s"
# Python's full (generation 2) garbage collections stop every thread for a tenth of a second
# and more on a busy host, keys included. The console runs them itself: every
# QUIET_COLLECT_S when no key came for KEYS_QUIET_S, and at the latest after FORCED_COLLECT_S.
QUIET_COLLECT_S = 5.0
KEYS_QUIET_S = 1.0
FORCED_COLLECT_S = 60.0
# A full collection takes 30-60 ms here, more on a loaded host: the next one waits at least
# this many times as long, so that the collector takes at most 5% of the UI thread.
COLLECT_SPACING = 20
NO_AUTOMATIC_FULL_COLLECTION = 1 << 30  # gc threshold 2: never reached


def help_markdown(topic: str) -> str:
    """The help text of a topic (console/tui/help/TOPIC.md), with the keys page after it."""
    texts = []
    for name in dict.fromkeys((topic, "keys")):
        try:
            texts.append((HELP_DIR / f"{name}.md").read_text(encoding="utf-8"))
        except OSError:
            continue
    return "\n\n---\n\n".join(texts) or "# Help\n\nNo help for this part yet."


class DumpLabApp(App[None]):
    """The operator console."""

    TITLE = "DumpLab HMC"
    CSS_PATH = "dumplab.tcss"
    COMMANDS: ClassVar[set[Any]] = App.COMMANDS | {DumpLabCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f1", "help", "Help", id="app.help", tooltip="Help for the focused part"),
        Binding("f2", "tasks", "Tasks", id="app.tasks", tooltip="Show and focus the tasks pad"),
        Binding("f5", "run_pause", "Run/Hold", id="app.run-pause",
                tooltip="Let the machine run, or hold it"),
        Binding("f6", "step", "Step", id="app.step",
                tooltip="Hold, then execute one instruction on the selected CPU"),
        Binding("f7", "next_stage", "Next stage", id="app.next-stage",
                tooltip="Hold, then run until the next workflow stage"),
        Binding("f8", "speed", "Speed", id="app.speed", tooltip="Cycle the speed"),
        Binding("colon", "command_line('')", "Command", show=False, id="app.command"),
        Binding("b", "command_line('break ')", "Breakpoint", show=False, id="app.breakpoint"),
        Binding("v", "open_dump", "Open dump", show=False, id="app.open-dump"),
        Binding("ctrl+q", "quit", "Quit", id="app.quit", priority=True),
    ]

    def __init__(self, workdir: Path, *, profile: str = "default",
                 overrides: dict[str, Any] | None = None, running: bool = True,
                 speed: str = DEFAULT_SPEED, lpar_name: str = "DUMPLAB1") -> None:
        super().__init__()
        self.workdir = Path(workdir)
        self.session = Session(self.workdir, profile, overrides)
        bridge = RunnerBridge(self)
        self.runner = Runner(self.session, on_frame=bridge.frame, on_events=bridge.events,
                             on_outcome=bridge.outcome, running=running, speed=speed)
        self.main = MainScreen(lpar_name)
        self.prompt_history = CommandHistory()
        self._log_handler: logging.Handler | None = None
        self._cards: list[Card] = []  # stage cards waiting to be shown
        self.crashes = CrashGuard(self.workdir)
        install_width_guard()
        self._crashed = False
        self._gc_threshold: tuple[int, int, int] | None = None  # while the console runs gc
        self._last_key = self._last_full_collection = 0.0
        self._full_collection_s = 0.0  # how long the last one took
        self.full_collections = 0
        guard_dispatch(self, self.contain)

    # -- life cycle ----------------------------------------------------------------------

    async def on_mount(self) -> None:
        self._start_log()
        await self.push_screen(self.main)
        self.main.update_probes()
        self._take_over_full_collections()
        self.runner.start()

    def _take_over_full_collections(self) -> None:
        """What exists now (modules, classes, the screen's widgets) lives as long as the
        console: out of the collector's sight (gc.freeze). Full collections of the rest run
        when the operator is not typing (see QUIET_COLLECT_S). One console per process
        does it (a second one in the same process, as in some tests, leaves it be)."""
        if gc.get_threshold()[2] == NO_AUTOMATIC_FULL_COLLECTION:
            return
        self._gc_threshold = gc.get_threshold()
        gc.freeze()
        young, middle, _old = self._gc_threshold
        gc.set_threshold(young, middle, NO_AUTOMATIC_FULL_COLLECTION)
        self._last_full_collection = time.monotonic()
        self.set_interval(QUIET_COLLECT_S, self._collect_when_quiet, name="quiet-gc")

    def _collect_when_quiet(self) -> None:
        now = time.monotonic()
        since = now - self._last_full_collection
        quiet = now - self._last_key >= KEYS_QUIET_S
        if (quiet and since >= COLLECT_SPACING * self._full_collection_s) \
                or since >= FORCED_COLLECT_S:
            gc.collect()
            self._last_full_collection = time.monotonic()
            self._full_collection_s = self._last_full_collection - now
            self.full_collections += 1

    def _give_back_full_collections(self) -> None:
        if self._gc_threshold is not None:
            gc.set_threshold(*self._gc_threshold)
            gc.unfreeze()
            self._gc_threshold = None

    def post_message(self, message: Any) -> bool:
        """An operator's key, as soon as it reaches the app's queue (frames may be queued
        before it): the machine starts no new slice for a moment (runner.GIVE_WAY_S), so
        that the UI has the CPU to draw what the key did."""
        if isinstance(message, events.Key) and not message.is_forwarded:  # not on its way back
            self.runner.give_way()
            self._last_key = time.monotonic()
        return super().post_message(message)

    def on_unmount(self) -> None:
        self.runner.stop()
        self._give_back_full_collections()
        if self._log_handler is not None:
            logging.getLogger("dumplab.console").removeHandler(self._log_handler)

    def _start_log(self) -> None:
        """Internal errors go to a log file in the work directory, never to the screen."""
        try:
            self.workdir.mkdir(parents=True, exist_ok=True)
            handler = logging.FileHandler(self.workdir / "console.log", encoding="utf-8")
        except OSError:
            return
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logging.getLogger("dumplab.console").addHandler(handler)
        self._log_handler = handler

    # -- from the machine thread ---------------------------------------------------------

    @on(FrameReady)
    def _frame(self, message: FrameReady) -> None:
        self._guarded(self.main.show_frame, message.frame)

    @on(EventsArrived)
    def _events(self, message: EventsArrived) -> None:
        self._guarded(self.main.feed_events, message.events)

    @on(EventsArrived)
    def _stage_stops(self, message: EventsArrived) -> None:
        """A stage stop held the machine: show the card of each stage that began, in turn
        (console/tui/stagecards.py)."""
        cards = [load_card(e.stage) for e in message.events if e.kind == "stage_stop"]
        self._cards.extend(card for card in cards if card is not None)
        if isinstance(self.screen, StageCard):
            self.screen.show_progress(self._card_progress(self.screen.card))
        elif self._cards:
            self._next_card()

    def _card_progress(self, card: Card) -> list[Any]:
        return stage_progress(self.main.timeline.find(card.name))

    def _next_card(self) -> None:
        card = self._cards.pop(0)
        self.push_screen(StageCard(card, self._card_progress(card)),
                         lambda choice: self._card_done(card, choice))

    def _card_done(self, card: Card, choice: str | None) -> None:
        if choice == "continue" and self._cards:
            self._next_card()  # another stage began in the same slice
        elif choice == "continue":
            self.runner.set_running(True)
        elif choice == "run-on":
            self._cards.clear()
            self.submit("stage-stop off", "card")
            self.runner.set_running(True)
        elif choice and choice.startswith("show:"):
            # After the card is gone: its screen gives the focus back as it goes, and the
            # view shown must keep it (Home in the Code view, w in Storage).
            self.call_after_refresh(self._show_me, card.shows[int(choice[5:])])

    def _show_me(self, show: Show) -> None:
        """A card's "Show me" moves the Storage, Code or Registers view to the place (the
        machine stays held: F7 goes on to the next stage)."""
        address = show_address(show)
        registers = register_target(show)
        if address is not None:
            self.main.post_message(GoToAddress(address))
        elif follows_note(show):
            self.main.follow_notes(True)
        elif show.view == "code":
            self.main.show_code_at(show.target)
        elif registers is not None:
            self.main.show_registers(*registers)
        else:
            self.submit(show.command, "card")

    @on(CommandDone)
    def _done(self, message: CommandDone) -> None:
        self._guarded(self.main.show_outcome, message.outcome)

    def _guarded(self, show: Callable[[Any], None], what: Any) -> None:
        """Draw what the machine sent; a bug in a view is logged and said in one line, and
        the console goes on (the operator's machine must not die with the screen)."""
        if not self.main.is_attached:  # quitting: a late message for a screen now gone
            return
        try:
            show(what)
        except Exception as error:  # noqa: BLE001 - contained: logged with its traceback
            self.contain(error, f"showing {type(what).__name__}")

    # -- crash containment (console/tui/crash.py) -----------------------------------------

    def _register(self, parent: Any, *widgets: Any, **kwargs: Any) -> Any:
        for widget in widgets:  # every widget's handlers, Textual's own included
            guard_dispatch(widget, self.contain)
        return super()._register(parent, *widgets, **kwargs)

    def _handle_exception(self, error: Exception) -> None:
        """What Textual reports itself (layout, rendering, workers): contained the same way,
        instead of Textual's traceback over the screen and exit."""
        self.contain(error, "Textual")

    def contain(self, error: BaseException, where: str) -> None:
        """Log an internal error, say it in one line, go on; or stop with status 70 when the
        console cannot go on (not started yet, or a crash loop)."""
        if self._crashed:
            return
        goes_on = self.crashes.record(error, where) and self.main.is_attached
        if not goes_on:
            self._crashed = True
            self.crashes.write("the console cannot go on: it stops with status 70\n")
            self.exit(return_code=EXIT_SOFTWARE)
            return
        try:
            self.main.report_internal_error(self.crashes.one_line(error))
        except Exception:  # noqa: BLE001, S110 - the report must not fail the containment
            pass

    def run_console(self) -> int:
        """Run until the operator quits: 0, or 70 after one line naming console.log if the
        console could not go on."""
        try:
            self.run()
        except Exception as error:  # noqa: BLE001 - whatever escaped Textual: log, one line
            self.crashes.record(error, "the console app")
            self._crashed = True
        if self._crashed or self.return_code == EXIT_SOFTWARE:
            sys.stderr.write(self.crashes.fatal_line())
            return EXIT_SOFTWARE
        return EXIT_OK

    # -- commands ------------------------------------------------------------------------

    def submit(self, line: str, source: str = "operator") -> int:
        """Send a command line to the machine thread (the command layer runs it)."""
        return self.runner.submit(line, source)

    def show_tab(self, tab: str) -> None:
        self.main.show_tab(tab)

    def set_speed(self, name: str) -> None:
        self.runner.set_speed(name)
        speed = self.runner.speed
        self.main.acknowledge(f"Speed: {speed.label}", "info")

    # -- simulation keys -----------------------------------------------------------------

    def action_run_pause(self) -> None:
        running = not self.runner.running
        self.runner.set_running(running)
        self.main.acknowledge("Machine running: virtual time advances." if running else
                              "Machine held: nothing runs until F5 (commands still do).", "info")

    def action_step(self) -> None:
        self.runner.set_running(False)
        self.submit(f"step 1 cpu={self.main.selected_cpu}")

    def action_next_stage(self) -> None:
        self.runner.set_running(False)
        self.submit(f"wait-for event stage timeout={NEXT_STAGE_TIMEOUT}")

    def action_speed(self) -> None:
        names = [speed.name for speed in SPEEDS]
        current = names.index(self.runner.speed.name)
        self.set_speed(names[(current + 1) % len(names)])

    def action_command_line(self, initial: str = "") -> None:
        def typed(line: str | None) -> None:
            if line:
                self.submit(line, "prompt")
        self.push_screen(CommandPrompt(self.prompt_history, initial, self.prompt_accepts),
                         typed)

    def prompt_accepts(self, line: str) -> bool:
        """Whether the app takes `line` itself rather than the command layer (labs do)."""
        return False

    def action_tasks(self) -> None:
        self.main.toggle_class("-show-tasks") if self.focused is self.main.query_one("#tasks") \
            else self.main.add_class("-show-tasks")
        self.main.query_one("#tasks").focus()

    def action_help(self) -> None:
        self.push_screen(HelpScreen(help_markdown(self._help_topic())))

    def _help_topic(self) -> str:
        node = self.focused
        while node is not None:
            topic = getattr(node, "HELP_TOPIC", None)
            if topic:
                return topic
            node = node.parent  # type: ignore[assignment]
        return getattr(self.screen, "HELP_TOPIC", "main")

    # -- the dump viewer -----------------------------------------------------------------

    def action_open_dump(self) -> None:
        dumps = self.workdir / "dumps"
        root = dumps if dumps.is_dir() else self.workdir
        if not root.is_dir():
            root = Path.cwd()
        newest = Path(self.main.dumps[-1].path) if self.main.dumps else None
        self.push_screen(OpenDumpScreen(root, newest), self.open_dump)

    def open_dump(self, path: Path | None) -> None:
        if path is not None:
            self._read_dump(path)

    @work(thread=True, exclusive=True, group="dump")
    def _read_dump(self, path: Path) -> None:
        """Read a dump's headers in a thread: a big or slow file never blocks the UI."""
        try:
            opened = open_dump_file(path)
        except DumpOpenError as error:
            self.call_from_thread(self.main.acknowledge, str(error), "refused")
            return
        self.call_from_thread(self._show_dump, opened)

    def _show_dump(self, opened: Any) -> None:
        frame = self.main.frame
        written = {record.path for record in self.main.dumps}
        same_run = str(opened.path) in written or str(opened.path.resolve()) in written
        snapshot = frame.pre_dump if frame is not None and same_run else None
        self.main.query_one(DumpViewer).show_dump(opened, snapshot)
        self.main.show_tab("tab-dump")
        self.main.acknowledge(f"Opened {opened.title()}", "ok")

