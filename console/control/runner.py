"""The machine's own thread: the one place that touches the Session and its LPAR.

The emulated machine is not thread-safe, so the console runs it in a single worker thread. The
worker takes operator command lines from a queue and executes them through the command layer
(`Session.execute`, so every action is in the session's history), and while the operator lets
the machine run it advances the LPAR in short slices of virtual time. It hands the UI:

- frames: an immutable `Frame` (snapshot + run state + probe results) at a bounded rate, newest
  wins, so a slow UI never makes the machine wait;
- event batches: every machine event, in order, in batches at the same bounded rate;
- command outcomes: one per submitted line, as soon as it is executed.

This module is pure Python (no Textual): the callbacks are plain functions, which the Textual
app turns into messages (console/tui/bridge.py) and the benchmark leaves empty.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from console.control.commands import CommandError, CommandResult, parse
from console.control.session import Session
from machine.events import Event
from machine.lpar import Lpar, Snapshot

log = logging.getLogger("dumplab.console")

# Longest stretch of virtual time one run slice may take: commands interrupt a slice, but
# frames are only published between slices, so this bounds how stale a frame can be.
MAX_SLICE_NS = 200_000
DEFAULT_FPS = 20
# While paused or idle, wake up this often to publish what changed.
IDLE_POLL_S = 0.1
# Longest real-time nap through an idle LPAR (every CPU waits for a timer) at a paced speed:
# the guest's idle CPUs wake once a second, so one nap usually reaches their next heartbeat.
MAX_IDLE_NAP_S = 1.0
# How long a stop() waits for the worker before giving up on it.
JOIN_TIMEOUT_S = 5.0
# How long the machine starts no new slice after an operator's key (see give_way): time for
# the UI to draw what the key did; a typist's keys keep it waiting.
GIVE_WAY_S = 0.2


@dataclass(frozen=True)
class Speed:
    """How fast the machine runs while the operator lets it run.

    `pace` caps virtual nanoseconds per real second (None: as fast as the host goes);
    `free_running` selects the LPAR's fast but non-deterministic mode.
    """

    name: str
    label: str
    pace: int | None
    free_running: bool = False


SPEEDS: tuple[Speed, ...] = (
    Speed("crawl", "crawl: 100 µs of virtual time per second", 100_000),
    Speed("slow", "slow: 1 ms of virtual time per second", 1_000_000),
    Speed("real", "real time: at most 1 s of virtual time per second", 1_000_000_000),
    Speed("max", "maximum: as fast as the host goes (deterministic)", None),
    Speed("free", "free running: fastest, not reproducible", None, free_running=True),
)
SPEED_BY_NAME = {speed.name: speed for speed in SPEEDS}
DEFAULT_SPEED = "real"

Probe = Callable[[Lpar, Snapshot], Any]


@dataclass(frozen=True)
class ProbeError:
    """What a probe gives when it could not read what it wanted (e.g. out of storage)."""

    message: str


@dataclass(frozen=True)
class Device:
    """A device of the LPAR, as the Load form offers it."""

    devno: int
    kind: str
    label: str


@dataclass(frozen=True)
class Frame:
    """What the UI shows, published at a bounded rate; newer frames replace older ones."""

    seq: int
    snapshot: Snapshot | None
    running: bool
    speed: str
    busy: str | None = None
    devices: tuple[Device, ...] = ()
    probes: dict[str, Any] = field(default_factory=dict)
    pre_dump: tuple[str, Snapshot] | None = None
    guest_rate: float = 0.0  # virtual ns per real second over the last frame interval
    gdb: str | None = None  # "gdb attached from HOST:PORT" while a gdb client is attached

    @property
    def status(self) -> str:
        return self.snapshot.status if self.snapshot else "not activated"


@dataclass(frozen=True)
class Outcome:
    """The result of one submitted command line."""

    ticket: int
    line: str
    result: CommandResult
    source: str = "operator"


FrameHook = Callable[[Frame], None]
EventsHook = Callable[[tuple[Event, ...]], None]
OutcomeHook = Callable[[Outcome], None]

# Commands after which the state before them is worth keeping: the operator is about to take
# a dump (Load of the dump device, PSW Restart), so the dump viewer can compare against it.
_PRE_DUMP_COMMANDS = {"load": "before Load", "restart": "before PSW Restart"}


class Runner:
    """Owns a Session and runs it in one worker thread (see the module docstring)."""

    def __init__(self, session: Session, *, on_frame: FrameHook | None = None,
                 on_events: EventsHook | None = None, on_outcome: OutcomeHook | None = None,
                 fps: float = DEFAULT_FPS, running: bool = True,
                 speed: str = DEFAULT_SPEED) -> None:
        self.session = session
        self._on_frame = on_frame or (lambda frame: None)
        self._on_events = on_events or (lambda events: None)
        self._on_outcome = on_outcome or (lambda outcome: None)
        self._interval = 1.0 / fps
        self._queue: queue.Queue[tuple[str, int, Any]] = queue.Queue()
        self._lock = threading.Lock()
        self._tickets = 0
        self._running = running
        self._speed = SPEED_BY_NAME[speed]
        self._probes: dict[str, Probe] = {}
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._main, name="dumplab-machine", daemon=True)
        # Worker-side state: touched only by the worker thread (or under _lock).
        self._events: list[Event] = []
        self._last_events_flush = 0.0
        self._last_frame = 0.0
        self._frame_seq = 0
        self._dirty = True
        self._busy: str | None = None
        self._in_slice = False
        self._lpar: Lpar | None = None  # for interrupt() from the UI thread only
        self._pre_dump: tuple[str, Snapshot] | None = None
        self._panic_seen = False
        self._pace_anchor: tuple[float, int] | None = None
        self._rate_anchor: tuple[float, int] = (time.perf_counter(), 0)
        self._guest_rate = 0.0
        self._give_way_until = 0.0  # perf_counter time; set from the UI thread
        self._slices = 0
        self._unsubscribe = session.bus.subscribe(self._collect)
        session.wake = self._wake  # gdb's packets (console/control/gdbserver.py) wake the worker

    # -- the UI side (any thread) -------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def submit(self, line: str, source: str = "operator") -> int:
        """Queue an operator command line; returns the ticket its Outcome will carry."""
        ticket = self._next_ticket()
        self._queue.put(("line", ticket, (line, source)))
        self._interrupt_slice()
        return ticket

    def call(self, function: Callable[[Session], Any]) -> int:
        """Run function(session) in the worker thread (tests publish synthetic events so)."""
        ticket = self._next_ticket()
        self._queue.put(("call", ticket, function))
        self._interrupt_slice()
        return ticket

    def set_running(self, running: bool) -> None:
        """Let the machine run between commands, or hold it (commands still run)."""
        self._running = running
        if not running:
            self._interrupt_slice()
        self._wake()

    @property
    def running(self) -> bool:
        return self._running

    def give_way(self, seconds: float = GIVE_WAY_S) -> None:
        """Start no new slice for a moment (the UI handles a key): on a busy host the
        machine's slices otherwise take the CPU and the GIL the UI needs to draw the key's
        effect. A slice already begun ends whole; virtual time is not touched, so this
        changes nothing a journal records."""
        self._give_way_until = time.perf_counter() + seconds

    @property
    def slices(self) -> int:
        """How many run slices the worker has run (tests count them)."""
        return self._slices

    def set_speed(self, name: str) -> None:
        """Choose one of SPEEDS by name (KeyError for an unknown name)."""
        self._speed = SPEED_BY_NAME[name]
        self._wake()

    @property
    def speed(self) -> Speed:
        return self._speed

    def set_probe(self, name: str, probe: Probe | None) -> None:
        """Install (or remove) a read-only probe, run in the worker for every frame with the
        LPAR and the frame's snapshot; its result (or a ProbeError) is in frame.probes."""
        with self._lock:
            if probe is None:
                self._probes.pop(name, None)
            else:
                self._probes[name] = probe
            # A new probe needs a frame even if the machine is held or stopped.
            self._dirty = True
        self._wake()

    def interrupt(self) -> None:
        """Make a long run or wait-for return soon (safe from any thread)."""
        lpar = self._lpar
        if lpar is not None:
            try:
                lpar.interrupt()
            except AttributeError:  # the LPAR was closed between the check and the call
                pass

    def stop(self) -> None:
        """Stop the worker, which closes the session; wait for it. A command in progress (a
        long wait-for) ends now; a deterministic run slice ends whole, so that the journal's
        last run can be run again."""
        self._stopping.set()
        with self._lock:
            if not self._in_slice or self._speed.free_running:
                self.interrupt()
        self._queue.put(("stop", 0, None))
        if self._thread.is_alive():
            self._thread.join(JOIN_TIMEOUT_S)
        elif not self._thread.ident:  # never started: close here
            self._close_session()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _next_ticket(self) -> int:
        with self._lock:
            self._tickets += 1
            return self._tickets

    def _interrupt_slice(self) -> None:
        # Only a free-running slice is cut short. A deterministic slice is whole (at most
        # MAX_SLICE_NS of virtual time, milliseconds of real time): a slice cut at a host-timed
        # instruction could not be replayed from the journal. A command in progress (a
        # wait-for) always finishes.
        with self._lock:
            if self._in_slice and self._speed.free_running:
                self.interrupt()

    def _wake(self) -> None:
        self._queue.put(("wake", 0, None))

    # -- the worker ----------------------------------------------------------------------------

    def _main(self) -> None:
        try:
            while not self._stopping.is_set():
                self._step()
        except Exception:  # a bug: say so, hold the machine, keep the UI alive
            log.exception("machine thread failed")
            self._on_outcome(Outcome(0, "", CommandResult(
                False, "internal error in the machine thread: see the console log"), "runner"))
        finally:
            self._flush(force=True)
            self._close_session()

    def _close_session(self) -> None:
        self._unsubscribe()
        self._lpar = None
        self.session.close()

    def _step(self) -> None:
        """One turn of the worker: a queued item, else a run slice, else a nap."""
        gdb = self.session.gdb
        if gdb is not None and gdb.service():  # gdb's packets run here, the machine's thread
            self._track_lpar()
            self._dirty = True
        can_run = self._can_run()
        idle_ns = self._idle_ns() if can_run else 0
        if idle_ns:
            self._nap_through_idle(idle_ns)
        else:
            item = self._next_item(block=not can_run)
            if item is not None:
                self._handle(item)
            elif can_run:
                self._run_slice()
        self._flush()

    def _next_item(self, block: bool) -> tuple[str, int, Any] | None:
        timeout = IDLE_POLL_S if block else self._pace_delay()
        try:
            if timeout <= 0:
                return self._queue.get_nowait()
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def _handle(self, item: tuple[str, int, Any]) -> None:
        kind, ticket, payload = item
        if kind == "line":
            line, source = payload
            self._execute(ticket, line, source)
        elif kind == "call":
            self._call(ticket, payload)
        # "wake" and "stop" only make the loop look again.
        self._pace_anchor = None

    def _execute(self, ticket: int, line: str, source: str) -> None:
        self._busy = line.strip()
        self._flush(force=True)
        self._remember_pre_dump(line)
        try:
            result = self.session.execute(line)
        except Exception as error:  # the command layer promises results; a bug broke it
            log.exception("command %r failed", line)
            result = CommandResult(False, f"internal error: {type(error).__name__}: {error}")
        self._busy = None
        self._track_lpar()
        self._dirty = True
        self._flush_events()  # the events of a command come before its acknowledgement
        self._on_outcome(Outcome(ticket, line.strip(), result, source))
        self._flush(force=True)

    def _call(self, ticket: int, function: Callable[[Session], Any]) -> None:
        try:
            function(self.session)
        except Exception:
            log.exception("worker call failed")
        self._track_lpar()
        self._dirty = True

    def _remember_pre_dump(self, line: str) -> None:
        try:
            name = parse(line).name
        except CommandError:
            return
        lpar = self.session.lpar
        if name in _PRE_DUMP_COMMANDS and lpar is not None and lpar.activated:
            self._pre_dump = (_PRE_DUMP_COMMANDS[name], lpar.snapshot())

    def _track_lpar(self) -> None:
        """Follow the session's LPAR (activate makes a new one) and apply the speed's mode."""
        lpar = self.session.lpar
        self._lpar = lpar if lpar is not None and lpar.activated else None
        if self._lpar is not None and self._lpar.free_running != self._speed.free_running:
            # Session has no free-running option yet; the flag is public and read per round.
            self._lpar.free_running = self._speed.free_running

    def _can_run(self) -> bool:
        lpar = self._lpar
        return (self._running and lpar is not None and lpar.activated
                and not lpar.all_stopped() and not self._giving_way())

    def _giving_way(self) -> bool:
        return self._give_way_until > time.perf_counter()

    def _pace_delay(self) -> float:
        """Seconds to wait before the next slice so virtual time keeps to the speed's pace."""
        pace, lpar = self._speed.pace, self._lpar
        if pace is None or lpar is None:
            return 0.0
        now_real, now_virtual = time.perf_counter(), lpar.clock.now
        if self._pace_anchor is None:
            self._pace_anchor = (now_real, now_virtual)
            return 0.0
        anchor_real, anchor_virtual = self._pace_anchor
        ahead_ns = (now_virtual - anchor_virtual) - pace * (now_real - anchor_real)
        return min(IDLE_POLL_S, max(0.0, ahead_ns / pace))

    def _slice_ns(self) -> int:
        pace = self._speed.pace
        if pace is None:
            return MAX_SLICE_NS
        # Small slices at slow paces, so that the machine moves smoothly.
        return max(1, min(MAX_SLICE_NS, pace // 50))

    def _idle_ns(self) -> int:
        """At a paced speed, the virtual ns until a CPU of the LPAR can run again, if every
        CPU waits for a timer (0 otherwise, or when the speed is not paced)."""
        pace, lpar = self._speed.pace, self._lpar
        if pace is None or lpar is None:
            return 0
        return lpar.ns_until_ready(max(self._slice_ns(), int(pace * MAX_IDLE_NAP_S)))

    def _nap_through_idle(self, idle_ns: int) -> None:
        """Every CPU waits for a timer: sleep in real time until the pace reaches it, then
        advance the LPAR to it in one slice. An idle LPAR so costs one wake-up per timer,
        not one per slice (it once cost half a core in slice overhead alone). A command or
        a gdb packet ends the nap early: the LPAR then advances by the time that passed (so
        virtual time keeps to the pace) and the command runs."""
        pace = self._speed.pace
        assert pace is not None
        try:  # lines queued together run one after the other, with no run between them
            self._handle(self._queue.get_nowait())
            return
        except queue.Empty:
            pass
        started = time.perf_counter()
        nap_s = max(0.0, idle_ns / pace - self._pace_debt_s(started))
        try:
            item = self._queue.get(timeout=nap_s) if nap_s > 0 else None
        except queue.Empty:
            item = None
        if item is None:
            ns = idle_ns
        else:
            ns = min(idle_ns, int((time.perf_counter() - started) * pace))
        if ns > 0:
            self._run_slice(ns)
        if item is not None:
            self._handle(item)

    def _pace_debt_s(self, now_real: float) -> float:
        """Seconds the LPAR is behind its pace (since the anchor): a nap is that much
        shorter, so that a slow host does not fall further behind."""
        pace, lpar = self._speed.pace, self._lpar
        if pace is None or lpar is None or self._pace_anchor is None:
            return 0.0
        anchor_real, anchor_virtual = self._pace_anchor
        behind_ns = pace * (now_real - anchor_real) - (lpar.clock.now - anchor_virtual)
        return max(0.0, behind_ns / pace)

    def _run_slice(self, ns: int | None = None) -> None:
        lpar = self._lpar
        assert lpar is not None
        if lpar.free_running != self._speed.free_running:
            lpar.free_running = self._speed.free_running
        if self._pace_anchor is None:
            self._pace_anchor = (time.perf_counter(), lpar.clock.now)
        with self._lock:
            self._in_slice = True
        try:
            self.session.advance(ns or self._slice_ns())
        finally:
            with self._lock:
                self._in_slice = False
        self._slices += 1
        self._dirty = True

    # -- publishing ----------------------------------------------------------------------------

    def _collect(self, event: Event) -> None:
        """Bus subscriber (worker thread): batch events, flushing at the frame rate even in
        the middle of a long command, so progress shows while a dump is written."""
        self._events.append(event)
        if event.kind == "panic":
            # A snapshot cannot be taken inside a run slice: take it with the next frame.
            self._panic_seen = True
        elif event.kind == "stage_stop":
            # A stage stop holds the machine until the operator goes on (Enter/F7 steps,
            # F5 runs): the console shows the stage's card meanwhile.
            with self._lock:
                self._running = False
        if time.perf_counter() - self._last_events_flush >= self._interval:
            self._flush_events()

    def _flush_events(self) -> None:
        self._last_events_flush = time.perf_counter()
        if self._events:
            batch, self._events = tuple(self._events), []
            self._on_events(batch)

    def _flush(self, force: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - self._last_frame < self._interval:
            return
        self._flush_events()
        if not (self._dirty or force):
            return
        self._last_frame = now
        self._dirty = False
        self._frame_seq += 1
        self._on_frame(self._make_frame())

    def _make_frame(self) -> Frame:
        lpar = self._lpar
        snapshot = lpar.snapshot() if lpar is not None and lpar.activated else None
        if snapshot is not None and self._panic_seen:
            self._panic_seen = False
            self._pre_dump = ("after the panic", snapshot)
        return Frame(
            seq=self._frame_seq, snapshot=snapshot, running=self._running,
            speed=self._speed.name, busy=self._busy, devices=self._devices(lpar),
            probes=self._run_probes(lpar, snapshot), pre_dump=self._pre_dump,
            guest_rate=self._measure_rate(snapshot), gdb=self._gdb_status(),
        )

    def _gdb_status(self) -> str | None:
        """What the status line can show about gdb (console/control/gdbserver.py)."""
        server = self.session.gdb
        client = server.client if server is not None and server.attached else None
        return f"gdb attached from {client.name}" if client is not None else None

    @staticmethod
    def _devices(lpar: Lpar | None) -> tuple[Device, ...]:
        if lpar is None:
            return ()
        return tuple(Device(devno, device.kind, device.label)
                     for devno, device in sorted(lpar.devices.items()))

    def _run_probes(self, lpar: Lpar | None, snapshot: Snapshot | None) -> dict[str, Any]:
        if lpar is None or snapshot is None:
            return {}
        with self._lock:
            probes = dict(self._probes)
        results: dict[str, Any] = {}
        for name, probe in probes.items():
            try:
                results[name] = probe(lpar, snapshot)
            except Exception as error:  # noqa: BLE001 - a probe reads storage: errors are data
                results[name] = ProbeError(" ".join(str(error).split()) or type(error).__name__)
        return results

    def _measure_rate(self, snapshot: Snapshot | None) -> float:
        now_real, now_virtual = time.perf_counter(), snapshot.t if snapshot else 0
        anchor_real, anchor_virtual = self._rate_anchor
        self._rate_anchor = (now_real, now_virtual)
        if now_real - anchor_real < 1e-3 or now_virtual < anchor_virtual:
            return self._guest_rate
        self._guest_rate = (now_virtual - anchor_virtual) / (now_real - anchor_real)
        return self._guest_rate
