"""The classroom server: textual-serve's, with seats, limits and a lifecycle of its own.

Imported only by `dumplab serve` (aiohttp and textual-serve are not needed elsewhere).

- A **seat** is one browser connection and its console process. There are at most
  `max_sessions`; past that the page says the class is full and no process starts.
- A console is started without a shell (`create_subprocess_exec`), in its own process group
  (Ctrl+C in the server's terminal reaches the server only, which ends every console itself),
  with RLIMIT_AS set before exec.
- What a browser sends is bounded: the terminal size is clamped, keys go through a token
  bucket, the message is parsed defensively.
- Stopping (SIGINT, SIGTERM) closes every browser with a reason, ends every console (SIGTERM
  to its group, SIGKILL after a grace period) and returns within STOP_BUDGET seconds,
  whatever state the consoles are in.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import re
import secrets
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp_jinja2
from aiohttp import WSCloseCode, WSMsgType, web
from textual_serve.app_service import AppService
from textual_serve.server import Server, to_int

from console.classroom import instructor
from console.classroom.hosts import is_loopback
from console.classroom.limits import InputBudget, clamp_size, limit_address_space

log = logging.getLogger("dumplab.serve")

TITLE = "DumpLab HMC"
QUIT_GRACE = 1.5  # seconds a console gets to quit (SIGTERM) before SIGKILL
STOP_BUDGET = 4.0  # the whole stop, well inside the 5 s promised in docs/CLASSROOM.md
QUIT_REASON = "the trainee quit the console"
INPUT_STALL = 10.0  # seconds a console may leave its input unread before it is ended
CLOSE_REASON_BYTES = 120  # a websocket close reason is at most 123 bytes
TRAINEE_COOKIE = "dumplab_trainee"
TRAINEE_NAME = re.compile(r"[\w .@-]{1,40}")
# A Host header as the index page may repeat it: a name or IPv4 address, or an IPv6 literal,
# with an optional port. Anything else is refused (the page is not HTML-escaped).
HOST_HEADER = re.compile(r"(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?")

# Run in the page before textual.js: the websocket URL follows the page's own path (so the
# console works behind a path prefix such as JupyterHub's /user/NAME/dumplab/), and the
# "Session ended" dialog shows the reason the server gave when it closed the connection.
PAGE_SCRIPT = """<script>
(function () {
  var page = new URL(location.href);
  var ws = new URL(page.pathname.replace(/[^/]*$/, "") + "ws", page);
  ws.protocol = page.protocol === "https:" ? "wss:" : "ws:";
  var terminal = document.getElementById("terminal");
  if (terminal) terminal.dataset.sessionWebsocketUrl = ws.href;
  var Native = window.WebSocket;
  function Tracked(url, protocols) {
    var socket = protocols === undefined ? new Native(url) : new Native(url, protocols);
    socket.addEventListener("close", function (event) {
      var message = document.querySelector(".closed-dialog .message");
      if (message) message.textContent = "Session ended" + (event.reason ? ": " + event.reason : ".");
    });
    return socket;
  }
  Tracked.prototype = Native.prototype;
  ["CONNECTING", "OPEN", "CLOSING", "CLOSED"].forEach(function (k) { Tracked[k] = Native[k]; });
  window.WebSocket = Tracked;
})();
</script>
"""


@dataclass
class ServeConfig:
    """Everything the server is started with (serve.py builds it from the command line)."""

    argv: tuple[str, ...]
    host: str
    port: int
    base: Path
    loopback: bool
    max_sessions: int
    idle_timeout: float | None  # seconds, None: never
    address_space: int | None  # RLIMIT_AS of each console, None: not limited
    instructor_token: str | None = None
    behind_proxy: bool = False  # jupyter-server-proxy forwards the public Host


@dataclass
class Seat:
    """One browser connection and its console."""

    id: str
    name: str
    remote: str
    started: float = field(default_factory=time.time)
    last_input: float = field(default_factory=time.monotonic)
    budget: InputBudget = field(default_factory=InputBudget)
    websocket: web.WebSocketResponse | None = None
    service: SessionService | None = None
    reason: str | None = None  # why it ended, once it is ending

    def workdir(self, base: Path) -> Path | None:
        found = sorted(base.glob(f"session-*-{self.id}"))
        return found[0] if found else None


def short_reason(text: str) -> str:
    data = text.encode()
    if len(data) <= CLOSE_REASON_BYTES:
        return text
    return data[:CLOSE_REASON_BYTES - 3].decode(errors="ignore") + "..."


def _kill_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


class SessionService(AppService):
    """One browser's console, started from an argument vector: no shell, its own process
    group, its address space limited."""

    def __init__(self, argv: tuple[str, ...], seat: Seat, config: ServeConfig,
                 on_exit: Callable[[Seat, int | None], Any], **kwargs: Any) -> None:
        super().__init__(" ".join(argv), **kwargs)
        self.argv, self.seat, self.config, self.on_exit = argv, seat, config, on_exit

    async def _open_app_process(self, width: int = 80, height: int = 24) -> Any:
        env = self._build_environment(width=width, height=height)
        env["DUMPLAB_SESSION_ID"] = self.seat.id
        env["DUMPLAB_TRAINEE"] = self.seat.name
        limit = self.config.address_space
        self._process = process = await asyncio.create_subprocess_exec(
            *self.argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=env, start_new_session=True,
            preexec_fn=functools.partial(limit_address_space, limit) if limit else None)
        self._stdin = process.stdin
        return process

    async def run(self) -> None:
        """textual-serve's reader; when the console's output ends, find out why."""
        await super().run()
        process = self._process
        code = None
        if process is not None:
            with contextlib.suppress(TimeoutError):
                code = await asyncio.wait_for(process.wait(), 2.0)
        await self.on_exit(self.seat, code)

    async def end(self) -> None:
        """End the console whatever its state: quit, then SIGTERM, then SIGKILL."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._download_manager.cancel_app_downloads(
                app_service_id=self.app_service_id), 0.5)
        process = self._process
        if process is not None and process.returncode is None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.send_meta({"type": "quit"}), 0.5)
            _kill_group(process.pid, signal.SIGTERM)  # Textual's web driver exits cleanly
            try:
                await asyncio.wait_for(process.wait(), QUIT_GRACE)
            except Exception:  # noqa: BLE001 - a timeout or a dead loop: it ends either way
                log.warning("a console did not quit: ending process %d", process.pid)
                _kill_group(process.pid, signal.SIGKILL)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(process.wait(), 1.0)
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(task, 0.5)


class ClassroomServer(Server):
    """textual-serve's Server with seats (see the module docstring)."""

    def __init__(self, config: ServeConfig) -> None:
        super().__init__(" ".join(config.argv), host=config.host, port=config.port,
                         title=TITLE)
        self.config = config
        self.seats: dict[str, Seat] = {}
        self.stopping = False

    # -- routes ---------------------------------------------------------------------------

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        if self.config.instructor_token:
            instructor.add_routes(app, self)
        return app

    async def on_startup(self, app: web.Application) -> None:
        """Quiet: serve_command says where the console is once the port is bound."""

    async def on_shutdown(self, app: web.Application) -> None:
        await self.end_all("the server is stopping")

    def host_allowed(self, request: web.Request) -> bool:
        if not HOST_HEADER.fullmatch(request.host):
            return False
        if self.config.behind_proxy:  # bound to the loopback: only the proxy reaches it
            return True
        hostname = urlsplit(f"//{request.host}").hostname or ""
        return not self.config.loopback or is_loopback(hostname)

    def origin_allowed(self, request: web.Request) -> bool:
        """A request's Origin header (absent for clients that are not browsers) must name
        the server it was sent to: a page of another web site must not drive a console."""
        origin = request.headers.get("Origin")
        host = request.host
        if self.config.behind_proxy:
            host = request.headers.get("X-Forwarded-Host", host).split(",")[0].strip()
        return origin is None or urlsplit(origin).netloc.lower() == host.lower()

    def class_full(self) -> bool:
        return len(self.seats) >= self.config.max_sessions

    async def handle_index(self, request: web.Request) -> web.StreamResponse:
        """The page, with its URLs on the host the browser asked for: it works through an
        SSH tunnel on another port, with --host 0.0.0.0, and behind a path prefix."""
        if not self.host_allowed(request):
            raise web.HTTPMisdirectedRequest(text="dumplab serve: unknown host\n")
        if self.class_full():
            return web.Response(status=503, content_type="text/html",
                                text=instructor.class_full_page(len(self.seats)))
        name = request.query.get("name")
        if name is not None and not TRAINEE_NAME.fullmatch(name):
            return web.Response(status=400, content_type="text/html",
                                text=instructor.name_page(bad=True))
        if self.config.instructor_token and not (name or request.cookies.get(TRAINEE_COOKIE)):
            return web.Response(content_type="text/html", text=instructor.name_page())
        context = {
            "font_size": max(6, min(48, to_int(request.query.get("fontsize", "16"), 16))),
            "app_websocket_url": ("wss" if request.secure else "ws") + f"://{request.host}/ws",
            "config": {"static": {"url": "static/"}},
            "application": {"name": TITLE},
            "ping_url": "",
        }
        response = aiohttp_jinja2.render_template("app_index.html", request, context)
        response.text = response.text.replace("</body>", PAGE_SCRIPT + "</body>", 1)
        if name:
            response.set_cookie(TRAINEE_COOKIE, name, samesite="Strict", httponly=True)
        return response

    async def handle_websocket(self, request: web.Request) -> web.StreamResponse:
        if not self.host_allowed(request):
            raise web.HTTPMisdirectedRequest(text="dumplab serve: unknown host\n")
        if not self.origin_allowed(request):
            raise web.HTTPForbidden(text="dumplab serve: cross-origin connection refused\n")
        websocket = web.WebSocketResponse(heartbeat=15, max_msg_size=1 << 16)
        if not websocket.can_prepare(request).ok:
            raise web.HTTPUpgradeRequired(
                text="dumplab serve: /ws is the console's websocket; open / in a browser\n",
                headers={"Upgrade": "websocket", "Connection": "Upgrade"})
        if self.stopping or self.class_full():
            await websocket.prepare(request)
            reason = "the server is stopping" if self.stopping else \
                f"the class is full ({self.config.max_sessions} sessions)"
            log.info("refused a console for %s: %s", request.remote, reason)
            await websocket.close(code=WSCloseCode.TRY_AGAIN_LATER, message=reason.encode())
            return websocket
        seat = Seat(secrets.token_hex(4), self._trainee(request), request.remote or "?")
        self.seats[seat.id] = seat  # reserved before the first await: the cap holds
        width, height = clamp_size(request.query.get("width"), request.query.get("height"))
        try:
            await websocket.prepare(request)
            seat.websocket = websocket
            seat.service = SessionService(
                self.config.argv, seat, self.config, self._console_exited,
                write_bytes=websocket.send_bytes, write_str=websocket.send_str,
                close=functools.partial(self._close_seat, seat, QUIT_REASON),
                download_manager=self.download_manager, debug=self.debug)
            await seat.service.start(width, height)
            log.info("console started for %s (%s, seat %s; %d open)", seat.remote, seat.name,
                     seat.id, len(self.seats))
            await self._process_messages(websocket, seat)
        except asyncio.CancelledError:
            pass
        except Exception as error:  # noqa: BLE001 - one browser's failure, not the server's
            log.warning("seat %s: %s: %s", seat.id, type(error).__name__, error)
        finally:
            await self.end_seat(seat, "the browser closed its connection")
        return websocket

    def _trainee(self, request: web.Request) -> str:
        name = request.cookies.get(TRAINEE_COOKIE, "")
        return name if TRAINEE_NAME.fullmatch(name) else f"trainee-{len(self.seats) + 1}"

    async def _process_messages(self, websocket: web.WebSocketResponse, seat: Any) -> None:
        """textual-serve's protocol, each message checked: keys within the seat's budget,
        sizes clamped, anything malformed ignored."""
        service = seat.service
        async for message in websocket:
            if message.type != WSMsgType.TEXT:
                continue
            try:
                envelope = json.loads(message.data)
            except ValueError:
                continue
            if not isinstance(envelope, list) or not envelope:
                continue
            kind, data = envelope[0], envelope[1] if len(envelope) > 1 else None
            if kind == "stdin" and isinstance(data, str):
                if seat.budget.take(len(data)):
                    seat.last_input = time.monotonic()
                    try:  # a console that stopped reading must not stall this loop
                        await asyncio.wait_for(
                            service.send_bytes(data.encode("utf-8", "replace")), INPUT_STALL)
                    except TimeoutError:
                        await self.end_seat(seat, "the console stopped reading its input; "
                                                  "its log is in its work directory")
                        return
            elif kind == "resize" and isinstance(data, dict):
                await service.set_terminal_size(*clamp_size(data.get("width"),
                                                            data.get("height")))
            elif kind == "ping" and isinstance(data, str | int | float):
                await websocket.send_json(["pong", data])
            elif kind == "blur":
                await service.blur()
            elif kind == "focus":
                await service.focus()

    # -- ending seats ---------------------------------------------------------------------

    async def _console_exited(self, seat: Seat, code: int | None) -> None:
        """The console's output ended: it quit, or crashed, or was ended by us."""
        if seat.reason is not None:
            return
        workdir = seat.workdir(self.config.base)
        where = f"{workdir.name}/console.log" if workdir else "its console.log"
        if code == 0:
            reason = QUIT_REASON
        else:
            reason = f"the console crashed (exit status {code}); its log is {where}"
            log.warning("seat %s: %s", seat.id, reason)
        await self.end_seat(seat, reason)

    async def _close_seat(self, seat: Seat, reason: str) -> None:
        await self.end_seat(seat, reason)

    async def end_seat(self, seat: Seat, reason: str) -> None:
        """End one seat: tell its browser why, end its console, free the seat. Idempotent."""
        if seat.reason is None:
            seat.reason = reason
            log.info("console ended for %s (%s, seat %s): %s", seat.remote, seat.name,
                     seat.id, reason)
        websocket = seat.websocket
        if websocket is not None and not websocket.closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(websocket.close(
                    code=WSCloseCode.GOING_AWAY, message=short_reason(seat.reason).encode()),
                    0.5)
        if seat.service is not None:
            await seat.service.end()
        self.seats.pop(seat.id, None)

    async def end_all(self, reason: str) -> None:
        self.stopping = True
        seats = list(self.seats.values())
        if seats:
            await asyncio.gather(*(self.end_seat(seat, reason) for seat in seats),
                                 return_exceptions=True)

    async def _watch_idle(self) -> None:
        timeout = self.config.idle_timeout
        if timeout is None:
            return
        while True:
            await asyncio.sleep(min(30.0, max(0.2, timeout / 4)))
            now = time.monotonic()
            for seat in list(self.seats.values()):
                if seat.reason is None and now - seat.last_input > timeout:
                    minutes = f"{timeout / 60:g}"
                    asyncio.ensure_future(self.end_seat(
                        seat, f"idle timeout: no input for {minutes} min (your files are kept)"))

    # -- running --------------------------------------------------------------------------

    def run(self, ready: Callable[[], None]) -> None:
        """Serve until SIGINT or SIGTERM; OSError if the port cannot be bound."""
        self.initialize_logging()
        asyncio.run(self._serve(ready))

    async def _serve(self, ready: Callable[[], None]) -> None:
        runner = web.AppRunner(await self._make_app(), handle_signals=False,
                               shutdown_timeout=0.5, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.config.host, self.config.port).start()
        except OSError:
            await runner.cleanup()
            raise
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._signalled, stop)
        ready()
        watcher = asyncio.ensure_future(self._watch_idle())
        await stop.wait()
        watcher.cancel()
        started = time.monotonic()
        with contextlib.suppress(Exception, TimeoutError):
            await asyncio.wait_for(self.end_all("the server is stopping"), STOP_BUDGET - 1.5)
        self._kill_remaining()
        with contextlib.suppress(Exception, TimeoutError):
            await asyncio.wait_for(runner.cleanup(),
                                   max(0.2, STOP_BUDGET - (time.monotonic() - started)))
        self._kill_remaining()

    def _signalled(self, stop: asyncio.Event) -> None:
        if stop.is_set():  # a second Ctrl+C: end everything now
            self._kill_remaining()
            os._exit(1)
        log.info("stopping: ending %d console(s)", len(self.seats))
        stop.set()

    def _kill_remaining(self) -> None:
        for seat in list(self.seats.values()):
            process = seat.service._process if seat.service is not None else None
            if process is not None and process.returncode is None:
                _kill_group(process.pid, signal.SIGKILL)
