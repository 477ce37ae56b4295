"""The classroom's limits, lifecycle and instructor view (issue 12): `dumplab serve` with
hostile or crashing clients, and an instructor watching two trainees.

Each test starts its own server (a subprocess on a free port) with the limits it needs; the
browsers are aiohttp websocket clients speaking textual-serve's protocol (see test_serve.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import aiohttp
import pytest
from test_serve import PROC, ROOT, Server, alive, children, free_port, serve_argv, stop_server

from console.classroom import channel
from console.classroom.limits import (
    MAX_HEIGHT,
    MAX_WIDTH,
    STDIN_MAX_CHARS,
    InputBudget,
    address_space_limit,
    clamp_size,
    default_max_sessions,
)

pytestmark = [pytest.mark.timeout(120),
              pytest.mark.skipif(not PROC.is_dir(), reason="needs Linux /proc")]
MIB = 1 << 20
TOKEN = "s3cret-token"


def start(tmp: Path, *extra: str) -> Server:
    port, base, log = free_port(), tmp / "classroom", tmp / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(serve_argv(port, base, "--memory", "128M", *extra),
                                   cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    server = Server(process, port, base.resolve(), log)
    deadline = time.monotonic() + 20
    while True:
        if process.poll() is not None:
            pytest.fail(f"dumplab serve exited with {process.returncode}:\n{server.output()}")
        try:
            with urllib.request.urlopen(server.url + "/?name=probe", timeout=2):
                return server
        except urllib.error.HTTPError:
            return server  # it answers (a full class is a 503)
        except OSError:
            if time.monotonic() > deadline:
                stop_server(server)
                pytest.fail(f"dumplab serve did not answer:\n{server.output()}")
            time.sleep(0.2)


class Tab:
    """A browser tab: a websocket, what it received, and how it was closed."""

    def __init__(self, websocket: aiohttp.ClientWebSocketResponse) -> None:
        self.websocket = websocket
        self.received = 0
        self.drawn = bytearray()  # what the console drew (escape sequences and text)
        self.closed: tuple[int | None, str] | None = None
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, client: aiohttp.ClientSession, server: Server, query: str = "",
                   **options: object) -> Tab:
        websocket = await client.ws_connect(
            f"{server.url}/ws?{query or 'width=100&height=30'}", origin=server.url, **options)
        return cls(websocket)

    async def _read(self) -> None:
        reason = ""
        while True:
            message = await self.websocket.receive()
            if message.type == aiohttp.WSMsgType.BINARY:
                self.received += len(message.data)
                self.drawn += message.data
            elif message.type == aiohttp.WSMsgType.CLOSE:
                reason = message.extra or ""
                break
            elif message.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING,
                                  aiohttp.WSMsgType.ERROR):
                break
        self.closed = (self.websocket.close_code, reason)

    async def send(self, *envelope: object) -> None:
        await self.websocket.send_str(json.dumps(list(envelope)))

    async def wait_closed(self, timeout: float = 15) -> tuple[int | None, str]:
        await asyncio.wait_for(self.reader, timeout)
        assert self.closed is not None
        return self.closed

    async def close(self) -> None:
        await self.websocket.close()
        await asyncio.wait_for(self.reader, 10)


def close_reason(tab: Tab) -> str:
    """The reason text the server sent with its close frame."""
    return tab.closed[1] if tab.closed else ""


async def until(condition, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


async def fetch(url: str) -> tuple[int, str]:
    return await asyncio.to_thread(get, url)


def consoles(server: Server) -> dict[int, list[str]]:
    found = children(server.process.pid)
    server.seen.update(found)
    return found


def environ(pid: int) -> dict[str, str]:
    pairs = (PROC / str(pid) / "environ").read_bytes().split(b"\0")
    return dict(p.decode().split("=", 1) for p in pairs if b"=" in p)


def wait_exit(process: subprocess.Popen[bytes], timeout: float) -> float:
    started = time.monotonic()
    process.wait(timeout=timeout)
    return time.monotonic() - started


# ---------------------------------------------------------------------------------------------
# Limits as functions


def test_terminal_sizes_are_clamped() -> None:
    assert clamp_size(10000, 10000) == (MAX_WIDTH, MAX_HEIGHT) == (300, 100)
    assert clamp_size("120", "40") == (120, 40)
    assert clamp_size(-5, None) == (20, 24)
    assert clamp_size("1e9", [1]) == (80, 24)


def test_input_budget_drops_floods_and_oversize_messages() -> None:
    budget = InputBudget(rate=1000, burst=4000, tokens=4000)
    assert not budget.take(STDIN_MAX_CHARS + 1, now=1.0)  # one pasted megabyte: refused
    assert budget.take(3000, now=1.0)
    assert not budget.take(2000, now=1.0)  # the burst is spent
    assert budget.take(2000, now=3.0)  # two seconds later, 2000 more were earned
    assert budget.dropped == STDIN_MAX_CHARS + 1 + 2000


def test_the_default_cap_follows_the_host() -> None:
    assert default_max_sessions(128 * MIB, cores=2, available=64 << 30) == 16  # cores x 8
    assert default_max_sessions(128 * MIB, cores=2, available=1 << 30) == 3  # 1 GiB / 278 MiB
    assert default_max_sessions(1 << 30, cores=2, available=100 * MIB) == 1
    assert address_space_limit(128 * MIB) > 128 * MIB


# ---------------------------------------------------------------------------------------------
# A server with hostile clients


def test_sessions_up_to_the_cap_then_the_class_is_full(tmp_path: Path) -> None:
    server = start(tmp_path, "--max-sessions", "2")

    async def scenario() -> None:
        async with aiohttp.ClientSession() as client:
            tabs = [await Tab.open(client, server), await Tab.open(client, server)]
            await until(lambda: len(consoles(server)) == 2, "two consoles")
            await until(lambda: all(t.received > 1000 for t in tabs), "both consoles to draw")
            # One more: the page says the class is full, the websocket is closed with the
            # reason, and no console process starts.
            status, page = await fetch(server.url + "/")
            assert status == 503 and "The class is full" in page
            extra = await Tab.open(client, server)
            code, _ = await extra.wait_closed()
            assert code == 1013 and "the class is full (2 sessions)" in close_reason(extra)
            assert len(consoles(server)) == 2
            # A seat frees when a trainee leaves: Ctrl+Q quits the console, and the browser
            # is told so.
            await tabs[0].send("stdin", "\x11")
            await tabs[0].wait_closed()
            assert close_reason(tabs[0]) == "the trainee quit the console"
            await until(lambda: len(consoles(server)) == 1, "the first console to end")
            assert (await fetch(server.url + "/"))[0] == 200
            await tabs[1].close()

    try:
        asyncio.run(scenario())
    finally:
        stop_server(server)


def test_size_input_and_plain_get_are_bounded(tmp_path: Path) -> None:
    server = start(tmp_path)

    async def scenario() -> None:
        async with aiohttp.ClientSession() as client:
            tab = await Tab.open(client, server, "width=10000&height=10000")
            await until(lambda: len(consoles(server)) == 1, "the console")
            (pid,) = consoles(server)
            env = environ(pid)
            assert (env["COLUMNS"], env["ROWS"]) == ("300", "100")
            # The console's address space is limited, its LPAR's storage counted.
            limits = (PROC / str(pid) / "limits").read_text()
            line = next(x for x in limits.splitlines() if x.startswith("Max address space"))
            assert int(line.split()[3]) == address_space_limit(128 * MIB)
            await tab.send("resize", {"width": 10000, "height": 10000})
            # A pasted megabyte: the websocket refuses the message (too big) and the
            # session ends; the console does not grow, the server goes on.
            await tab.send("stdin", "x" * (1 << 20))
            code, _ = await tab.wait_closed()
            assert code == 1009
            await until(lambda: not alive(pid), "the console to end", 10)
            # A plain GET on the websocket's URL: 426, no traceback in the log.
            assert (await fetch(server.url + "/ws"))[0] == 426
            # Without --instructor-token there is no instructor page.
            assert (await fetch(server.url + "/instructor?token=x"))[0] == 404

    try:
        asyncio.run(scenario())
    finally:
        stop_server(server)
    assert "Traceback" not in server.output()


def test_an_idle_session_ends_with_its_reason_and_keeps_its_files(tmp_path: Path) -> None:
    server = start(tmp_path, "--idle-timeout", "0.04")  # 2.4 s

    async def scenario() -> None:
        async with aiohttp.ClientSession() as client:
            tab = await Tab.open(client, server)
            await until(lambda: len(server.sessions()) == 1, "the session directory")
            await tab.wait_closed(timeout=20)
            assert "idle timeout: no input for 0.04 min" in close_reason(tab)

    try:
        asyncio.run(scenario())
        assert len(server.sessions()) == 1  # kept for the instructor
    finally:
        stop_server(server)


# ---------------------------------------------------------------------------------------------
# Lifecycle


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_the_server_stops_in_5_s_even_after_a_console_was_killed(
        tmp_path: Path, stop_signal: signal.Signals) -> None:
    server = start(tmp_path)

    async def scenario() -> None:
        async with aiohttp.ClientSession() as client:
            tabs = [await Tab.open(client, server), await Tab.open(client, server)]
            await until(lambda: len(consoles(server)) == 2, "two consoles")
            await until(lambda: all(t.received > 1000 for t in tabs), "both consoles to draw")
            crashed, survivor = sorted(consoles(server))
            os.kill(crashed, signal.SIGKILL)
            closed = [t for t in tabs if t.reader.done()]
            await until(lambda: any(t.reader.done() for t in tabs), "the crash to be told")
            closed = [t for t in tabs if t.reader.done()]
            assert "the console crashed (exit status -9); its log is session-" in \
                close_reason(closed[0])
            # Ctrl+C (or SIGTERM): the server ends the other console and itself, promptly.
            server.process.send_signal(stop_signal)
            assert wait_exit(server.process, 10) < 5.0
            assert server.process.returncode == 0
            assert not alive(survivor)
            (other,) = [t for t in tabs if t not in closed]
            await other.wait_closed()
            assert "the server is stopping" in close_reason(other)

    try:
        asyncio.run(scenario())
    finally:
        stop_server(server)
    output = server.output()
    assert "Traceback" not in output and "InvalidStateError" not in output, output


def test_a_frozen_console_does_not_hold_the_server(tmp_path: Path) -> None:
    """A console that neither reads nor quits (SIGSTOP: as hung as a process gets) is
    ended by SIGKILL within the stop budget."""
    server = start(tmp_path)

    async def scenario() -> None:
        async with aiohttp.ClientSession() as client:
            tab = await Tab.open(client, server)
            await until(lambda: len(consoles(server)) == 1, "the console")
            await until(lambda: tab.received > 1000, "the console to draw")
            (frozen,) = consoles(server)
            os.kill(frozen, signal.SIGSTOP)
            await tab.send("stdin", "x" * 4000)
            server.process.send_signal(signal.SIGINT)
            assert await asyncio.to_thread(wait_exit, server.process, 10) < 5.0
            assert server.process.returncode == 0
            await until(lambda: not alive(frozen), "the frozen console to be ended", 3)

    try:
        asyncio.run(scenario())
    finally:
        stop_server(server)
    assert "Traceback" not in server.output()


# ---------------------------------------------------------------------------------------------
# The instructor


def instructor(server: Server, path: str = "", data: dict[str, str] | None = None,
               token: str = TOKEN) -> tuple[int, str]:
    body = None if data is None else "&".join(f"{k}={v}" for k, v in data.items()).encode()
    request = urllib.request.Request(f"{server.url}/instructor{path}?token={token}", data=body,
                                     headers={"Origin": server.url} if data else {})
    try:
        with NO_REDIRECTS.open(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # an action answers 303 to the table: the test looks at the 303 itself


NO_REDIRECTS = urllib.request.build_opener(_NoRedirect)


def test_the_instructor_sees_two_sessions_and_injects_a_fault(tmp_path: Path) -> None:
    server = start(tmp_path, "--instructor-token", TOKEN)

    async def scenario() -> None:
        async with aiohttp.ClientSession() as client:
            # Trainees give their name first: the page asks for it.
            assert "Your name, for the instructor" in (await fetch(server.url + "/"))[1]
            ada = await Tab.open(client, server, headers={"Cookie": "dumplab_trainee=Ada"})
            bob = await Tab.open(client, server, headers={"Cookie": "dumplab_trainee=Bob"})
            await until(lambda: len(server.sessions()) == 2, "two session directories")
            assert instructor(server, token="wrong")[0] == 403

            def rows() -> list[dict]:
                status, text = instructor(server, "/sessions.json")
                assert status == 200
                return json.loads(text)

            await until(lambda: {r["state"] for r in rows()} == {"not activated"},
                        "both consoles to report", 30)
            by_name = {row["trainee"]: row for row in rows()}
            assert set(by_name) == {"Ada", "Bob"}
            seat = by_name["Ada"]["seat"]
            status, _ = instructor(server, f"/{seat}/fault", {"fault": "hang+spin"})
            assert status == 303  # back to the table
            # Ada's console ran it (and refused it: her LPAR is not activated yet).
            await until(lambda: b"fault hang spin" in ada.drawn, "the fault on Ada's screen")
            status, _ = instructor(server, f"/{seat}/message", {"text": "look+at+CPU+2"})
            assert status == 303
            assert instructor(server, f"/{seat}/fault", {"fault": "rm+-rf"})[0] == 400

            def ada_row() -> dict:
                return {row["trainee"]: row for row in rows()}["Ada"]

            await until(lambda: ada_row()["faults"] == ["hang spin"]
                        and ada_row()["messages"] == 1,
                        "Ada's console to take the fault and the message")
            assert {row["trainee"]: row for row in rows()}["Bob"]["faults"] == []
            status, table = instructor(server)
            assert status == 200 and "<td>Ada</td>" in table and "<td>Bob</td>" in table
            assert "hang spin" in table
            # The action went through the session's channel file.
            workdir = server.base / by_name["Ada"]["workdir"]
            assert channel.read_actions(workdir, 0)[0][0] == {"action": "fault",
                                                               "fault": "hang spin"}
            # ... and showed the message on Ada's screen, without an error in its log.
            await until(lambda: b"look at CPU 2" in ada.drawn, "the message on Ada's screen")
            assert b"look at CPU 2" not in bob.drawn
            log = workdir / "console.log"
            assert "classroom agent" not in (log.read_text() if log.exists() else "")
            # Ending Bob's session tells Bob why.
            assert instructor(server, f"/{by_name['Bob']['seat']}/end", {})[0] == 303
            await bob.wait_closed()
            assert close_reason(bob) == "the instructor ended the session"
            await ada.close()

    try:
        asyncio.run(scenario())
    finally:
        stop_server(server)


@pytest.mark.parametrize(("argv", "message"), [
    (["--max-sessions", "0"], "--max-sessions: not a positive whole number"),
    (["--idle-timeout", "-1"], "--idle-timeout: not a number of minutes"),
    (["--memory", "2G"], "2G of storage per console is more than a classroom allows (1G)"),
    (["--behind-proxy", "--host", "0.0.0.0"], "--behind-proxy needs a loopback --host"),
])
def test_bad_limits_exit_2(tmp_path: Path, argv: list[str], message: str) -> None:
    done = subprocess.run([sys.executable, "-m", "console.cli", "serve", "--workdir",
                           str(tmp_path / "base"), *argv], cwd=ROOT, capture_output=True,
                          text=True, timeout=30, stdin=subprocess.DEVNULL, check=False)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and done.stdout == ""
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1].startswith("dumplab serve: error:")
