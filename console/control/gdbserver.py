"""The gdb server: a listening socket and one client at a time (docs/GDB.md).

Its threads only move bytes: packets are queued and executed by `service()` on the machine's
own thread (the console's runner, or the `gdbserver ... wait` loop of a headless run), since
the LPAR is not thread-safe. The packets' meaning is console/control/gdbstub.py; the LPAR's
side is console/control/gdbtarget.py.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import re
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from console.control.gdbcodec import Decoder, Item, frame
from console.control.gdbstub import Stub, TargetError
from console.control.gdbtarget import GdbSession, LparTarget
from machine.events import Event
from machine.lpar import HmcError
from machine.storage import StorageError

log = logging.getLogger("dumplab.gdb")

DEFAULT_HOST = "127.0.0.1"
# While gdb lets the machine run, a headless `wait` runs it in slices of this much virtual
# time and looks for a stop between them (the console's runner uses its own slices).
RUN_SLICE_NS = 200_000


# --------------------------------------------------------------------------------------------
# The server: a socket, one client, packets queued for the machine's thread


class GdbServerError(Exception):
    """The server could not start (port in use, bad address); one line."""


_ENDPOINT = re.compile(r"(?:(?P<host>[^:\s]+|\[[0-9a-fA-F:]+\]):)?(?P<port>\d{1,5})")


def parse_endpoint(text: str) -> tuple[str, int]:
    """[ADDR:]PORT → (host, port); ValueError with one line if malformed."""
    match = _ENDPOINT.fullmatch(text.strip())
    if match is None or not 0 < int(match["port"]) < 65536:
        raise ValueError(f"bad address '{text}' (expected [ADDR:]PORT, like 1234 or "
                         "127.0.0.1:1234, PORT 1-65535)")
    host = (match["host"] or DEFAULT_HOST).strip("[]")
    return host, int(match["port"])


@dataclass
class _Client:
    sock: socket.socket
    name: str
    stub: Stub
    target: LparTarget
    decoder: Decoder = field(default_factory=Decoder)
    send_lock: threading.Lock = field(default_factory=threading.Lock)
    closed: bool = False
    unsubscribe: Callable[[], None] | None = None


class GdbServer:
    """Listens on host:port; one client at a time; `service()` (machine thread) executes
    what the client sent. `wake` is called from the socket threads when there is work."""

    def __init__(self, session: GdbSession, host: str, port: int,
                 wake: Callable[[], None] | None = None) -> None:
        self.session = session
        self.host = host
        self.wake = wake or (lambda: None)
        self.inbox: queue.Queue[tuple[str, _Client, bytes]] = queue.Queue()
        self.client: _Client | None = None
        self.sessions_served = 0
        self._lock = threading.Lock()
        self._closing = False
        try:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            self._listener = socket.socket(family, socket.SOCK_STREAM)
            self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._listener.bind((host, port))
            self._listener.listen(2)
        except OSError as error:
            with contextlib.suppress(Exception):
                self._listener.close()
            reason = error.strerror or str(error)
            raise GdbServerError(f"cannot listen on {host}:{port}: {reason}") from None
        self.port = self._listener.getsockname()[1]
        self._accepter = threading.Thread(target=self._accept_loop, daemon=True,
                                          name="dumplab-gdb-accept")
        self._accepter.start()

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def attached(self) -> bool:
        return self.client is not None and not self.client.closed

    # -- socket threads ------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._closing:
            try:
                sock, peer = self._listener.accept()
            except OSError:
                return
            name = f"{peer[0]}:{peer[1]}"
            with self._lock:
                busy = self.attached or self._closing
            if busy:
                self._refuse(sock)
                continue
            with contextlib.suppress(OSError):  # replies are small: do not let Nagle hold them
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            target = LparTarget(self.session, name)
            client = _Client(sock, name, Stub(target), target)
            with self._lock:
                self.client = client
            threading.Thread(target=self._read_loop, args=(client,), daemon=True,
                             name="dumplab-gdb-client").start()
            self._post("attach", client)

    @staticmethod
    def _refuse(sock: socket.socket) -> None:
        """A second client: answer its first packet with an error that says why, and close."""
        message = b"E.DumpLab: another gdb is attached (one client at a time)"
        try:
            sock.settimeout(2.0)
            decoder = Decoder()
            for _ in range(8):
                data = sock.recv(4096)
                if not data:
                    break
                if any(item.kind == "packet" for item in decoder.feed(data)):
                    sock.sendall(b"+" + frame(message))
                    break
        except OSError:
            pass
        finally:
            sock.close()

    def _read_loop(self, client: _Client) -> None:
        while True:
            try:
                data = client.sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                self._post("gone", client)
                return
            for item in client.decoder.feed(data):
                self._received(client, item)

    def _received(self, client: _Client, item: Item) -> None:
        if item.kind == "packet":
            if not client.stub.no_ack:
                self._send_raw(client, b"+")
            self._post("packet", client, item.data)
        elif item.kind == "bad":
            if not client.stub.no_ack:
                self._send_raw(client, b"-")
        elif item.kind == "interrupt":
            self._post("interrupt", client)

    def _post(self, kind: str, client: _Client, data: bytes = b"") -> None:
        self.inbox.put((kind, client, data))
        self.wake()

    def _send_raw(self, client: _Client, data: bytes) -> None:
        with client.send_lock:
            if client.closed:
                return
            try:
                client.sock.sendall(data)
            except OSError:
                client.closed = True

    # -- the machine's thread ----------------------------------------------------------------------

    def service(self) -> bool:
        """Execute what the client sent and report a stop; True if anything was done."""
        did = False
        while True:
            try:
                kind, client, data = self.inbox.get_nowait()
            except queue.Empty:
                break
            did = True
            self._do(kind, client, data)
        client = self.client
        if client is not None and client.stub.running and not client.closed:
            reply = self._guard(client, client.stub.poll)
            if reply is not None:
                self._reply(client, reply)
                did = True
        return did

    def _do(self, kind: str, client: _Client, data: bytes) -> None:
        if kind == "attach":
            client.unsubscribe = self._subscribe(client.target.on_event)
            self._guard(client, client.target.attach)
        elif kind == "packet" and not client.closed:
            reply = self._guard(client, lambda: client.stub.handle(data))
            if reply is not None:
                self._reply(client, reply)
            if client.stub.detached:
                self._drop(client, detach=False)
        elif kind == "interrupt" and not client.closed:
            reply = self._guard(client, client.stub.interrupt)
            if reply is not None:
                self._reply(client, reply)
        elif kind == "gone":
            self._drop(client, detach=not client.stub.detached)

    def _guard(self, client: _Client, action: Callable[[], bytes | None]) -> bytes | None:
        """Run a stub action; a machine refusal becomes an error reply, never a traceback."""
        try:
            return action()
        except (TargetError, HmcError, StorageError) as error:
            client.target.publish(f"gdb: refused: {error}")
            return b"E01"
        except Exception:  # a bug must not kill the machine thread: log it, answer an error
            log.exception("gdb stub failed on a packet")
            return b"E01"

    def _subscribe(self, listener: Callable[[Event], None]) -> Callable[[], None]:
        lpar = self.session.lpar
        bus = getattr(self.session, "bus", None) or (lpar.bus if lpar is not None else None)
        return bus.subscribe(listener) if bus is not None else (lambda: None)

    def _reply(self, client: _Client, payload: bytes) -> None:
        self._send_raw(client, frame(payload))

    def _drop(self, client: _Client, detach: bool) -> None:
        """The client is gone (detached, killed or disconnected): the LPAR goes on."""
        if detach:
            client.stub.running = False
            self._guard(client, client.target.detach)
        if client.unsubscribe is not None:
            client.unsubscribe()
            client.unsubscribe = None
        with client.send_lock:
            client.closed = True
        with contextlib.suppress(OSError):
            client.sock.shutdown(socket.SHUT_RDWR)
        client.sock.close()
        with self._lock:
            if self.client is client:
                self.client = None
                self.sessions_served += 1

    def serve_until_detached(self, advance: Callable[[int], None]) -> None:
        """Headless `gdbserver ... wait`: serve on this (the machine's) thread until a client
        has attached and gone; `advance(ns)` runs the machine while gdb lets it run."""
        served = self.sessions_served
        while self.sessions_served == served and not self._closing:
            self.service()
            client = self.client
            if client is not None and client.stub.running and not client.closed:
                advance(RUN_SLICE_NS)
                continue
            try:
                kind, client, data = self.inbox.get(timeout=0.1)
            except queue.Empty:
                continue
            self._do(kind, client, data)

    def close(self) -> None:
        """Stop listening and let go of the client (as a detach); the LPAR goes on."""
        self._closing = True
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() in its thread
        with contextlib.suppress(OSError):
            self._listener.close()
        self.service()
        client = self.client
        if client is not None:
            self._drop(client, detach=not client.stub.detached)
