"""Recordings of the console itself: asciicast v2 files of what the trainee sees.

`dumplab demo NAME --record FILE.cast` plays the demo headless in the console (as
`--screenshots` does: no waits, the machine thread held at each stage event until the
screen has shown it) and records the screen as *rendered frames*: at each caption, command,
result and stage the whole screen is rendered to ANSI rows (the compositor's full update,
truecolor: what export_screenshot draws as SVG), and the rows that changed since the
previous frame are written as one `o` event (console/training/casts.py FrameCast).

Why frames and not the byte stream Textual writes to a terminal: that stream is cut into
partial updates by Textual's refresh timer, so where one update ends depends on the host's
speed and two recordings would differ; a frame depends only on what the screen shows.

Times come from the demo's pacing, as in the headless transcript: `caption` after each
caption, `command` before each command, `line` for each line of Operating System Messages
a stage brings and of a command's output, and each step's pause. The screen shows no host
measure or host path in a recording (DemoApp(recording=True)), so two recordings of a demo
are the same bytes.

`dumplab --record FILE.cast` records a live console session instead: every byte the
terminal driver writes, on the host's clock with idle gaps capped (`live_recording`).
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console

from console.control.exits import UsageError
from console.training.casts import (
    MIN_SIZE,
    FrameCast,
    LiveCast,
    cast_to_gif,
    check_size,
    write_output,
)
from console.training.demos import EXIT_FAILED, Demo, DemoStep
from console.tui.demo import DemoApp, DemoDirector, play_while_alive, report, workdir_for
from machine.events import Event

log = logging.getLogger("dumplab.console")

FRAME_WAIT_S = 10.0  # the longest wait for a frame of the machine thread
FRAME_POLL_S = 0.005


def screen_lines(app: Any) -> list[str]:
    """The app's screen as it is now, one ANSI string per row."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True,
                      color_system="truecolor", legacy_windows=False, safe_box=False)
    update = app.screen._compositor.render_update(
        full=True, screen_stack=app._background_screens, simplify=True)
    return ["".join(strip.render(console) for strip in line) for line in update.strips]


def console_lines(events: tuple[Event, ...]) -> int:
    """How many lines of Operating System Messages a batch of events brings."""
    return sum(len(str(getattr(event, "text", "")).rstrip("\n").splitlines() or [""])
               for event in events if event.kind == "console")


def stage_marker(event: Event) -> str:
    """`stage checks: failed (purgatory checksum failed)`, as the transcript names it."""
    label = f"stage {getattr(event, 'stage', '')}: {getattr(event, 'status', '')}"
    detail = getattr(event, "detail", "")
    return f"{label} ({detail})" if detail else label


class DemoFilm:
    """What the demo director shows while it plays (console/tui/demo.py), as frames and
    markers on the demo's virtual clock."""

    def __init__(self, demo: Demo, app: Any, settle: Callable[[], Awaitable[None]],
                 size: tuple[int, int]) -> None:
        self.demo = demo
        self.app = app
        self.settle = settle
        self.cast = FrameCast(size[0], size[1], demo.title)

    async def shoot(self) -> None:
        await self.settle()
        self.cast.frame(screen_lines(self.app))

    async def step(self, number: int, step: DemoStep) -> None:
        first = step.caption.splitlines()[0] if step.caption else ""
        self.cast.marker(f"step {number}/{len(self.demo.steps)}: {first}")
        await self.shoot()

    async def show_frame(self, ready: Callable[[], bool] = lambda: True) -> None:
        """Show the newest of the machine thread's frames (the status line: state, CPUs)
        held back in a recording (DemoApp.held_frames), once `ready` says the one this
        picture needs has come (waiting never for ever). A frame is drawn only here, so
        what a picture shows never depends on when the frames came."""
        held = self.app.held_frames
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FRAME_WAIT_S
        while not (held and ready()) and loop.time() < deadline:
            await asyncio.sleep(FRAME_POLL_S)
        if held:
            self.app.show_frame(held[-1])
            held.clear()
        else:
            log.warning("recording: no frame of the machine thread in %.0f s", FRAME_WAIT_S)

    async def command(self, line: str, operator: bool) -> None:
        # The status line stays as it was until the command's outcome: the frame saying
        # "busy" as it starts may be replaced in the queue by a newer one (FrameReady).
        await self.shoot()

    async def result(self, message: str, operator: bool) -> None:
        """After an operator command, the frame the machine thread sends after its outcome
        (or a newer one: the same state); a lab command changes no state."""
        self.cast.advance(self.demo.pacing["line"] * max(1, len(message.splitlines())))
        if operator:
            await self.show_frame(lambda: self.app.frames_since_outcome > 0)
        await self.shoot()

    async def stage(self, events: tuple[Event, ...]) -> None:
        self.cast.advance(self.demo.pacing["line"] * max(1, console_lines(events)))
        self.cast.marker(stage_marker(events[-1]))
        await self.shoot()

    def wait(self, seconds: float) -> None:
        self.cast.advance(seconds)


async def film_demo(demo: Demo, workdir: Path,
                    size: tuple[int, int]) -> tuple[DemoDirector, DemoFilm]:
    """Play `demo` headless in the console at `size`, without waits, filming it."""
    app = DemoApp(demo, workdir, pace=0.0, autoplay=False, screenshots=True, recording=True)
    async with app.run_test(size=size) as pilot:
        async def settle() -> None:
            await pilot.pause()
            await pilot.pause()  # a tab switch lays out in a second round

        film = DemoFilm(demo, app, settle, size)
        director = app.director
        director.film = film
        await director.prepare()
        assert app.gate is not None
        director.attach_gate(app.gate)
        try:
            await film.show_frame()  # the machine thread's first frame
            await film.shoot()  # the console before the first step
            if await play_while_alive(app, director):
                await film.shoot()  # the end: the bar says how it ended
        finally:
            app.gate.release()
    return director, film


def record_demo_cast(demo: Demo, cast: Path | None, workdir: Path | None = None, *,
                     size: tuple[int, int] | None = None, gif: Path | None = None,
                     out: TextIO | None = None, err: TextIO | None = None) -> int:
    """`dumplab demo NAME [--record FILE.cast] [--gif FILE.gif]`: film the demo in the
    console (to a temporary cast when `cast` is None); 0 if every command succeeded, 1
    otherwise (the files are written either way)."""
    out, err = out or sys.stdout, err or sys.stderr
    size = size or (demo.width, demo.height)
    with workdir_for(workdir) as work:
        director, film = asyncio.run(film_demo(demo, work, size))
    with tempfile.TemporaryDirectory(prefix="dumplab-cast-") as temporary:
        target = cast or Path(temporary) / f"{demo.name}.cast"
        try:
            write_output(target, film.cast.text())
            if gif is not None:
                cast_to_gif(target, gif)
        except (RuntimeError, OSError) as error:
            err.write(f"dumplab demo: {getattr(error, 'strerror', None) or error}\n")
            return EXIT_FAILED
    what = f"the console at {size[0]}x{size[1]}, {film.cast.frames} frames, " \
           f"{film.cast.clock:.0f} s"
    if cast is not None:
        out.write(f"Recorded {cast}: {what}\n")
    if gif is not None:
        out.write(f"Rendered {gif}: {what}\n")
    report(director, err)
    return director.exit_status


# --------------------------------------------------------------------------------------------
# A live console session


def recording_driver(base: type, cast: LiveCast) -> type:
    """A subclass of the terminal driver `base` that also gives every write to `cast`."""

    class RecordingDriver(base):  # type: ignore[misc, valid-type]
        def write(self, data: str) -> None:
            cast.output(data)
            super().write(data)

        def start_application_mode(self) -> None:
            size = getattr(self, "_get_terminal_size", None)
            if callable(size):
                cast.size = tuple(size())  # type: ignore[assignment]
            super().start_application_mode()

    RecordingDriver.__name__ = f"Recording{base.__name__}"
    return RecordingDriver


def terminal_size() -> tuple[int, int]:
    """The terminal's columns and rows (what the console will fill)."""
    try:
        size = os.get_terminal_size(sys.__stdout__.fileno())  # type: ignore[union-attr]
    except (OSError, AttributeError, ValueError):
        return MIN_SIZE
    return size.columns, size.lines


@contextmanager
def live_recording(app: Any, path: Path | None, idle_limit: float) -> Iterator[LiveCast | None]:
    """Record the console `app` while it runs (nothing when `path` is None); the file is
    written when it ends, even after an error."""
    if path is None:
        yield None
        return
    refused = check_size(*terminal_size())
    if refused is not None:
        raise UsageError(f"{refused}: make the terminal bigger")
    cast = LiveCast(idle_limit)
    app.driver_class = recording_driver(app.driver_class, cast)

    def mark(event: Event) -> None:  # in the machine thread: LiveCast takes a lock
        if event.kind == "stage":
            cast.marker(stage_marker(event))
    unsubscribe = app.session.bus.subscribe(mark)
    try:
        yield cast
    finally:
        unsubscribe()
        write_output(path, cast.text(f"{app.TITLE}: a console session"))
