"""`dumplab serve`: the console in web browsers, for a classroom (docs/CLASSROOM.md).

textual-serve runs one process per browser connection. That process is the console itself
(`python -m console.cli --workdir-per-session BASE ...`), started with an argument vector
fixed when the server starts, and without a shell: textual-serve 1.1 hands its command string
to `asyncio.create_subprocess_shell`, so the server here replaces that step with
`create_subprocess_exec`. What a browser sends after that (keys, mouse, terminal size) only
reaches the console's standard input, as textual-serve's framed packets.

Each console creates its own work directory under BASE (`session-DATE-TIME-XXXXXXXX`), so
each connection has its own LPAR and its own device and dump files. The server listens on
127.0.0.1 unless --host says otherwise; it refuses websocket connections from another origin
(another web site in the instructor's browser) and, when bound to the loopback address,
requests for a host name that is not a loopback name (DNS rebinding).

aiohttp and textual-serve are imported only by `dumplab serve`, so that the other commands
do not pay for them.
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import os
import re
import shlex
import signal
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from console.control.exits import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from console.control.session import Session
from console.tui.terminal import served_in_browser
from machine.profile import ProfileError, parse_size

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8000
DEFAULT_BASE = Path("dumplab-classroom")
TITLE = "DumpLab HMC"
STOP_TIMEOUT = 10.0  # seconds a console gets to quit after its browser went away
ORPHAN_GRACE = 5.0   # seconds a console whose server died gets to quit before it is ended
# A Host header as the index page may repeat it: a name or IPv4 address, or an IPv6 literal,
# with an optional port. Anything else is refused (the page is not HTML-escaped).
HOST_HEADER = re.compile(r"(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?")


# --------------------------------------------------------------------------------------------
# The command line


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"not a TCP port: {text!r} (1 to 65535)")
    return port


def _memory(text: str) -> str:
    """A valid --memory, kept as typed: it is passed on to each console."""
    try:
        parse_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def add_serve_parser(subcommands: Any) -> argparse.ArgumentParser:
    """The `dumplab serve` subcommand."""
    parser = subcommands.add_parser(
        "serve", help="serve the console to web browsers (a classroom)",
        description="Serve the console (TUI) to web browsers through textual-serve. Each "
                    "browser connection gets its own console process, LPAR and work directory "
                    "(BASE/session-*); no shell is reachable through it. See "
                    "docs/CLASSROOM.md.")
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help=f"the address to listen on (default: {DEFAULT_HOST}, this machine "
                             "only; 0.0.0.0 makes the console reachable from the network)")
    parser.add_argument("--port", type=_port, default=DEFAULT_PORT,
                        help=f"the TCP port (default: {DEFAULT_PORT})")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_BASE, metavar="BASE",
                        help="where each connection's work directory is created "
                             f"(default: ./{DEFAULT_BASE})")
    parser.add_argument("--profile", default="default", metavar="NAME",
                        help="activation profile of every console: a name from "
                             "assets/profiles/ or a .toml file (default: default)")
    parser.add_argument("--cpus", type=int, metavar="N", help="override the profile's CPU count")
    parser.add_argument("--memory", type=_memory, metavar="SIZE",
                        help="override the profile's memory size (e.g. 512M, 1G)")
    return parser


def session_argv(base: Path, profile: str, cpus: int | None = None,
                 memory: str | None = None) -> list[str]:
    """The argument vector of one browser's console: this Python, the console, a fresh work
    directory under `base`. Paths are made absolute: the consoles must not depend on the
    directory they start in."""
    if "/" in profile or profile.endswith(".toml"):
        profile = str(Path(profile).resolve())
    argv = [sys.executable, "-m", "console.cli", "--workdir-per-session", str(base.resolve()),
            "--profile", profile]
    if cpus is not None:
        argv += ["--cpus", str(cpus)]
    if memory is not None:
        argv += ["--memory", memory]
    return argv


def is_loopback(host: str) -> bool:
    """Whether `host` (an address or name to listen on, or a Host header's name) is this
    machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _display_url(host: str, port: int) -> str:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return f"http://{host}:{port}/"
    if address.is_unspecified:
        return f"http://{socket.gethostname()}:{port}/"
    return f"http://[{host}]:{port}/" if address.version == 6 else f"http://{host}:{port}/"


def serve_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """`dumplab serve`: serve the console until interrupted (Ctrl+C, SIGTERM)."""
    overrides: dict[str, Any] = {}
    if args.cpus is not None:
        overrides["cpus"] = args.cpus
    if args.memory is not None:
        overrides["memory"] = parse_size(args.memory)
    try:  # a bad profile or override is a usage error now, not in every browser later
        Session(args.workdir, args.profile, overrides).resolve_profile()
    except ProfileError as error:
        err.write(f"dumplab serve: error: {error}\n")
        return EXIT_USAGE
    try:
        args.workdir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        err.write(f"dumplab serve: cannot create {args.workdir}: {error.strerror or error}\n")
        return EXIT_FAILED
    argv = session_argv(args.workdir, args.profile, args.cpus, args.memory)
    if not is_loopback(args.host):
        err.write(f"dumplab serve: warning: listening on {args.host}: the console is now "
                  "reachable from the network (anyone who reaches this port gets an LPAR)\n")
        err.flush()

    def ready() -> None:
        out.write(f"dumplab serve: the console is at {_display_url(args.host, args.port)} "
                  f"(one LPAR per browser tab, work directories in {args.workdir.resolve()}); "
                  "Ctrl+C stops\n")
        out.flush()

    try:
        _build_server(argv, args.host, args.port, loopback=is_loopback(args.host)).run(ready)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            reason = "the port is in use (choose another with --port)"
        else:
            reason = error.strerror or str(error)
        err.write(f"dumplab serve: cannot listen on {args.host} port {args.port}: {reason}\n")
        return EXIT_FAILED
    return EXIT_OK


# --------------------------------------------------------------------------------------------
# Inside each browser's console process (the hidden console option --workdir-per-session)



def session_workdir(base: Path) -> Path:
    """A fresh work directory under `base` for this console, which also quits if the server
    that started it dies (a console must not run on without its browser)."""
    base.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(dir=base, prefix=time.strftime("session-%Y%m%d-%H%M%S-")))
    if served_in_browser():
        threading.Thread(target=_quit_with_parent, args=(os.getppid(),), daemon=True,
                         name="dumplab-serve-parent").start()
    return workdir


def _quit_with_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os.kill(os.getpid(), signal.SIGTERM)  # Textual's web driver makes it a clean exit
    time.sleep(ORPHAN_GRACE)
    os._exit(EXIT_FAILED)


# --------------------------------------------------------------------------------------------
# The server: textual-serve's, with the process started without a shell


def _origin_matches(origin: str | None, host: str) -> bool:
    """Whether a request's Origin header (absent for clients that are not browsers) names the
    server it was sent to: a page of another web site must not open a console."""
    if origin is None:
        return True
    return urlsplit(origin).netloc.lower() == host.lower()


def _build_server(argv: list[str], host: str, port: int, *, loopback: bool) -> Any:
    """textual-serve's Server, serving `argv`: imported here, only by `dumplab serve`."""
    import asyncio

    import aiohttp_jinja2
    from aiohttp import WSCloseCode, web
    from textual_serve.app_service import AppService
    from textual_serve.server import Server, log, to_int

    class SessionService(AppService):
        """One browser's console, started from an argument vector: no shell."""

        def __init__(self, argv: tuple[str, ...], **kwargs: Any) -> None:
            super().__init__(shlex.join(argv), **kwargs)
            self.argv = argv

        async def _open_app_process(self, width: int = 80, height: int = 24) -> Any:
            self._process = process = await asyncio.create_subprocess_exec(
                *self.argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=self._build_environment(width=width, height=height))
            self._stdin = process.stdin
            return process

        async def stop(self) -> None:
            """Ask the console to quit; end it if it has not after STOP_TIMEOUT."""
            try:
                await asyncio.wait_for(super().stop(), STOP_TIMEOUT)
            except (TimeoutError, ConnectionError):
                self._task = None
            process = self._process
            if process is not None and process.returncode is None:
                try:
                    await asyncio.wait_for(process.wait(), 1.0)
                except TimeoutError:
                    log.warning("a console did not quit: ending process %d", process.pid)
                    process.kill()
                    await process.wait()

    class ClassroomServer(Server):
        def __init__(self) -> None:
            super().__init__(shlex.join(argv), host=host, port=port, title=TITLE)
            self.argv = tuple(argv)
            self.sessions = 0
            self.websockets: set[web.WebSocketResponse] = set()

        def _host_allowed(self, request: web.Request) -> bool:
            if not HOST_HEADER.fullmatch(request.host):
                return False
            return not loopback or is_loopback(urlsplit(f"//{request.host}").hostname or "")

        async def on_startup(self, app: web.Application) -> None:
            """Quiet: serve_command says where the console is once the port is bound."""

        async def on_shutdown(self, app: web.Application) -> None:
            """Close the browsers' connections, so that their consoles quit now, not when
            aiohttp's shutdown timeout runs out."""
            for websocket in list(self.websockets):
                await websocket.close(code=WSCloseCode.GOING_AWAY, message=b"server stopped")

        def run(self, ready: Any) -> None:
            self.initialize_logging()
            web.run_app(self._make_app(), host=self.host, port=self.port,
                        handle_signals=True, print=lambda _text: ready())

        @aiohttp_jinja2.template("app_index.html")
        async def handle_index(self, request: web.Request) -> dict[str, Any]:
            """The page, with its URLs on the host the browser asked for: it works through
            an SSH tunnel on another port and with --host 0.0.0.0."""
            if not self._host_allowed(request):
                raise web.HTTPMisdirectedRequest(text="dumplab serve: unknown host\n")
            scheme = "https" if request.secure else "http"
            base = f"{scheme}://{request.host}"
            return {
                "font_size": max(6, min(48, to_int(request.query.get("fontsize", "16"), 16))),
                "app_websocket_url": ("wss" if request.secure else "ws")
                + f"://{request.host}{request.app.router['websocket'].url_for()}",
                "config": {"static": {"url": f"{base}/static/"}},
                "application": {"name": TITLE},
            }

        async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
            """textual-serve's handler, with SessionService and the host and origin checks."""
            if not self._host_allowed(request):
                raise web.HTTPMisdirectedRequest(text="dumplab serve: unknown host\n")
            if not _origin_matches(request.headers.get("Origin"), request.host):
                raise web.HTTPForbidden(text="dumplab serve: cross-origin connection refused\n")
            websocket = web.WebSocketResponse(heartbeat=15)
            width = to_int(request.query.get("width", "80"), 80)
            height = to_int(request.query.get("height", "24"), 24)
            service: SessionService | None = None
            started = False
            try:
                await websocket.prepare(request)
                self.websockets.add(websocket)
                service = SessionService(
                    self.argv, write_bytes=websocket.send_bytes, write_str=websocket.send_str,
                    close=websocket.close, download_manager=self.download_manager,
                    debug=self.debug)
                await service.start(width, height)
                started = True
                self.sessions += 1
                log.info("console started for %s (%d open)", request.remote, self.sessions)
                await self._process_messages(websocket, service)
            except asyncio.CancelledError:
                await websocket.close()
            except Exception as error:  # noqa: BLE001 - one browser's failure, not the server's
                log.exception(error)
            finally:
                self.websockets.discard(websocket)
                if service is not None:
                    await service.stop()
                if started:
                    self.sessions -= 1
                    log.info("console ended for %s (%d open)", request.remote, self.sessions)
            return websocket

    return ClassroomServer()
