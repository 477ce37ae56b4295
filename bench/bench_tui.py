"""Console benchmarks (issue 5). Prints figures measured in one run; asserts nothing.

    python bench/bench_tui.py [SECONDS]

1. Key press -> updated screen, while 4 CPUs run free (the `hang loop` fault keeps every CPU
   busy, the machine runs at maximum deterministic speed): median and p95 of
   - a view key (`]`: the next CPU's registers), drawn from the latest frame;
   - a machine key (`s` Stop all, then `g` Start all): through the command layer in the
     machine thread and back, until the status line shows the new state.
   "Updated screen" is the first screen update (compositor render) after the change; the app
   runs with Textual's headless driver, so the time to write to a real terminal is not in it.
2. Guest speed with the UI attached (drawing the registers of a running CPU at the frame
   rate) against the same run headless (the machine thread with no UI), at the deterministic
   maximum speed, where virtual time is proportional to instructions executed: virtual ns
   per real second, UI and headless windows alternating, and the ratio of their medians.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from console.control.runner import Runner
from console.control.session import Session
from console.tui.app import DumpLabApp

CPUS = 4
BUSY = ("activate", "load 0100", "wait-for stage workload", "fault hang loop",
        "wait-for event hang")
KEY_SAMPLES = 60


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def describe(name: str, samples: list[float]) -> str:
    ms = [s * 1000 for s in samples]
    return (f"{name:<44} median {statistics.median(ms):6.1f} ms   p95 {percentile(ms, 0.95):6.1f} ms"
            f"   ({len(ms)} presses)")


class ScreenClock:
    """Records when the app draws the screen (wraps App._display), and whether what a
    benchmark waits for was on the screen drawn then."""

    def __init__(self, app: DumpLabApp) -> None:
        self.shown: list[float] = []
        self.condition: Callable[[], bool] = lambda: False
        original = app._display

        def display(screen, renderable):  # type: ignore[no-untyped-def]
            if self.condition():
                self.shown.append(time.perf_counter())
            return original(screen, renderable)
        app._display = display  # type: ignore[method-assign]

    async def latency(self, pilot, key: str, condition: Callable[[], bool]) -> float:  # type: ignore[no-untyped-def]
        """Press key; seconds until a screen showing condition() was drawn."""
        self.shown.clear()
        self.condition = condition
        pressed = time.perf_counter()
        await pilot.press(key)
        await wait_for(pilot, lambda: bool(self.shown))
        self.condition = lambda: False
        return self.shown[0] - pressed


async def wait_for(pilot, condition: Callable[[], bool], timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.perf_counter() + timeout
    while not condition():
        if time.perf_counter() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.001)


async def start_busy(app: DumpLabApp, pilot) -> None:  # type: ignore[no-untyped-def]
    for line in BUSY:
        app.submit(line)
    await wait_for(pilot, lambda: app.main.outcomes_shown >= len(BUSY), 60)
    failed = [h.result.message for h in app.session.history if not h.result.ok]
    if failed:
        raise RuntimeError(failed[0])


async def view_key_latency(app: DumpLabApp, pilot, clock: ScreenClock) -> list[float]:  # type: ignore[no-untyped-def]
    """`]` shows the next CPU's registers: time until the screen shows it."""
    body = app.main.query_one("#registers-body")
    samples = []
    for _ in range(KEY_SAMPLES):
        wanted = f"CPU {(app.main.selected_cpu + 1) % CPUS}"
        samples.append(await clock.latency(
            pilot, "right_square_bracket",
            lambda wanted=wanted: str(body.render()).startswith(wanted)))
        await asyncio.sleep(0.02)
    return samples


async def machine_key_latency(app: DumpLabApp, pilot, clock: ScreenClock) -> list[float]:  # type: ignore[no-untyped-def]
    """`s` / `g`: Stop all and Start all, until the status line shows the new status."""
    status = app.main.query_one("#lpar-status")
    samples = []
    for index in range(KEY_SAMPLES):
        key, wanted = ("s", "NOT OPERATING") if index % 2 == 0 else ("g", " OPERATING ")
        samples.append(await clock.latency(
            pilot, key, lambda wanted=wanted: wanted in str(status.render())))
        await asyncio.sleep(0.02)
    return samples


async def key_latencies(speed: str) -> tuple[list[float], list[float]]:
    """Key latencies with the console attached and 4 CPUs busy."""
    with tempfile.TemporaryDirectory() as workdir:
        app = DumpLabApp(Path(workdir), overrides={"cpus": CPUS}, running=True, speed=speed)
        async with app.run_test(size=(120, 40)) as pilot:
            clock = ScreenClock(app)
            await start_busy(app, pilot)
            await pilot.press("escape", "4")  # the registers of a running CPU
            await asyncio.sleep(0.5)
            view = await view_key_latency(app, pilot, clock)
            machine = await machine_key_latency(app, pilot, clock)
            await pilot.press("ctrl+q")
    return view, machine


async def ui_rate(seconds: float) -> float:
    """The guest's speed (virtual ns per real second) with the console attached, drawing
    the registers of a running CPU."""
    with tempfile.TemporaryDirectory() as workdir:
        app = DumpLabApp(Path(workdir), overrides={"cpus": CPUS}, running=True, speed="max")
        async with app.run_test(size=(120, 40)) as pilot:
            await start_busy(app, pilot)
            await pilot.press("escape", "4")
            await asyncio.sleep(0.5)
            t0, v0 = time.perf_counter(), app.main.frame.snapshot.t
            await asyncio.sleep(seconds)
            rate = (app.main.frame.snapshot.t - v0) / (time.perf_counter() - t0)
            await pilot.press("ctrl+q")
    return rate


def headless_rate(seconds: float) -> float:
    """The guest's speed with the same machine thread and no UI."""
    frames = []
    with tempfile.TemporaryDirectory() as workdir:
        done = []
        runner = Runner(Session(Path(workdir), overrides={"cpus": CPUS}),
                        on_frame=frames.append, on_outcome=done.append, running=True,
                        speed="max")
        runner.start()
        for line in BUSY:
            runner.submit(line)
        while len(done) < len(BUSY):
            time.sleep(0.01)
        time.sleep(0.5)
        t0, v0 = time.perf_counter(), frames[-1].snapshot.t
        time.sleep(seconds)
        rate = (frames[-1].snapshot.t - v0) / (time.perf_counter() - t0)
        runner.stop()
    return rate


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 4.0
    print(f"DumpLab console benchmark: {CPUS} CPUs busy (hang loop)")
    for speed in ("max", "free"):
        view, machine = asyncio.run(key_latencies(speed))
        print(f"\nspeed {speed}:")
        print(describe("key -> screen, view key (] next CPU)", view))
        print(describe("key -> screen, machine key (s / g)", machine))
    # Deterministic speed: virtual time is proportional to instructions. UI and headless
    # runs alternate, so that a change of load on the host touches both alike.
    attached, bare = [], []
    for _ in range(3):
        attached.append(asyncio.run(ui_rate(seconds)))
        bare.append(headless_rate(seconds))
    ui, alone = statistics.median(attached), statistics.median(bare)
    print(f"\nguest speed at speed max ({seconds:.0f} s windows, alternating, median of 3):")
    print(f"{'  UI attached':<44} {ui / 1e6:8.2f} ms virtual per s "
          f"({ui * CPUS / 1e6:.0f} M instructions/s)  "
          + " ".join(f"{r / 1e6:.1f}" for r in attached))
    print(f"{'  headless':<44} {alone / 1e6:8.2f} ms virtual per s "
          f"({alone * CPUS / 1e6:.0f} M instructions/s)  "
          + " ".join(f"{r / 1e6:.1f}" for r in bare))
    print(f"{'  ratio UI / headless':<44} {ui / alone:8.0%}")


if __name__ == "__main__":
    main()
