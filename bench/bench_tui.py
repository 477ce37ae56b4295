"""Console benchmarks (issue 5). Prints figures measured in one run; asserts nothing.

    python bench/bench_tui.py [SECONDS]

1. Key press -> updated screen, while 4 CPUs run free (the `hang loop` fault keeps every CPU
   busy, the machine runs at maximum deterministic speed): median and p95 of
   - a view key (`]`: the next CPU's registers), drawn from the latest frame;
   - a machine key (`s` Stop all, then `g` Start all): through the command layer in the
     machine thread and back, until the status line shows the new state.
   "Updated screen" is the first screen update (compositor render) after the change; the app
   runs with Textual's headless driver, so the time to write to a real terminal is not in it.
2. Guest speed with the UI attached (drawing the registers of a running CPU at 20 frames/s)
   against the same run headless (the machine thread with no UI): virtual ns per real second,
   and their ratio.
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

from console.app import DumpLabApp  # noqa: E402
from console.runner import Runner  # noqa: E402
from console.session import Session  # noqa: E402

CPUS = 4
BUSY = ("activate", "load 0100", "wait-for stage workload", "fault hang loop",
        "wait-for event hang")
KEY_SAMPLES = 60


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def describe(name: str, samples: list[float]) -> str:
    ms = [s * 1000 for s in samples]
    return (f"{name:<44} median {statistics.median(ms):6.1f} ms   p95 {percentile(ms, 0.95):6.1f} ms"
            f"   ({len(ms)} presses)")


class ScreenClock:
    """Records when the app last drew the screen (wraps App._display)."""

    def __init__(self, app: DumpLabApp) -> None:
        self.times: list[float] = []
        original = app._display

        def display(screen, renderable):  # type: ignore[no-untyped-def]
            self.times.append(time.perf_counter())
            return original(screen, renderable)
        app._display = display  # type: ignore[method-assign]

    def first_after(self, moment: float) -> float | None:
        return next((t for t in self.times if t >= moment), None)


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
        pressed = time.perf_counter()
        await pilot.press("right_square_bracket")
        await wait_for(pilot, lambda: str(body.render()).startswith(wanted))
        updated = time.perf_counter()
        await wait_for(pilot, lambda: clock.first_after(updated) is not None)
        samples.append(clock.first_after(updated) - pressed)  # type: ignore[operator]
        await asyncio.sleep(0.02)
    return samples


async def machine_key_latency(app: DumpLabApp, pilot, clock: ScreenClock) -> list[float]:  # type: ignore[no-untyped-def]
    """`s` / `g`: Stop all and Start all, until the status line shows the new status."""
    status = app.main.query_one("#lpar-status")
    samples = []
    for index in range(KEY_SAMPLES):
        key, wanted = ("s", "NOT OPERATING") if index % 2 == 0 else ("g", " OPERATING ")
        pressed = time.perf_counter()
        await pilot.press(key)
        await wait_for(pilot, lambda wanted=wanted: wanted in str(status.render()))
        updated = time.perf_counter()
        await wait_for(pilot, lambda: clock.first_after(updated) is not None)
        samples.append(clock.first_after(updated) - pressed)  # type: ignore[operator]
        await asyncio.sleep(0.02)
    return samples


async def with_ui(seconds: float, speed: str) -> tuple[list[float], list[float], float]:
    """Key latencies and the guest's speed with the console attached."""
    with tempfile.TemporaryDirectory() as workdir:
        app = DumpLabApp(Path(workdir), overrides={"cpus": CPUS}, running=True, speed=speed)
        async with app.run_test(size=(120, 40)) as pilot:
            clock = ScreenClock(app)
            await start_busy(app, pilot)
            await pilot.press("escape", "4")  # the registers of a running CPU
            await asyncio.sleep(0.5)
            t0, v0 = time.perf_counter(), app.main.frame.snapshot.t
            await asyncio.sleep(seconds)
            rate = (app.main.frame.snapshot.t - v0) / (time.perf_counter() - t0)
            view = await view_key_latency(app, pilot, clock)
            machine = await machine_key_latency(app, pilot, clock)
            await pilot.press("ctrl+q")
    return view, machine, rate


def headless_rate(seconds: float, speed: str) -> float:
    """The guest's speed with the same machine thread and no UI."""
    frames = []
    with tempfile.TemporaryDirectory() as workdir:
        done = []
        runner = Runner(Session(Path(workdir), overrides={"cpus": CPUS}),
                        on_frame=frames.append, on_outcome=done.append, running=True,
                        speed=speed)
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
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 5.0
    print(f"DumpLab console benchmark: {CPUS} CPUs busy (hang loop), "
          f"{seconds:.0f} s per speed measurement")
    for speed in ("max", "free"):
        view, machine, ui_rate = asyncio.run(with_ui(seconds, speed))
        bare = headless_rate(seconds, speed)
        print(f"\nspeed {speed}:")
        print(describe("key -> screen, view key (] next CPU)", view))
        print(describe("key -> screen, machine key (s / g)", machine))
        print(f"{'guest speed, UI attached':<44} {ui_rate / 1e6:8.2f} ms virtual per s "
              f"({ui_rate * CPUS / 1e6:.0f} M instructions/s)")
        print(f"{'guest speed, headless':<44} {bare / 1e6:8.2f} ms virtual per s "
              f"({bare * CPUS / 1e6:.0f} M instructions/s)")
        print(f"{'ratio UI / headless':<44} {ui_rate / bare:8.0%}")


if __name__ == "__main__":
    main()
