"""Demos in the console: `dumplab demo NAME` and `dumplab demo NAME --screenshots DIR`.

A demo (console/training/demos.py) plays on the HMC screen as an operator would see it: a caption bar
above the acknowledgement line says what the step shows, and every command goes to the
machine thread through the command layer (`DumpLabApp.submit`, so the session's history has
each one), the lab commands (`dumps`, `vmcore`, `rd`) to the same thread through
`Runner.call`. The demo's pacing and pauses are waited out between commands (scaled by
`pace`; 0 plays at once); space pauses, n skips the wait, q or Esc stops the demo and leaves
the console to the operator.

The machine is held while the demo plays: only its commands advance it, exactly as in the
headless player, so a `wait-for` finds the event it waits for and every run is the same.

Screenshots run the demo headless at a fixed size without pauses. A bus subscriber in the
machine thread (`StageGate`) hands the events to the screen in batches cut at each stage
event and waits there until the SVG is taken, so each picture shows its own stage.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import re
import sys
import tempfile
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TextIO

from textual import on
from textual.binding import Binding, BindingType
from textual.content import Content
from textual.widgets import Static

from console.control.commands import CommandResult
from console.control.journal import HOST_FIELDS, WORKDIR_TOKEN
from console.control.runner import Frame, Outcome
from console.control.session import Session
from console.training import labtools
from console.training.demos import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    Demo,
    DemoStep,
    step_failure,
    write_atomically,
)
from console.tui.app import DumpLabApp, help_markdown
from console.tui.bridge import CommandDone, EventsArrived, FrameReady
from console.tui.screens.dialogs import HelpScreen
from console.tui.terminal import NO_TERMINAL, needs_terminal
from console.tui.widgets.workflow.pane import WorkflowPane
from machine.events import Event, EventLog

log = logging.getLogger("dumplab.console")

SCREENSHOT_SIZE = (120, 40)
# How long the machine thread waits at a stage for its screenshot before it looks again
# whether the screenshots were given up.
GATE_POLL_S = 0.5
# How often a headless recording looks whether the console still runs.
ALIVE_POLL_S = 0.05
# Where a stage is best seen as it happens: Linux coming up in the OS messages; from the
# hang on, the timeline (the dumper and kdump say little on the console). An IPL says
# nothing by itself: the stage after it (boot, or the dumper) decides.
MESSAGE_STAGES = frozenset({"boot", "workload"})
QUIET_STAGES = frozenset({"ipl", "kexec-load", "kdump-load"})
# The simulation keys that would let the machine run between the demo's commands.
HELD_ACTIONS = frozenset({"run_pause", "step", "next_stage"})
DEMO_ACTIONS = frozenset({"demo_pause", "demo_next", "demo_stop"})


def tab_for_stage(stage: str) -> str | None:
    """The view that shows a stage best while the demo plays (None: stay)."""
    if stage in MESSAGE_STAGES:
        return "tab-messages"
    return None if stage in QUIET_STAGES else "tab-workflow"


def stage_label(event: Event) -> str:
    """`checks: failed`, as the recordings' markers name a stage event."""
    return f"{getattr(event, 'stage', '')}: {getattr(event, 'status', '')}"


def machine_only(event: Event, workdir: Path) -> Event:
    """`event` without what measures or names the host (for recordings): a dump's write
    time (the journal's HOST_FIELDS) is left out, and a path in the work directory is
    shown from `$WORKDIR`, as journals show it."""
    changes: dict[str, Any] = {}
    for name in HOST_FIELDS.get(event.kind, ()):
        if hasattr(event, name):
            changes[name] = None
    path = getattr(event, "path", None)
    if isinstance(path, str) and path.startswith(f"{workdir}{os.sep}"):
        changes["path"] = WORKDIR_TOKEN + path[len(str(workdir)):]
    return dataclasses.replace(event, **changes) if changes else event


class DemoStopped(Exception):
    """The operator stopped the demo."""


# --------------------------------------------------------------------------------------------
# The caption bar


class CaptionBar(Static, can_focus=True):
    """The demo's caption, its progress and state, and the keys that control it."""

    HELP_TOPIC = "demo"
    MARKS: ClassVar[dict[str, tuple[str, str]]] = {
        "playing": ("▶", "$accent"), "paused": ("⏸", "$warning"),
        "finished": ("✔", "$success"), "stopped": ("■", "$warning"),
        "failed": ("✘", "$error"),
    }
    KEYS: ClassVar[dict[str, str]] = {
        "playing": "space pause · n next · q stop",
        "paused": "space resume · n next · q stop",
    }

    def show(self, state: str, where: str, caption: str, doing: str) -> None:
        mark, colour = self.MARKS[state]
        keys = self.KEYS.get(state, "the console is yours")
        self.update(Content.from_markup(
            f"[bold {colour}]$mark $state[/] [dim]$where · $keys[/]\n[bold]$caption[/]\n$doing",
            mark=mark, state=state, where=where, keys=keys, caption=caption, doing=doing))


# --------------------------------------------------------------------------------------------
# The machine-thread side of screenshots


class StageGate:
    """A bus subscriber (machine thread) that keeps the events back and hands them over in
    batches, each ending at a stage event, waiting at each until its screenshot is taken."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[Event] = []
        self._released = threading.Event()
        self.deliver: Callable[[tuple[Event, ...], threading.Event], None] | None = None

    def __call__(self, event: Event) -> None:
        with self._lock:
            self._pending.append(event)
        deliver = self.deliver
        if event.kind != "stage" or deliver is None or self._released.is_set():
            return
        taken = threading.Event()
        deliver(self.take(), taken)
        while not taken.wait(GATE_POLL_S) and not self._released.is_set():
            pass

    def take(self) -> tuple[Event, ...]:
        """The events not handed over yet (any thread)."""
        with self._lock:
            events, self._pending = tuple(self._pending), []
        return events

    def release(self) -> None:
        """Never wait again (the screenshots are over, or given up)."""
        self._released.set()


# --------------------------------------------------------------------------------------------
# The player


Camera = Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class Shown:
    """One thing the demo showed, in order (what the tests look at)."""

    kind: str  # caption | command | result | stage
    text: str


class DemoDirector:
    """Plays a demo's steps in a DumpLabApp: captions in the bar, commands through the
    machine thread, the demo's waits scaled by `pace`. Runs on the app's event loop."""

    def __init__(self, app: DemoApp, demo: Demo, pace: float) -> None:
        self.app = app
        self.demo = demo
        self.pace = pace
        self.camera: Camera | None = None
        # A recording of the screen (console/tui/recording.py DemoFilm), told each thing shown.
        self.film: Any = None
        self.bar: CaptionBar | None = None
        self.playing = self.paused = self.stopped = self.finished = False
        self.failure: str | None = None
        self.shown: list[Shown] = []
        self.step = 0
        self._caption = ""
        self._doing = ""
        self._skip = False
        self._expected: int | None = None
        self._wake = asyncio.Event()
        self._inbox: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()

    # -- the app's side (UI thread) ------------------------------------------------------

    async def prepare(self) -> None:
        """Mount the caption bar on the HMC screen, and take the focus off the command line
        so that the demo's keys reach the demo."""
        self.bar = CaptionBar(id="demo-caption")
        await self.app.main.mount(self.bar, before="#ack")
        self.bar.focus()
        self._draw("playing")
        self.app.main.acknowledge(f"Demo: {self.demo.title} (space pauses, n skips the wait, "
                                  "q stops, F1 explains)", "info")

    def outcome_arrived(self, outcome: Outcome) -> None:
        # A "runner" outcome says the machine thread died: the command will not be answered.
        if self.playing and (outcome.ticket == self._expected or outcome.source == "runner"):
            self._inbox.put_nowait(("outcome", outcome))

    def stages_seen(self, stages: tuple[Event, ...]) -> None:
        """Stage events arrived on the screen while playing: follow them to their view."""
        if not self.playing:
            return
        self.shown += [Shown("stage", stage_label(event)) for event in stages]
        tab = tab_for_stage(getattr(stages[-1], "stage", ""))
        if tab is not None:
            self._show_tab(tab)

    def toggle_pause(self) -> None:
        self.paused = not self.paused
        self._wake.set()
        self._draw()

    def skip(self) -> None:
        self._skip, self.paused = True, False
        self._wake.set()
        self._draw()

    def stop(self) -> None:
        if not self.playing:
            return
        self.stopped = True
        self._wake.set()
        self._inbox.put_nowait(("stop",))
        if self._expected is not None:  # let a long wait-for end now
            self.app.runner.interrupt()

    # -- playing -------------------------------------------------------------------------

    async def play(self) -> bool:
        """Play every step; False when a command failed or the demo was stopped."""
        self.playing = True
        self.app.refresh_bindings()
        try:
            for number, step in enumerate(self.demo.steps, start=1):
                if not await self._play_step(number, step):
                    break
            else:
                self.finished = True
        except DemoStopped:
            pass
        finally:
            self.playing = False
            self._expected = None
            self._end()
        return self.finished

    async def _play_step(self, number: int, step: DemoStep) -> bool:
        self.step, self._caption, self._doing = number, step.caption, ""
        self.shown.append(Shown("caption", step.caption))
        self._draw()
        if self.film is not None:
            await self.film.step(number, step)
        await self._hold(self.demo.pacing["caption"])
        for line in step.commands:
            await self._hold(self.demo.pacing["command"])
            result = await self._command(line)
            if not result.ok:
                self.failure = step_failure(number, line, result.message)
                return False
        await self._hold(step.pause)
        return True

    async def _command(self, line: str) -> CommandResult:
        self.shown.append(Shown("command", line))
        self._doing = f"HMC> {line}"
        self._draw()
        operator = not labtools.tool_word(line)
        if not operator:
            self._expected = 0
            self.app.runner.call(self._tool_in_machine_thread(line))
        else:
            self._expected = self.app.submit(line, "demo")
        if self.film is not None:
            await self.film.command(line, operator)
        outcome = await self._next_outcome()
        self._expected = None
        result = outcome.result
        if labtools.tool_word(line) or self.app.recording:
            self.app.guarded(self.app.main.show_outcome, outcome)
        self.shown.append(Shown("result", result.message.partition("\n")[0]))
        if result.ok and "\n" in result.message:  # its output is in the Hardware Messages
            self._show_tab("tab-hardware")
        if self.film is not None:
            await self.film.result(result.message, operator)
        return result

    def _tool_in_machine_thread(self, line: str) -> Callable[[Session], None]:
        """A lab command for Runner.call: it reads the session's events and dump files in
        the machine thread, which owns them, and posts its outcome back."""
        loop, inbox = asyncio.get_running_loop(), self._inbox
        events = self.app.event_log.events

        def run(session: Session) -> None:
            context = labtools.ToolContext(session.workdir, list(events), host_times=False)
            try:
                result = labtools.run_tool(line, context)
            except Exception as error:  # a bug in a lab command must not hang the demo
                log.exception("lab command %r failed", line)
                result = CommandResult(False, f"internal error: {type(error).__name__}")
            loop.call_soon_threadsafe(inbox.put_nowait, ("outcome", Outcome(0, line, result,
                                                                            "demo")))
        return run

    async def _next_outcome(self) -> Outcome:
        """Wait for the command's outcome, taking the screenshots of the stages on the way."""
        while True:
            item = await self._inbox.get()
            if item[0] == "stop":
                raise DemoStopped
            if item[0] == "stage":
                await self._stage_shot(item[1], item[2])
            elif item[0] == "outcome":
                return item[1]

    async def _hold(self, seconds: float) -> None:
        """Wait out one of the demo's pauses: space freezes it, n ends it, q stops."""
        loop = asyncio.get_running_loop()
        if self.film is not None:  # a recording's clock is the demo's, whatever the pace
            self.film.wait(seconds)
        remaining = seconds * self.pace
        while True:
            if self.stopped:
                raise DemoStopped
            if self._skip:
                self._skip = False
                return
            if remaining <= 0 and not self.paused:
                return
            paused, started = self.paused, loop.time()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), None if paused else remaining)
            if not paused:
                remaining -= loop.time() - started

    # -- screenshots ---------------------------------------------------------------------

    def attach_gate(self, gate: StageGate) -> None:
        """Let the gate hand stage batches to this player (call on the app's loop)."""
        loop, inbox = asyncio.get_running_loop(), self._inbox

        def deliver(events: tuple[Event, ...], taken: threading.Event) -> None:
            loop.call_soon_threadsafe(inbox.put_nowait, ("stage", events, taken))
        gate.deliver = deliver

    async def _stage_shot(self, events: tuple[Event, ...], taken: threading.Event) -> None:
        try:
            self.app.feed(events)
            stage = events[-1]
            self.shown.append(Shown("stage", stage_label(stage)))
            self._show_tab("tab-workflow")
            if self.camera is not None:
                await self.camera(f"stage-{getattr(stage, 'stage', '')}-"
                                  f"{getattr(stage, 'status', '')}")
            if self.film is not None:
                await self.film.stage(events)
        finally:
            taken.set()

    # -- the screen ----------------------------------------------------------------------

    def _show_tab(self, tab: str) -> None:
        self.app.guarded(self._switch_to, tab)

    def _switch_to(self, tab: str) -> None:
        main = self.app.main
        if main.active_tab != tab:
            main.show_tab(tab)
        if tab == "tab-workflow":  # the stage that just changed, with its detail
            main.query_one(WorkflowPane).follow()

    def state(self) -> str:
        if self.playing:
            return "paused" if self.paused else "playing"
        if self.finished:
            return "finished"
        return "failed" if self.failure else "stopped"

    def _draw(self, state: str | None = None) -> None:
        if self.bar is None:
            return
        total = len(self.demo.steps)
        where = f"demo {self.demo.name}, step {self.step}/{total}" if self.step else \
            f"demo {self.demo.name}"
        doing = self._doing
        if self.failure:
            doing = f"✘ {self.failure}"
        self.bar.show(state or self.state(), where, self._caption or self.demo.title, doing)

    def _end(self) -> None:
        if not self.app.main.is_attached:  # the console is closing: nothing left to show
            return
        self.app.refresh_bindings()
        self._draw()
        main = self.app.main
        if self.finished:
            main.acknowledge("Demo finished: every command succeeded. The machine is held: "
                             "F5 lets it run.", "ok")
        elif self.failure:
            main.acknowledge(f"Demo failed at {self.failure}", "refused")
        else:
            main.acknowledge(f"Demo stopped at step {self.step}; the console is yours "
                             "(the machine is held: F5 lets it run).", "info")

    @property
    def exit_status(self) -> int:
        return EXIT_OK if self.finished else EXIT_FAILED


# --------------------------------------------------------------------------------------------
# The console with a demo in it


class DemoApp(DumpLabApp):
    """The operator console playing a demo; the machine is held (see the module docstring)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        # Priority: the HMC screen's own letter keys (n is Reset Normal) must not act while
        # the demo plays; check_action lets the keys through when it does not.
        Binding("space", "demo_pause", "Pause", id="demo.pause", priority=True,
                tooltip="Pause the demo, or resume it"),
        Binding("n", "demo_next", "Next", id="demo.next", priority=True,
                tooltip="End the current wait: the next command now"),
        Binding("q,escape", "demo_stop", "Stop demo", id="demo.stop", priority=True,
                tooltip="Stop the demo; the console stays, the machine held"),
    ]

    def __init__(self, demo: Demo, workdir: Path, *, pace: float = 1.0,
                 autoplay: bool = True, screenshots: bool = False,
                 recording: bool = False) -> None:
        super().__init__(workdir, overrides=dict(demo.profile), running=False)
        self.demo = demo
        self.autoplay = autoplay
        # A recording shows no host measure or host path, and no animation (whose frames
        # follow the host's clock), so that it is the same every time.
        self.recording = recording
        if recording:
            self.animation_level = "none"
        # In a recording the machine thread's frames (the status line) wait here until the
        # film shows the one that belongs to its picture (console/tui/recording.py), with
        # how many came after the last command's outcome.
        self.held_frames: list[Frame] = []
        self.frames_since_outcome = 0
        # The lab commands read which dumps this session wrote from its events.
        self.event_log = EventLog(self.session.bus)
        self.gate = StageGate() if screenshots else None
        if self.gate is not None:
            self.session.bus.subscribe(self.gate)
        self.director = DemoDirector(self, demo, pace)

    def on_mount(self) -> None:
        # DumpLabApp.on_mount (called after this one) pushes the HMC screen: start after it.
        if self.autoplay:
            self.call_later(self._start)

    def on_unmount(self) -> None:
        # Before DumpLabApp.on_unmount stops the machine thread, which may wait at a stage.
        if self.gate is not None:
            self.gate.release()
        self.director.stop()

    async def _start(self) -> None:
        await self.director.prepare()
        self.run_worker(self._play(), group="demo", exit_on_error=False)

    async def _play(self) -> None:
        try:
            await self.director.play()
        except Exception:  # a bug in the player: the console (and the machine) go on
            log.exception("demo playback failed")
            self.main.acknowledge("internal error in the demo player (details in "
                                  f"{self.workdir / 'console.log'})", "refused")

    def feed(self, events: tuple[Event, ...]) -> None:
        """Show events on the HMC screen (those the gate held back)."""
        if events and self.recording:
            events = tuple(machine_only(event, self.workdir) for event in events)
        if events:
            self.guarded(self.main.feed_events, events)

    def guarded(self, show: Callable[[Any], None], what: Any) -> None:
        """Change the screen; a bug in a view is logged and said in one line, and the demo
        and the console go on (DumpLabApp._guarded)."""
        self._guarded(show, what)

    # -- from the machine thread ---------------------------------------------------------

    @on(EventsArrived)
    def _demo_events(self, message: EventsArrived) -> None:
        if self.gate is not None:
            message.prevent_default()  # the gate hands these over, cut at each stage
            return
        stages = tuple(event for event in message.events if event.kind == "stage")
        if stages:  # after DumpLabApp has fed them to the screen
            self.call_later(self.director.stages_seen, stages)

    @on(FrameReady)
    def _demo_frame(self, message: FrameReady) -> None:
        if self.recording:
            message.prevent_default()
            self.held_frames.append(message.frame)
            self.frames_since_outcome += 1

    def show_frame(self, frame: Frame) -> None:
        """Draw a frame of the machine thread that a recording held back."""
        self.guarded(self.main.show_frame, frame)

    @on(CommandDone)
    def _demo_outcome(self, message: CommandDone) -> None:
        self.frames_since_outcome = 0
        if self.recording:  # the director shows it, when the film is ready for it
            message.prevent_default()
        if self.gate is not None:  # a command's last events come before its acknowledgement
            self.feed(self.gate.take())
        self.director.outcome_arrived(message.outcome)

    # -- keys ----------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        playing = (self.director.playing and bool(self.screen_stack)
                   and self.screen_stack[-1] is self.main)
        if action in DEMO_ACTIONS:
            return playing
        if action in HELD_ACTIONS and playing:
            return None  # greyed out: the demo's commands alone move the machine
        return super().check_action(action, parameters)

    def action_demo_pause(self) -> None:
        self.director.toggle_pause()

    def action_demo_next(self) -> None:
        self.director.skip()

    def action_demo_stop(self) -> None:
        self.director.stop()

    def action_help(self) -> None:
        if self.director.playing:
            self.push_screen(HelpScreen(help_markdown("demo")))
        else:
            super().action_help()


# --------------------------------------------------------------------------------------------
# Screenshots


class Album:
    """The SVG screenshots of one demo, in order; written at the end, so that their numbers
    have as many digits as the last one needs."""

    def __init__(self, app: DemoApp, settle: Callable[[], Awaitable[None]]) -> None:
        self.app = app
        self.settle = settle
        self.shots: list[tuple[str, str]] = []

    async def take(self, label: str) -> None:
        await self.settle()
        title = f"{self.app.demo.title} ({label})"
        self.shots.append((re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-"),
                           self.app.export_screenshot(title=title)))

    def names(self) -> list[str]:
        width = max(2, len(str(len(self.shots))))
        return [f"{number:0{width}d}-{label}.svg"
                for number, (label, _) in enumerate(self.shots, start=1)]

    def write(self, directory: Path) -> list[Path]:
        paths = [directory / name for name in self.names()]
        for path, (_, svg) in zip(paths, self.shots, strict=True):
            write_atomically(path, svg)
        return paths


async def shoot_demo(demo: Demo, workdir: Path) -> tuple[DemoDirector, Album]:
    """Play `demo` headless in the console without pauses, with a screenshot at each stage
    event and one at the end."""
    app = DemoApp(demo, workdir, pace=0.0, autoplay=False, screenshots=True)
    async with app.run_test(size=SCREENSHOT_SIZE) as pilot:
        async def settle() -> None:
            await pilot.pause()
            await pilot.pause()  # a tab switch lays out in a second round

        album = Album(app, settle)
        director = app.director
        director.camera = album.take
        await director.prepare()
        assert app.gate is not None
        director.attach_gate(app.gate)
        try:
            if await play_while_alive(app, director):
                await album.take("end")
        finally:
            app.gate.release()
    return director, album


async def play_while_alive(app: DemoApp, director: DemoDirector) -> bool:
    """Play the demo unless the console dies under it (a bug: its exception comes out of
    run_test); never wait for an answer that cannot come. True if the console lived."""
    play = asyncio.create_task(director.play())
    while not play.done():
        if app.return_code is not None:
            play.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await play
            return False
        await asyncio.sleep(ALIVE_POLL_S)
    play.result()
    return True


# --------------------------------------------------------------------------------------------
# The entry points (console/tui/app.py delegates to them)


def no_terminal_message(demo: Demo) -> str:
    first = NO_TERMINAL.splitlines()[0].replace("dumplab:", "dumplab demo:", 1)
    return (f"{first}\nPlay it in the terminal instead: dumplab demo {demo.name} --headless "
            "(--record FILE.cast records it)\n")


@contextlib.contextmanager
def workdir_for(workdir: Path | None) -> Iterator[Path]:
    if workdir is not None:
        yield Path(workdir)
        return
    with tempfile.TemporaryDirectory(prefix="dumplab-demo-") as temporary:
        yield Path(temporary)


def report(director: DemoDirector, err: TextIO) -> None:
    demo = director.demo
    if director.failure:
        err.write(f"dumplab demo: {demo.path}: {director.failure}\n")
    elif not director.finished:
        err.write(f"dumplab demo: {demo.name}: stopped at step {director.step}/"
                  f"{len(demo.steps)}\n")


def play_demo(demo: Demo, workdir: Path | None = None, *, pace: float = 1.0,
              err: TextIO | None = None) -> int:
    """Open the console and play `demo` in it; 0 if it ran to its end with every command
    succeeding, 1 otherwise, 2 without a terminal."""
    err = err or sys.stderr
    if needs_terminal():
        err.write(no_terminal_message(demo))
        return EXIT_USAGE
    with workdir_for(workdir) as directory:
        app = DemoApp(demo, directory, pace=pace)
        app.run()
    report(app.director, err)
    return app.director.exit_status


def record_demo_screenshots(demo: Demo, directory: Path, workdir: Path | None = None, *,
                            out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Play `demo` headless in the console and write an SVG at each stage event and at the
    end into `directory`; 0 if every command succeeded, 1 otherwise, 2 for a directory that
    cannot be made."""
    out, err = out or sys.stdout, err or sys.stderr
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        err.write(f"dumplab demo: cannot write screenshots to {directory}: "
                  f"{error.strerror or error}\n")
        return EXIT_USAGE
    with workdir_for(workdir) as work:
        director, album = asyncio.run(shoot_demo(demo, work))
    try:
        paths = album.write(directory)
    except OSError as error:
        err.write(f"dumplab demo: cannot write screenshots to {directory}: "
                  f"{error.strerror or error}\n")
        return EXIT_FAILED
    out.write(f"Wrote {len(paths)} screenshots to {directory}: {paths[0].name} … "
              f"{paths[-1].name}\n")
    report(director, err)
    return director.exit_status
