"""Classroom benchmarks (issue 12). Prints figures measured in one run; asserts nothing.

    python bench/bench_classroom.py idle [--seconds S]     host CPU of one idle and one spinning LPAR
    python bench/bench_classroom.py sessions [N ...]       N browsers on one `dumplab serve`

`idle`: a console's machine thread (console/control/runner.py) at the console's default speed
(real time), the default profile booted to its workload, then measured for S seconds with the
process's CPU time from /proc/self/stat: first idle (every CPU in enabled wait between timer
ticks), then with `fault hang loop` (every CPU spins).

`sessions`: N websocket clients on a fresh `dumplab serve`, each a browser tab driving its
console through the dump workflow at its command line (activate, load, kdump load, a hang,
stop all, the stand-alone dumper's load, until the dump is written), then sends keys
(switching the console's views) and times how long until the console draws: key -> frame
latency median and p95, the RSS of each console, and the dumps written.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def cpu_seconds(pid: int | str = "self") -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# --------------------------------------------------------------------------------------------
# idle and spinning LPARs


def idle(seconds: float, memory: str) -> None:
    from console.control.runner import DEFAULT_SPEED, Runner
    from console.control.session import Session
    from machine.profile import parse_size

    outcomes: list = []
    done = threading.Event()

    def on_outcome(outcome) -> None:
        outcomes.append(outcome)
        done.set()

    with tempfile.TemporaryDirectory(prefix="dumplab-bench-") as workdir:
        session = Session(Path(workdir), "default", {"memory": parse_size(memory)})
        runner = Runner(session, on_outcome=on_outcome, speed=DEFAULT_SPEED)
        runner.start()

        def command(*lines: str) -> None:
            """Queued together: the machine runs between commands, and a later wait-for
            would only look from then on."""
            outcomes.clear()
            for line in lines:
                runner.submit(line)
            while len(outcomes) < len(lines):
                done.clear()
                if not done.wait(120):
                    raise SystemExit(f"no answer to {lines}")
            for outcome in outcomes:
                if not outcome.result.ok:
                    raise SystemExit(f"{outcome.line}: {outcome.result.message}")

        command("activate", "load 0100", "wait-for stage workload")
        print(f"default profile, {memory}, speed {DEFAULT_SPEED}, {seconds:g} s each")
        for label, line in (("idle (enabled wait between ticks)", None),
                            ("spinning (fault hang loop)", "fault hang loop")):
            if line:
                command(line)
            time.sleep(1.0)
            cpu, wall, virtual = cpu_seconds(), time.monotonic(), session.lpar.clock.now
            time.sleep(seconds)
            cpu, wall = cpu_seconds() - cpu, time.monotonic() - wall
            virtual = (session.lpar.clock.now - virtual) / 1e9
            states = sorted({cpu_.state.value if hasattr(cpu_.state, "value") else
                             str(cpu_.state) for cpu_ in session.lpar.snapshot().cpus})
            print(f"  {label:36s} {100 * cpu / wall:5.1f} % of a core  "
                  f"({virtual:.1f} s virtual in {wall:.1f} s; CPUs {', '.join(states)})")
        runner.stop()


# --------------------------------------------------------------------------------------------
# N browsers


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# What each browser does before the timed keys: the dump workflow, typed at the console's
# command line (`:`), as an operator would run it from the HMC's tasks.
WORKFLOW = ("activate", "load 0100", "wait-for stage workload", "kdump load",
            "fault hang spin", "wait-for event hang", "stop all", "wait-for stopped",
            "load 0200 store", "wait-for event dump_written timeout=120s")


TOKEN = "bench"
ended: list[str] = []  # browsers whose session the server ended, with its reason


def row_of(url: str, name: str) -> dict:
    """This browser's row of the instructor's table (the bench's server has a token)."""
    with urllib.request.urlopen(f"http://{url}/instructor/sessions.json?token={TOKEN}",
                                timeout=10) as response:
        rows = json.loads(response.read())
    return next((row for row in rows if row["trainee"] == name), {})


async def browser(url: str, name: str, keys: int, latencies: list[float],
                  timeout: float) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as client, client.ws_connect(
            f"ws://{url}/ws?width=120&height=40", origin=f"http://{url}",
            headers={"Cookie": f"dumplab_trainee={name}"}) as websocket:
        drawn = asyncio.Event()
        received = 0

        async def read() -> None:
            nonlocal received
            while True:
                message = await websocket.receive()
                if message.type == aiohttp.WSMsgType.BINARY:
                    received += len(message.data)
                    drawn.set()
                elif message.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.PING,
                                          aiohttp.WSMsgType.PONG):
                    ended.append(f"{name}: {message.extra or message.type.name}")
                    drawn.set()
                    return

        async def send(text: str) -> None:
            if not ended_here():
                await websocket.send_str(json.dumps(["stdin", text]))

        def ended_here() -> bool:
            return any(line.startswith(f"{name}:") for line in ended)

        reader = asyncio.create_task(read())
        await websocket.send_str(json.dumps(["resize", {"width": 120, "height": 40}]))
        while received < 1000 and not ended_here():
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
        await send("\x1b")  # out of the OS command line, where the console starts
        await asyncio.sleep(0.5)
        for line in WORKFLOW:
            await send(":")
            await asyncio.sleep(0.3)
            await send(line + "\r")
            await asyncio.sleep(0.5)
        deadline = time.monotonic() + timeout  # until this console wrote its dump
        while time.monotonic() < deadline:
            if (await asyncio.to_thread(row_of, url, name)).get("dumps", 0):
                break
            await asyncio.sleep(1.0)
        for index in range(keys if not ended_here() else 0):
            await asyncio.sleep(0.5)
            drawn.clear()
            started = time.perf_counter()
            await send("2" if index % 2 else "1")
            try:
                await asyncio.wait_for(drawn.wait(), 5)
                latencies.append(time.perf_counter() - started)
            except TimeoutError:
                latencies.append(5.0)
        reader.cancel()


async def run_all(url: str, count: int, keys: int, latencies: list[float],
                  timeout: float) -> None:
    await asyncio.gather(*(browser(url, f"b{index}", keys, latencies, timeout)
                           for index in range(count)))


def sessions(counts: list[int], keys: int, timeout: float, log_path: Path | None,
             keep: Path | None) -> None:
    print(f"{'N':>3} {'median ms':>10} {'p95 ms':>8} {'RSS/console MiB':>16} {'dumps':>6}")
    best = 0
    for count in counts:
        port = free_port()
        log = log_path.open("ab") if log_path else subprocess.DEVNULL
        with tempfile.TemporaryDirectory(prefix="dumplab-bench-") as scratch:
            base = str(keep / f"n{count}") if keep else scratch
            server = subprocess.Popen(
                [sys.executable, "-m", "console.cli", "serve", "--port", str(port),
                 "--workdir", base, "--memory", "128M", "--max-sessions", str(count),
                 "--instructor-token", TOKEN],
                cwd=ROOT, stdout=log, stderr=log)
            try:
                for _ in range(100):
                    try:
                        urllib.request.urlopen(f"http://127.0.0.1:{port}/?name=probe",
                                               timeout=1)
                        break
                    except OSError:
                        time.sleep(0.2)
                latencies: list[float] = []

                asyncio.run(run_all(f"127.0.0.1:{port}", count, keys, latencies, timeout))
                children = [int(p) for p in os.listdir("/proc") if p.isdigit()
                            and _parent(int(p)) == server.pid]
                rss = statistics.mean(rss_mib(p) for p in children) if children else 0.0
                dumps = sum(json.loads(status.read_text()).get("dumps", 0)  # the consoles' own
                            for status in Path(base).glob("session-*/status.json"))
            finally:
                server.terminate()
                server.wait(15)
                if log_path:
                    log.close()
        for line in ended:
            print(f"    session ended early: {line}")
        ended.clear()
        if not latencies:
            continue
        latencies.sort()
        p95 = latencies[int(0.95 * (len(latencies) - 1))]
        if p95 < 0.2:
            best = count
        print(f"{count:3d} {1000 * statistics.median(latencies):10.0f} {1000 * p95:8.0f} "
              f"{rss:16.0f} {dumps:6d}", flush=True)
    print(f"largest N with p95 under 200 ms: {best or 'none'}")


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError):
        return -1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    idle_parser = sub.add_parser("idle")
    idle_parser.add_argument("--seconds", type=float, default=10.0)
    idle_parser.add_argument("--memory", default="128M")
    sessions_parser = sub.add_parser("sessions")
    sessions_parser.add_argument("counts", nargs="*", type=int, default=[1, 8, 16, 32])
    sessions_parser.add_argument("--keys", type=int, default=20)
    sessions_parser.add_argument("--log", type=Path, help="append the servers' logs here")
    sessions_parser.add_argument("--keep", type=Path, metavar="DIR",
                                 help="keep the session directories in DIR/nN")
    sessions_parser.add_argument("--timeout", type=float, default=300.0,
                                 help="seconds each browser waits for its dump")
    args = parser.parse_args()
    if args.what == "idle":
        idle(args.seconds, args.memory)
    else:
        sessions(args.counts, args.keys, args.timeout, args.log, args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
