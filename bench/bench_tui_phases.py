"""Where a key's time goes in a pseudo-terminal (issue 10). Prints figures; asserts nothing.

    python bench/bench_tui_phases.py [PRESSES]

The same run as bench/bench_tui_pty.py (dumplab in a pty of 120×40, 4 CPUs busy, `2` / `1`
switching views), with the console started through this file, which adds timestamps
(time.perf_counter, one clock for both processes) at each step of a key's way:

    written to the pty -> read by Textual's input thread -> handled by the app
    -> screen drawn (App._display) -> bytes handed to the terminal (writer thread's flush)

and records Python's garbage collections, the machine thread's run slices and the UI thread's
CPU time. For each phase: median and p95 over the presses; then the full collections
(generation 2), the slices that ran while a key waited, and the UI thread's CPU time per press
against the wall time (on a loaded host the UI thread gets only part of a core).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

CHILD = "--child"


# -- in the console's process ------------------------------------------------------------------

def run_console_with_timestamps(argv: list[str]) -> int:
    """Start dumplab with its key path, collections and slices timestamped; the records go
    to $PHASES_LOG when it ends."""
    import atexit
    import gc

    from textual import events
    from textual.driver import Driver
    from textual.drivers._writer_thread import WriterThread

    from console import cli
    from console.control.runner import Runner
    from console.tui.app import DumpLabApp

    records: list[tuple] = []
    clock = time.perf_counter

    def record(*what: object) -> None:
        records.append((clock(), *what))

    atexit.register(lambda: Path(os.environ["PHASES_LOG"]).write_text(json.dumps(records)))

    def wrap(owner: type, name: str, before: str, after: str | None = None) -> None:
        original = getattr(owner, name)

        def wrapper(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            record(before, time.thread_time())
            result = original(self, *args, **kwargs)
            if after:
                record(after, time.thread_time())
            return result
        setattr(owner, name, wrapper)

    original_process = Driver.process_message

    def process_message(self, message):  # type: ignore[no-untyped-def]
        if isinstance(message, events.Key):
            record("read", 0.0)
        return original_process(self, message)
    Driver.process_message = process_message  # type: ignore[method-assign]

    original_on_event = DumpLabApp.on_event

    async def on_event(self, event):  # type: ignore[no-untyped-def]
        if isinstance(event, events.Key) and not event.is_forwarded:
            record("handled", time.thread_time())
        return await original_on_event(self, event)
    DumpLabApp.on_event = on_event  # type: ignore[method-assign]

    wrap(DumpLabApp, "_display", "draw", "drawn")
    wrap(Runner, "_run_slice", "slice", "sliced")

    class TimedFile:
        def __init__(self, file):  # type: ignore[no-untyped-def]
            self._file = file

        def write(self, text: str) -> int:
            return self._file.write(text)

        def flush(self) -> None:
            self._file.flush()
            record("out", 0.0)

        def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
            return getattr(self._file, name)

    original_writer = WriterThread.__init__

    def writer_init(self, file):  # type: ignore[no-untyped-def]
        original_writer(self, TimedFile(file))
    WriterThread.__init__ = writer_init  # type: ignore[method-assign]

    gc.callbacks.append(lambda phase, info: record(f"gc-{phase}", info["generation"]))
    return cli.main(argv)


# -- in the benchmark's process ----------------------------------------------------------------

def first(records: list[list], kind: str, after: float, before: float) -> list | None:
    return next((r for r in records if r[1] == kind and after <= r[0] <= before), None)


def describe(name: str, values: list[float]) -> str:
    if not values:
        return f"{name:<40} (none)"
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return (f"{name:<40} median {statistics.median(values):7.1f} ms   p95 {p95:7.1f} ms"
            f"   ({len(values)})")


def phases(records: list[list], presses: list[tuple[float, float]]) -> None:
    steps = ("read", "handled", "drawn", "out")
    names = ("written -> read by the input thread", "read -> handled by the app",
             "handled -> screen drawn", "drawn -> bytes to the terminal")
    found: dict[str, list[float]] = {name: [] for name in names}
    cpu, wall, slices, full = [], [], [], []
    for pressed, latency in presses:
        end = pressed + latency + 0.05
        at = [pressed]
        for step in steps:
            hit = first(records, step, at[-1], end)
            if hit is None:
                break
            at.append(hit[0])
            if step == "handled":
                handled = hit
            if step == "drawn":
                cpu.append((hit[2] - handled[2]) * 1000)
                wall.append((hit[0] - handled[0]) * 1000)
        for name, start, stop in zip(names, at, at[1:]):
            found[name].append((stop - start) * 1000)
        slices.append(sum(1 for r in records if r[1] == "slice" and pressed <= r[0] <= end))
        full.append(any(r[1] == "gc-start" and r[2] == 2 and pressed <= r[0] <= end
                        for r in records))
    for name in names:
        print(describe(name, found[name]))
    print(describe("handled -> drawn: wall", wall))
    print(describe("handled -> drawn: UI thread CPU", cpu))
    durations, started = [], None
    for r in records:
        if r[1] == "gc-start" and r[2] == 2:
            started = r[0]
        elif r[1] == "gc-stop" and started is not None:
            durations.append((r[0] - started) * 1000)
            started = None
    print(describe("full collections (generation 2)", durations))
    print(f"{'presses with a full collection':<40} {sum(full)} of {len(full)}")
    print(f"{'presses with machine slices':<40} {sum(1 for s in slices if s)} of {len(slices)}")


def main() -> None:
    import bench_tui_pty as pty_bench

    presses = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    log = Path(tempfile.mkdtemp(prefix="dumplab-phases-")) / "records.json"
    os.environ["PHASES_LOG"] = str(log)
    written: list[float] = []

    class TimedConsole(pty_bench.Console):
        def press(self, keys: str) -> None:
            if keys in "12":
                written.append(time.perf_counter())
            super().press(keys)

    original_execve = os.execve

    def execve(path, args, env):  # type: ignore[no-untyped-def]
        # The console's process: this file's --child instead of `-m console.cli`.
        return original_execve(path, [path, __file__, CHILD, *args[3:]], env)
    os.execve = execve  # type: ignore[assignment]
    pty_bench.Console = TimedConsole  # type: ignore[misc]
    samples = pty_bench.pty_latencies(presses)
    os.execve = original_execve  # type: ignore[assignment]
    for _ in range(50):  # the console writes its records as it exits
        if log.exists():
            break
        time.sleep(0.1)
    records = json.loads(log.read_text())
    print(f"Key press -> screen updated in a pty, 4 CPUs busy, {presses} presses of 2 / 1")
    print(describe("written -> text in the stream (bench)", [s * 1000 for s in samples]))
    phases(records, list(zip(written[-len(samples):], samples)))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == CHILD:
        sys.exit(run_console_with_timestamps(sys.argv[2:]))
    main()
