"""Classroom benchmarks (issue 12). Prints figures measured in one run; asserts nothing.

    python bench/bench_classroom.py idle [--seconds S]     host CPU of one idle and one spinning LPAR
    python bench/bench_classroom.py sessions [N ...]       N browsers on one `dumplab serve`

`idle`: the host CPU an LPAR costs at the console's default speed (real time), the default
profile booted until its workload filled its memory, measured for S seconds of wall time with
process CPU time from /proc: first idle (every CPU in enabled wait, woken by its timer once a
second), then with `fault hang loop` (every CPU spins). Twice: the console's machine thread
alone (console/control/runner.py, in this process), then a whole served session (one browser
on a `dumplab serve`: the console process with its Textual screen, its machine thread and its
websocket stream), whose CPU is that of the server's child processes.

`sessions`: N websocket clients on a fresh `dumplab serve`, each a browser tab driving its
console through the dump workflow at its command line (activate, load, kdump load, a hang,
stop all, the stand-alone dumper's load, until the dump is written), then sends keys
(switching the console's views) and times how long until the console draws the new view:
key -> frame latency median and p95, the RSS of each console, the dumps written, and the load
average (the machine may be shared). Every wait is bounded: a browser that fails or times out
is reported with the reason and the others go on; the server is always stopped (SIGTERM, then
SIGKILL for it and its consoles).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
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

        command("activate", "load 0100", "wait-for stage workload-filled timeout=120s")
        print(f"the machine thread alone: default profile, {memory}, speed {DEFAULT_SPEED}, "
              f"{seconds:g} s each")
        for label, line in (("idle (enabled wait until a timer)", None),
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


def served_idle(seconds: float, memory: str, log_path: Path | None) -> None:
    """The same two figures for a whole console served to one browser."""
    print(f"a served console (dumplab serve, one browser): {memory}, {seconds:g} s each")
    with tempfile.TemporaryDirectory(prefix="dumplab-bench-") as base, \
            serving(Path(base), 1, memory, log_path) as (url, server):
        asyncio.run(asyncio.wait_for(served_idle_browser(url, server, seconds), 600))


async def served_idle_browser(url: str, server: subprocess.Popen, seconds: float) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as client, client.ws_connect(
            f"ws://{url}/ws?width=120&height=40", origin=f"http://{url}",
            headers={"Cookie": "dumplab_trainee=idle"}, timeout=30) as websocket:
        received = [0]

        async def read() -> None:  # a browser drains the stream, or the console is ended
            async for message in websocket:
                if message.type == aiohttp.WSMsgType.BINARY:
                    received[0] += len(message.data)

        async def type_line(line: str) -> None:
            await websocket.send_str(json.dumps(["stdin", ":"]))
            await asyncio.sleep(0.3)
            await websocket.send_str(json.dumps(["stdin", line + "\r"]))
            await asyncio.sleep(0.5)

        reader = asyncio.create_task(read())
        await websocket.send_str(json.dumps(["resize", {"width": 120, "height": 40}]))
        while received[0] < 1000:
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
        await websocket.send_str(json.dumps(["stdin", "\x1b"]))
        await asyncio.sleep(0.5)
        for line in ("activate", "load 0100", "wait-for stage workload-filled timeout=120s"):
            await type_line(line)
        for label, line in (("idle (enabled wait until a timer)", None),
                            ("spinning (fault hang loop)", "fault hang loop")):
            if line:
                await type_line(line)
                await asyncio.sleep(2.0)
            else:  # booted and filled: the console's CPU falls once the workload idles
                await settle(server.pid, 120)
            before_cpu, before_wall = tree_cpu_seconds(server.pid), time.monotonic()
            before_bytes = received[0]
            await asyncio.sleep(seconds)
            wall = time.monotonic() - before_wall
            cpu = tree_cpu_seconds(server.pid) - before_cpu
            print(f"  {label:36s} {100 * cpu / wall:5.1f} % of a core  "
                  f"(console and server; {(received[0] - before_bytes) / wall / 1024:.1f} "
                  f"KiB/s to the browser)", flush=True)
        reader.cancel()


async def settle(pid: int, timeout: float) -> None:
    """Wait until the console's tree used less than a tenth of a core in each of three
    seconds running (the workload has filled its memory and idles)."""
    deadline, quiet = time.monotonic() + timeout, 0
    while time.monotonic() < deadline and quiet < 3:
        before = tree_cpu_seconds(pid)
        await asyncio.sleep(1.0)
        quiet = quiet + 1 if tree_cpu_seconds(pid) - before < 0.1 else 0
    if quiet < 3:
        print("  (the console did not settle: measuring anyway)")


def children_of(pid: int) -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and _parent(int(p)) == pid]


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and its descendants alive now (ended ones are not counted:
    their time moves to the parent's children fields only once reaped)."""
    total, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        try:
            total += cpu_seconds(current)
        except (OSError, ValueError, IndexError):
            continue
        pending.extend(children_of(current))
    return total


@contextlib.contextmanager
def serving(base: Path, max_sessions: int, memory: str, log_path: Path | None):
    """A `dumplab serve` on a free port for the block; (url, process). Always stopped."""
    port = free_port()
    log = log_path.open("ab") if log_path else subprocess.DEVNULL
    server = subprocess.Popen(
        [sys.executable, "-m", "console.cli", "serve", "--port", str(port),
         "--workdir", str(base), "--memory", memory, "--max-sessions", str(max_sessions),
         "--instructor-token", TOKEN],
        cwd=ROOT, stdout=log, stderr=log)
    try:
        for _ in range(150):
            if server.poll() is not None:
                raise SystemExit(f"dumplab serve ended at start (status {server.returncode})")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/?name=probe", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        yield f"127.0.0.1:{port}", server
    finally:
        stop_server(server)
        if log_path:
            log.close()


def stop_server(server: subprocess.Popen) -> None:
    """SIGTERM (the server ends its consoles), then SIGKILL for the whole group if it hangs."""
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            print("    the server did not stop in 15 s: killing it and its consoles")
            for child in children_of(server.pid):
                with contextlib.suppress(OSError):
                    os.kill(child, signal.SIGKILL)
            server.kill()
            server.wait(5)


# --------------------------------------------------------------------------------------------
# N browsers


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# What each browser does before the timed keys: the dump workflow, typed at the console's
# command line (`:`), as an operator would run it from the HMC's tasks. The console holds at
# each workflow stage by default (stage-stop), which would leave the dump waiting for F5. A
# `wait-for` typed after its event happened waits out its timeout (virtual time): harmless
# while the LPAR idles (it sleeps to its timers), but 5 s of four spinning CPUs would take
# minutes of host time, so nothing waits for the hang: Stop all follows it.
WORKFLOW = ("stage-stop off", "activate", "load 0100", "wait-for stage workload", "kdump load",
            "wait-for event kexec", "fault hang spin", "stop all", "load 0200 store",
            "wait-for event dump_written timeout=120s")


TOKEN = "bench"
# A key that switches the console's view redraws most of the screen: 4-15 KiB in one message
# (measured at 120x40). The status line of a running LPAR, redrawn every second, and the
# small updates that follow a switch are a few hundred bytes: they are not the key's frame.
VIEW_REDRAW_BYTES = 2048
# Drawn when the command prompt (`:`) opens: its title says how to use it (the OS command
# line's label says "Up: history" too, so that is not the mark).
PROMPT_MARK = b"Esc: cancel"
ended: list[str] = []  # browsers whose session the server ended, with its reason
notes: list[str] = []  # what went wrong in a browser that still goes on


def row_of(url: str, name: str) -> dict:
    """This browser's row of the instructor's table (the bench's server has a token); empty
    while the server is too busy to answer."""
    try:
        with urllib.request.urlopen(f"http://{url}/instructor/sessions.json?token={TOKEN}",
                                    timeout=10) as response:
            rows = json.loads(response.read())
    except (OSError, ValueError):
        return {}
    return next((row for row in rows if row["trainee"] == name), {})


async def browser(url: str, name: str, keys: int, latencies: list[float],
                  timeout: float) -> None:
    """One browser tab; whatever goes wrong ends only this tab, with the reason noted."""
    try:
        await drive_console(url, name, keys, latencies, timeout)
    except Exception as error:  # noqa: BLE001 - a bench reports, it does not stop
        ended.append(f"{name}: {type(error).__name__}: {error}")


async def drive_console(url: str, name: str, keys: int, latencies: list[float],
                        timeout: float) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as client, client.ws_connect(
            f"ws://{url}/ws?width=120&height=40", origin=f"http://{url}",
            headers={"Cookie": f"dumplab_trainee={name}"}, timeout=30) as websocket:
        drawn = asyncio.Event()
        received = 0
        since_key = bytearray()  # what the console drew since the last key sent

        async def read() -> None:
            nonlocal received
            while True:
                message = await websocket.receive()
                if message.type == aiohttp.WSMsgType.BINARY:
                    received += len(message.data)
                    if len(since_key) < 1 << 20:
                        since_key.extend(message.data)
                    if len(message.data) >= VIEW_REDRAW_BYTES:
                        drawn.set()
                elif message.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.PING,
                                          aiohttp.WSMsgType.PONG):
                    ended.append(f"{name}: {message.extra or message.type.name}")
                    drawn.set()
                    return

        async def send(text: str) -> None:
            if not ended_here():
                since_key.clear()
                await websocket.send_str(json.dumps(["stdin", text]))

        async def seen(marker: bytes, seconds: float) -> bool:
            """Whether the console drew marker since the last key, within seconds."""
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline and not ended_here():
                if marker in since_key:
                    return True
                await asyncio.sleep(0.05)
            return False

        async def type_command(line: str) -> None:
            """As an operator would on a slow screen: open the prompt and look that it is
            there, then type the line and Enter, and look that the console drew something
            (the prompt closing). A loaded host draws late; keys typed blind would land on
            the main screen as its hot keys. (The line's echo is not looked for: a busy
            console draws it in pieces.)"""
            for _ in range(3):
                await send(":")
                if await seen(PROMPT_MARK, 15):
                    break
                await send("\x1b")
                await asyncio.sleep(1.0)
            else:
                raise TimeoutError(f"no command prompt for {line!r}")
            await send(line + "\r")
            deadline = time.monotonic() + 30
            while not since_key and time.monotonic() < deadline and not ended_here():
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)

        def ended_here() -> bool:
            return any(line.startswith(f"{name}:") for line in ended)

        reader = asyncio.create_task(read())
        try:
            await websocket.send_str(json.dumps(["resize", {"width": 120, "height": 40}]))
            deadline = time.monotonic() + 60
            while received < 1000 and not ended_here():
                if time.monotonic() > deadline:
                    raise TimeoutError("no first screen in 60 s")
                await asyncio.sleep(0.1)
            # Started when its screen is still for a moment: a key sent earlier can be lost.
            quiet_since, seen_bytes = time.monotonic(), received
            while time.monotonic() - quiet_since < 2.0 and time.monotonic() < deadline + 60:
                await asyncio.sleep(0.1)
                if received != seen_bytes:
                    quiet_since, seen_bytes = time.monotonic(), received
            await send("\x1b")  # out of the OS command line, where the console starts
            await asyncio.sleep(0.5)
            for line in WORKFLOW:
                await type_command(line)
            deadline = time.monotonic() + timeout  # until this console wrote its dump
            while time.monotonic() < deadline and not ended_here():
                if (await asyncio.to_thread(row_of, url, name)).get("dumps", 0):
                    break
                await asyncio.sleep(1.0)
            else:
                if not ended_here():
                    notes.append(f"{name}: no dump written in {timeout:g} s (keys sent anyway)")
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
        finally:
            reader.cancel()


async def run_all(url: str, count: int, keys: int, latencies: list[float],
                  timeout: float) -> None:
    browsers = [asyncio.create_task(browser(url, f"b{index}", keys, latencies, timeout))
                for index in range(count)]
    # Each browser bounds its own waits; this bounds the lot (a wedged connection).
    _, pending = await asyncio.wait(browsers, timeout=timeout + 60 + keys * 6)
    for task in pending:
        task.cancel()
    if pending:
        ended.append(f"{len(pending)} browsers still busy at the bench's deadline: cancelled")
        await asyncio.gather(*pending, return_exceptions=True)


def dumps_of(status: Path) -> int:
    """The dumps a console says it wrote (its own status.json)."""
    try:
        return int(json.loads(status.read_text()).get("dumps", 0))
    except (OSError, ValueError, AttributeError):
        return 0


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def sessions(counts: list[int], keys: int, timeout: float, log_path: Path | None,
             keep: Path | None, memory: str) -> None:
    print(f"{os.cpu_count()} host cores; load average before: {load_average()}")
    print(f"{'N':>3} {'median ms':>10} {'p95 ms':>8} {'RSS/console MiB':>16} {'dumps':>6} "
          f"{'wall s':>7} {'load after':>16}")
    best = 0
    for count in counts:
        latencies: list[float] = []
        rss, dumps, started = 0.0, 0, time.monotonic()
        with tempfile.TemporaryDirectory(prefix="dumplab-bench-") as scratch:
            base = keep / f"n{count}" if keep else Path(scratch)
            with serving(base, count, memory, log_path) as (url, server):
                asyncio.run(run_all(url, count, keys, latencies, timeout))
                children = children_of(server.pid)
                rss = statistics.mean(rss_mib(p) for p in children) if children else 0.0
                dumps = sum(dumps_of(status) for status in base.glob("session-*/status.json"))
        wall = time.monotonic() - started
        for line in ended:
            print(f"    session ended early: {line}")
        for line in notes:
            print(f"    {line}")
        ended.clear()
        notes.clear()
        if not latencies:
            print(f"{count:3d} {'-':>10} {'-':>8} {rss:16.0f} {dumps:6d} {wall:7.0f} "
                  f"{load_average():>16}")
            continue
        latencies.sort()
        p95 = latencies[int(0.95 * (len(latencies) - 1))]
        if p95 < 0.2:
            best = count
        print(f"{count:3d} {1000 * statistics.median(latencies):10.0f} {1000 * p95:8.0f} "
              f"{rss:16.0f} {dumps:6d} {wall:7.0f} {load_average():>16}", flush=True)
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
    idle_parser.add_argument("--log", type=Path, help="append the server's log here")
    sessions_parser = sub.add_parser("sessions")
    sessions_parser.add_argument("counts", nargs="*", type=int, default=[1, 8, 16, 32])
    sessions_parser.add_argument("--keys", type=int, default=20)
    sessions_parser.add_argument("--log", type=Path, help="append the servers' logs here")
    sessions_parser.add_argument("--keep", type=Path, metavar="DIR",
                                 help="keep the session directories in DIR/nN")
    sessions_parser.add_argument("--timeout", type=float, default=300.0,
                                 help="seconds each browser waits for its dump")
    sessions_parser.add_argument("--memory", default="128M", help="each LPAR's memory")
    args = parser.parse_args()
    if args.what == "idle":
        idle(args.seconds, args.memory)
        served_idle(args.seconds, args.memory, args.log)
    else:
        sessions(args.counts, args.keys, args.timeout, args.log, args.keep, args.memory)
    return 0


if __name__ == "__main__":
    sys.exit(main())
