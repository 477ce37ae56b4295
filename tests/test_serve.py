"""`dumplab serve`: the console in browsers, one LPAR and work directory per connection.

A real server runs in a subprocess on a free port; the browsers are aiohttp websocket clients
that speak textual-serve's protocol (its static/js/textual.js): connect to /ws, send
["resize", {width, height}] and ["ping", ...], then ["stdin", keys].
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from console.classroom.serve import DEFAULT_HOST, is_loopback, session_argv
from console.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
PROC = Path("/proc")
START_TIMEOUT = 20.0
SESSION_TIMEOUT = 25.0

pytestmark = pytest.mark.timeout(90)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve_argv(port: int, base: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "console.cli", "serve", "--port", str(port),
            "--workdir", str(base), *extra]


def children(pid: int) -> dict[int, list[str]]:
    """The processes whose parent is `pid`, with their argument vectors (Linux /proc)."""
    found: dict[int, list[str]] = {}
    for entry in PROC.iterdir() if PROC.is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found[int(entry.name)] = [part.decode() for part in argv if part]
    return found


def alive(pid: int) -> bool:
    try:
        return (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def open_dirs(pid: int, base: Path) -> set[Path]:
    """The session directories under `base` whose files process `pid` holds open."""
    dirs = set()
    for fd in (PROC / str(pid) / "fd").iterdir():
        try:
            target = Path(os.readlink(fd))
        except OSError:
            continue
        if target.parent.parent == base:
            dirs.add(target.parent)
    return dirs


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    base: Path
    log: Path
    seen: set[int] = field(default_factory=set)  # console processes seen, ended at teardown

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def sessions(self) -> list[Path]:
        return sorted(self.base.glob("session-*"))


def start_server(tmp: Path) -> Server:
    port, base, log = free_port(), tmp / "classroom", tmp / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(serve_argv(port, base, "--memory", "128M"), cwd=ROOT,
                                   stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    server = Server(process, port, base.resolve(), log)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process.poll() is not None:
            pytest.fail(f"dumplab serve exited with {process.returncode}:\n{server.output()}")
        try:
            with urllib.request.urlopen(server.url + "/", timeout=2):
                return server
        except OSError:
            if time.monotonic() > deadline:
                stop_server(server)
                pytest.fail(f"dumplab serve did not answer in {START_TIMEOUT} s:\n"
                            f"{server.output()}")
            time.sleep(0.2)


def stop_server(server: Server) -> None:
    server.seen.update(children(server.process.pid))
    server.process.terminate()
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
    for pid in server.seen:  # a console that outlived its server would be a bug: end it anyway
        if alive(pid):
            os.kill(pid, 9)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("serve"))
    try:
        yield running
    finally:
        stop_server(running)


# ---------------------------------------------------------------------------------------------
# The page and the binding


def test_serve_answers_on_localhost_with_the_textual_serve_page(server: Server) -> None:
    with urllib.request.urlopen(server.url + "/", timeout=5) as response:
        assert response.status == 200
        page = response.read().decode()
    assert 'class="textual-terminal"' in page and "js/textual.js" in page
    assert f'data-session-websocket-url="ws://127.0.0.1:{server.port}/ws"' in page
    assert "DumpLab HMC" in page
    # The page's URLs follow the host the browser used: an SSH tunnel to localhost works.
    request = urllib.request.Request(server.url + "/", headers={"Host": "localhost:9999"})
    with urllib.request.urlopen(request, timeout=5) as response:
        assert 'data-session-websocket-url="ws://localhost:9999/ws"' in response.read().decode()


def test_the_default_bind_address_is_the_loopback(server: Server) -> None:
    args = build_parser().parse_args(["serve"])
    assert args.host == DEFAULT_HOST == "127.0.0.1"
    # The server above was started without --host: another local address does not reach it
    # (with 0.0.0.0 it would; on Linux all of 127/8 is local).
    with pytest.raises(OSError), socket.create_connection(("127.0.0.2", server.port), 2):
        pass


def test_loopback_names() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert is_loopback("[::1]")
    assert not is_loopback("0.0.0.0") and not is_loopback("::")
    assert not is_loopback("192.168.1.10") and not is_loopback("classroom.example")


def test_other_web_sites_cannot_open_a_console(server: Server) -> None:
    before = server.sessions()

    async def connect(**options: str) -> int:
        async with aiohttp.ClientSession() as client:
            try:
                async with client.ws_connect(server.url + "/ws", **options):
                    return 101
            except aiohttp.WSServerHandshakeError as error:
                return error.status

    # A page of another site, in the instructor's browser, opening the websocket:
    assert asyncio.run(connect(origin="http://evil.example")) == 403
    # DNS rebinding: a foreign name resolving to 127.0.0.1.
    assert asyncio.run(connect(headers={"Host": f"evil.example:{server.port}"})) == 421
    request = urllib.request.Request(server.url + "/",
                                     headers={"Host": f"evil.example:{server.port}"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    assert refused.value.code == 421
    assert server.sessions() == before  # no console was started


# ---------------------------------------------------------------------------------------------
# Two browsers


class Browser:
    """A browser tab as textual-serve's client drives it."""

    def __init__(self, websocket: aiohttp.ClientWebSocketResponse) -> None:
        self.websocket = websocket
        self.received = 0
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, client: aiohttp.ClientSession, server: Server) -> Browser:
        websocket = await client.ws_connect(f"{server.url}/ws?width=120&height=40",
                                            origin=server.url)
        await websocket.send_str(json.dumps(["resize", {"width": 120, "height": 40}]))
        await websocket.send_str(json.dumps(["ping", str(int(time.time() * 1000))]))
        return cls(websocket)

    async def _read(self) -> None:
        async for message in self.websocket:
            if message.type == aiohttp.WSMsgType.BINARY:
                self.received += len(message.data)

    async def key(self, key: str, *, then_wait_for_screen: bool = False) -> None:
        drawn = self.received
        await self.websocket.send_str(json.dumps(["stdin", key]))
        if then_wait_for_screen:  # the console took the key on its own (Esc then "a" is Alt+A)
            deadline = time.monotonic() + 5
            while self.received == drawn and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.2)

    async def activate(self, candidates: list[Path]) -> Path:
        """Esc (out of the command line, where the console starts), then A: Activate, until
        one of `candidates` (work directories without an LPAR yet) has the device files:
        that is this browser's directory."""
        for _ in range(5):
            await self.key("\x1b", then_wait_for_screen=True)
            await self.key("a")
            try:
                await until(lambda: any(map(activated, candidates)), "an LPAR's devices", 5)
            except pytest.fail.Exception:
                continue
            (mine,) = [directory for directory in candidates if activated(directory)]
            return mine
        pytest.fail("the LPAR did not activate")

    async def close(self) -> None:
        await self.websocket.close()
        await asyncio.wait_for(self.reader, 10)


def activated(directory: Path) -> bool:
    return (directory / "dev-0100.img").is_file() and (directory / "dev-0200.img").is_file()


async def until(condition, what: str, timeout: float = SESSION_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


def test_two_connections_do_not_share_an_lpar_or_files(server: Server) -> None:
    before = set(server.sessions())

    def new_sessions() -> list[Path]:
        return sorted(set(server.sessions()) - before)

    async def scenario() -> None:
        async with aiohttp.ClientSession() as client:
            browsers = [await Browser.open(client, server), await Browser.open(client, server)]
            try:
                await until(lambda: len(new_sessions()) == 2, "two session directories")
                await until(lambda: all(b.received > 1000 for b in browsers),
                            "both consoles to draw")
                first, second = new_sessions()
                assert first != second and first.parent == second.parent == server.base
                # The first browser activates its LPAR; the second one's directory stays
                # without device files until the second browser activates its own.
                mine = await browsers[0].activate([first, second])
                (theirs,) = {first, second} - {mine}
                assert not (theirs / "dev-0100.img").exists()
                assert await browsers[1].activate([theirs]) == theirs
                assert (mine / "dev-0200.img").stat().st_ino != \
                    (theirs / "dev-0200.img").stat().st_ino

                consoles = children(server.process.pid)
                if PROC.is_dir():
                    # One console process per browser, started without a shell: the server's
                    # children are this Python running the console, nothing else.
                    assert len(consoles) == 2, consoles
                    for argv in consoles.values():
                        assert argv[1:4] == ["-m", "console.cli", "--workdir-per-session"]
                        assert Path(argv[0]).name.startswith("python")
                    # ... and each holds files of its own directory only.
                    held = [open_dirs(pid, server.base) for pid in consoles]
                    assert sorted(map(sorted, held)) == sorted([[mine], [theirs]])
                server.seen.update(consoles)
            finally:
                for browser in browsers:
                    await browser.close()
            if PROC.is_dir():
                await until(lambda: not any(map(alive, consoles)),
                            "the consoles to end after their browsers closed", timeout=15)

    asyncio.run(scenario())


# ---------------------------------------------------------------------------------------------
# Command-line errors


def run_serve(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "console.cli", "serve",
                           "--workdir", str(tmp_path / "base"), *argv],
                          cwd=ROOT, capture_output=True, text=True, timeout=30,
                          stdin=subprocess.DEVNULL, check=False)


def test_a_port_in_use_is_one_line_and_exit_1(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_serve(tmp_path, "--port", str(port))
        # --host 0.0.0.0 warns first; the port is taken, so nothing is exposed by this test.
        exposed = run_serve(tmp_path, "--port", str(port), "--host", "0.0.0.0")
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        (f"dumplab serve: cannot listen on 127.0.0.1 port {port}: the port is in use "
         "(choose another with --port)")]
    assert exposed.returncode == 1
    warning, error = exposed.stderr.splitlines()
    assert warning.startswith("dumplab serve: warning: listening on 0.0.0.0: the console is "
                              "now reachable from the network")
    assert "port is in use" in error


@pytest.mark.parametrize("argv", [["--memory", "12Q"], ["--cpus", "0"], ["--profile", "nope"],
                                  ["--port", "70000"]])
def test_bad_options_exit_2(tmp_path: Path, argv: list[str]) -> None:
    done = run_serve(tmp_path, *argv)
    assert done.returncode == 2, done.stderr
    assert "dumplab serve: error:" in done.stderr
    assert done.stdout == ""


def test_each_console_runs_this_python_with_absolute_paths(tmp_path: Path) -> None:
    argv = session_argv(Path("rel/base"), "my/profile.toml", cpus=2, memory="512M")
    assert argv[:3] == [sys.executable, "-m", "console.cli"]
    assert argv[3:5] == ["--workdir-per-session", str(Path("rel/base").resolve())]
    assert argv[5:7] == ["--profile", str(Path("my/profile.toml").resolve())]
    assert argv[7:] == ["--cpus", "2", "--memory", "512M"]
    assert session_argv(tmp_path, "default")[5:] == ["--profile", "default"]
