"""A GDB remote stub: gdb-multiarch attaches to the emulated LPAR over TCP (docs/GDB.md).

Three layers, so that each can be tested alone:

- `Stub`: what the packets mean (registers, memory, breakpoints, threads, run control),
  against a `Target`; no sockets, no LPAR (tests/test_gdbstub.py drives it with a fake).
- `LparTarget`: the `Target` of a `Session`'s LPAR. Every change gdb makes to the machine
  goes through an operator command (`step 1 cpu=N`, `start N`, `stop N`, `break ADDR`,
  `gdbserver write-memory ...`), so the session's journal records it and a replay does it
  again without gdb.
- `GdbServer`: the listening socket and one client at a time. Its threads only move bytes:
  packets are queued and executed by `service()` on the machine's own thread (the console's
  runner, or the `gdbserver ... wait` loop of a headless run), since the LPAR is not
  thread-safe.

Reverse execution (`bs`, `bc`) is not offered yet: the stub answers it as unsupported. Run
control is all-stop: when gdb gets a stop reply, every CPU is stopped.
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
from typing import TYPE_CHECKING, ClassVar, Protocol

from unicorn.s390x_const import UC_S390X_REG_FPC

from console.control.gdbcodec import MAX_PACKET, Decoder, Item, escape, frame, unescape
from machine.cpu import ARS, CRS, FPRS, GPRS, CpuState
from machine.events import Event
from machine.lpar import HmcError
from machine.paths import assets_dir
from machine.storage import StorageError

if TYPE_CHECKING:
    from machine.lpar import Lpar

log = logging.getLogger("dumplab.gdb")

DEFAULT_HOST = "127.0.0.1"
# While gdb lets the machine run, a headless `wait` runs it in slices of this much virtual
# time and looks for a stop between them (the console's runner uses its own slices).
RUN_SLICE_NS = 200_000
SIGINT, SIGTRAP = 2, 5
_PREFIX_AREA = 0x2000


# --------------------------------------------------------------------------------------------
# Registers: the order of the `g` packet and of the target description's regnums


@dataclass(frozen=True)
class Register:
    name: str
    bits: int
    feature: str
    type: str = "uint64"
    group: str = ""


def _registers() -> tuple[Register, ...]:
    core, acr, fpr, system = ("org.gnu.gdb.s390.core", "org.gnu.gdb.s390.acr",
                              "org.gnu.gdb.s390.fpr", "org.dumplab.s390.system")
    regs = [Register("pswm", 64, core, group="psw"), Register("pswa", 64, core, "code_ptr",
                                                             "psw")]
    regs += [Register(f"r{i}", 64, core, group="general") for i in range(16)]
    regs += [Register(f"acr{i}", 32, acr, "uint32", "access") for i in range(16)]
    regs += [Register("fpc", 32, fpr, "uint32", "float")]
    regs += [Register(f"f{i}", 64, fpr, "ieee_double", "float") for i in range(16)]
    regs += [Register(f"cr{i}", 64, system, group="system") for i in range(16)]
    regs += [Register("prefix", 32, system, "uint32", "system"),
             Register("cputm", 64, system, group="system"),
             Register("ckc", 64, system, group="system")]
    return tuple(regs)


REGISTERS = _registers()
REGISTER_NUMBER = {reg.name: number for number, reg in enumerate(REGISTERS)}


def target_xml() -> str:
    """The target description gdb reads with qXfer:features:read (written for DumpLab)."""
    parts = ['<?xml version="1.0"?>', '<!DOCTYPE target SYSTEM "gdb-target.dtd">',
             "<target>", "  <architecture>s390:64-bit</architecture>"]
    feature = None
    for number, reg in enumerate(REGISTERS):
        if reg.feature != feature:
            if feature is not None:
                parts.append("  </feature>")
            feature = reg.feature
            parts.append(f'  <feature name="{feature}">')
        parts.append(f'    <reg name="{reg.name}" bitsize="{reg.bits}" type="{reg.type}" '
                     f'group="{reg.group}" regnum="{number}"/>')
    parts += ["  </feature>", "</target>", ""]
    return "\n".join(parts)


def encode_register(number: int, value: int) -> str:
    """A register value as the `g`/`p` packets carry it: big-endian hex of its size."""
    size = REGISTERS[number].bits // 8
    return (value & ((1 << (size * 8)) - 1)).to_bytes(size, "big").hex()


# --------------------------------------------------------------------------------------------
# The target: what the stub needs of a machine


class TargetError(Exception):
    """A request the target refused (bad address, no such CPU); the stub answers E01."""


@dataclass(frozen=True)
class Stop:
    """Why the machine stopped, as a stop reply tells gdb."""

    cpu: int
    signal: int = SIGTRAP


class Target(Protocol):
    def cpus(self) -> list[int]: ...
    def read_registers(self, cpu: int) -> list[int]: ...
    def write_register(self, cpu: int, number: int, value: int) -> None: ...
    def read_memory(self, cpu: int, address: int, length: int) -> bytes: ...
    def write_memory(self, cpu: int, address: int, data: bytes) -> None: ...
    def insert_breakpoint(self, address: int) -> None: ...
    def remove_breakpoint(self, address: int) -> None: ...
    def step(self, cpu: int) -> Stop: ...
    def resume(self, cpus: list[int] | None) -> None: ...
    def poll_stop(self) -> Stop | None: ...
    def stop_all(self, signal: int) -> Stop: ...
    def attach(self) -> None: ...
    def detach(self) -> None: ...
    def program_file(self) -> str | None: ...


# --------------------------------------------------------------------------------------------
# The stub: packets in, replies out


def _hex_int(text: str) -> int:
    value = int(text, 16)
    if value < 0:
        raise ValueError(text)
    return value


class Stub:
    """The meaning of the packets. `handle` returns the reply payload (b"" is the empty reply
    of an unsupported packet), or None when the reply comes later (after `c`, a stop reply
    that `poll` gives once the machine stops)."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.thread = 0  # the CPU Hg selected (gdb thread id = CPU address + 1)
        self.running = False
        self.no_ack = False
        self.detached = False
        self.last_stop = Stop(0, SIGTRAP)

    # -- entry points --------------------------------------------------------------------------

    def handle(self, payload: bytes) -> bytes | None:
        try:
            text = payload.decode("latin-1")
            return self._dispatch(text, payload)
        except (TargetError, ValueError, IndexError, KeyError):
            return b"E01"

    def interrupt(self) -> bytes | None:
        """0x03 from gdb: stop every CPU; the stop reply if the machine was running."""
        if not self.running:
            return None
        self.running = False
        return self._stop_reply(self.target.stop_all(SIGINT))

    def poll(self) -> bytes | None:
        """After the machine ran: the stop reply if it stopped, else None."""
        if not self.running:
            return None
        stop = self.target.poll_stop()
        if stop is None:
            return None
        self.running = False
        return self._stop_reply(stop)

    # -- dispatch ------------------------------------------------------------------------------

    _SIMPLE: ClassVar[dict[str, str]] = {
        "?": "_question", "g": "_read_all", "qfThreadInfo": "_thread_list",
        "qsThreadInfo": "_thread_list_end", "qC": "_current_thread",
        "qAttached": "_attached", "QStartNoAckMode": "_no_ack_mode", "vCont?": "_vcont_query",
        "D": "_detach", "k": "_kill", "qSymbol::": "_ok", "bs": "_reverse", "bc": "_reverse",
    }

    def _dispatch(self, text: str, payload: bytes) -> bytes | None:
        if text in self._SIMPLE:
            return getattr(self, self._SIMPLE[text])()
        first = text[:1]
        if text.startswith("qSupported"):
            return (f"PacketSize={MAX_PACKET:x};qXfer:features:read+;qXfer:exec-file:read+;"
                    "QStartNoAckMode+;vContSupported+").encode()
        if text.startswith("qXfer:exec-file:read:"):
            return self._exec_file(text[len("qXfer:exec-file:read:"):])
        if text.startswith("qXfer:features:read:"):
            return self._features(text[len("qXfer:features:read:"):])
        if text.startswith("qThreadExtraInfo,"):
            cpu = self._cpu_of(text.split(",", 1)[1])
            return f"CPU {cpu}".encode().hex().encode()
        if text.startswith("vCont;"):
            return self._vcont(text[len("vCont;"):])
        if text.startswith("D;"):
            return self._detach()
        handlers: dict[str, Callable[[str], bytes | None]] = {
            "H": self._set_thread, "T": self._thread_alive, "p": self._read_one,
            "P": self._write_one, "G": self._write_all, "m": self._read_memory,
            "M": self._write_memory, "Z": self._insert, "z": self._remove,
            "s": self._step_packet, "c": self._continue_packet,
        }
        if first == "X":
            return self._write_binary(payload[1:])
        handler = handlers.get(first)
        return handler(text[1:]) if handler is not None else b""

    # -- threads -------------------------------------------------------------------------------

    def _cpu_of(self, thread_id: str) -> int:
        """The CPU of a gdb thread id (hex; 0 or -1 mean the selected one)."""
        if thread_id in ("0", "-1", ""):
            return self.thread
        cpu = _hex_int(thread_id) - 1
        if cpu not in self.target.cpus():
            raise TargetError(f"no thread {thread_id}")
        return cpu

    def _thread_list(self) -> bytes:
        return ("m" + ",".join(f"{cpu + 1:x}" for cpu in self.target.cpus())).encode()

    def _thread_list_end(self) -> bytes:
        return b"l"

    def _current_thread(self) -> bytes:
        return f"QC{self.thread + 1:x}".encode()

    def _set_thread(self, rest: str) -> bytes:
        kind, thread_id = rest[:1], rest[1:]
        cpu = self._cpu_of(thread_id)
        if kind == "g":
            self.thread = cpu
        return b"OK"

    def _thread_alive(self, rest: str) -> bytes:
        self._cpu_of(rest)
        return b"OK"

    def _attached(self) -> bytes:
        return b"1"

    def _ok(self) -> bytes:
        return b"OK"

    def _no_ack_mode(self) -> bytes:
        self.no_ack = True
        return b"OK"

    # -- stop replies --------------------------------------------------------------------------

    def _stop_reply(self, stop: Stop) -> bytes:
        self.last_stop = stop
        self.thread = stop.cpu
        return f"T{stop.signal:02x}thread:{stop.cpu + 1:x};".encode()

    def _question(self) -> bytes:
        return self._stop_reply(self.last_stop)

    # -- registers -----------------------------------------------------------------------------

    def _read_all(self) -> bytes:
        values = self.target.read_registers(self.thread)
        return "".join(encode_register(n, v) for n, v in enumerate(values)).encode()

    def _write_all(self, rest: str) -> bytes:
        data = bytes.fromhex(rest)
        current = self.target.read_registers(self.thread)
        offset = 0
        for number, reg in enumerate(REGISTERS):
            size = reg.bits // 8
            if offset + size > len(data):
                break
            value = int.from_bytes(data[offset:offset + size], "big")
            if value != current[number]:
                self.target.write_register(self.thread, number, value)
            offset += size
        return b"OK"

    def _read_one(self, rest: str) -> bytes:
        number = _hex_int(rest)
        if number >= len(REGISTERS):
            return b"E01"
        return encode_register(number, self.target.read_registers(self.thread)[number]).encode()

    def _write_one(self, rest: str) -> bytes:
        number_text, _, value_text = rest.partition("=")
        number = _hex_int(number_text)
        size = REGISTERS[number].bits // 8
        data = bytes.fromhex(value_text)
        if len(data) != size:
            return b"E01"
        self.target.write_register(self.thread, number, int.from_bytes(data, "big"))
        return b"OK"

    # -- memory --------------------------------------------------------------------------------

    @staticmethod
    def _address_length(text: str) -> tuple[int, int]:
        address, _, length = text.partition(",")
        return _hex_int(address), _hex_int(length)

    def _read_memory(self, rest: str) -> bytes:
        address, length = self._address_length(rest)
        length = min(length, MAX_PACKET // 2)
        return self.target.read_memory(self.thread, address, length).hex().encode()

    def _write_memory(self, rest: str) -> bytes:
        where, _, hex_data = rest.partition(":")
        address, length = self._address_length(where)
        data = bytes.fromhex(hex_data)
        if len(data) != length:
            return b"E01"
        if data:
            self.target.write_memory(self.thread, address, data)
        return b"OK"

    def _write_binary(self, rest: bytes) -> bytes:
        where, colon, raw = rest.partition(b":")
        if not colon:
            return b"E01"
        address, length = self._address_length(where.decode("latin-1"))
        data = unescape(raw)
        if len(data) != length:
            return b"E01"
        if data:
            self.target.write_memory(self.thread, address, data)
        return b"OK"

    # -- breakpoints ---------------------------------------------------------------------------

    def _breakpoint_address(self, rest: str) -> int | None:
        kind, address, _ = (rest.split(",") + ["", ""])[:3]
        return _hex_int(address) if kind == "0" else None

    def _insert(self, rest: str) -> bytes:
        address = self._breakpoint_address(rest)
        if address is None:
            return b""  # hardware breakpoints and watchpoints: not offered
        self.target.insert_breakpoint(address)
        return b"OK"

    def _remove(self, rest: str) -> bytes:
        address = self._breakpoint_address(rest)
        if address is None:
            return b""
        self.target.remove_breakpoint(address)
        return b"OK"

    # -- run control ---------------------------------------------------------------------------

    def _step_packet(self, rest: str) -> bytes:
        if rest:
            return b"E01"  # stepping from another address: gdb does not need it
        return self._stop_reply(self.target.step(self.thread))

    def _continue_packet(self, rest: str) -> bytes | None:
        if rest:
            return b"E01"
        self.target.resume(None)
        self.running = True
        return self.poll()

    def _vcont_query(self) -> bytes:
        return b"vCont;c;C;s;S"

    def _vcont(self, actions: str) -> bytes | None:
        """vCont;ACTION[:THREAD]...: a step anywhere steps that CPU alone (the others stay
        stopped); else the named CPUs (or all, for an action without a thread) continue."""
        continued: list[int] = []
        everyone = False
        for action in actions.split(";"):
            verb, _, thread_id = action.partition(":")
            verb = verb[:1]
            if verb not in "cCsS" or not verb:
                return b"E01"
            if verb in "sS":
                cpu = self._cpu_of(thread_id) if thread_id else self.thread
                return self._stop_reply(self.target.step(cpu))
            if thread_id in ("", "-1"):
                everyone = True
            else:
                continued.append(self._cpu_of(thread_id))
        self.target.resume(None if everyone else continued)
        self.running = True
        return self.poll()

    def _reverse(self) -> bytes:
        # Reverse execution will run on the console's rewind (checkpoints): a Target gains
        # reverse_step(cpu) -> Stop and reverse_continue() like step/resume, and qSupported
        # then says ReverseStep+;ReverseContinue+. Until then: unsupported (empty reply).
        return b""

    def _detach(self) -> bytes:
        self.running = False
        self.detached = True
        self.target.detach()
        return b"OK"

    def _kill(self) -> None:
        # As detach: the LPAR is not gdb's to kill; it goes on (or stays stopped).
        self._detach()

    # -- the target description and the program ------------------------------------------------

    def _exec_file(self, rest: str) -> bytes:
        """The ELF file of the loaded program: gdb reads its symbols, and learns from it that
        s390 is big-endian (`set architecture` alone leaves gdb-multiarch little-endian)."""
        _annex, _, span = rest.partition(":")
        path = self.target.program_file()
        if path is None:
            return b"E01"
        offset, length = self._address_length(span)
        data = path.encode()
        more = offset + length < len(data)
        return (b"m" if more else b"l") + escape(data[offset:offset + length])


    def _features(self, rest: str) -> bytes:
        annex, _, span = rest.partition(":")
        if annex != "target.xml":
            return b"E00"
        offset, length = self._address_length(span)
        document = target_xml().encode()
        chunk = document[offset:offset + length]
        more = offset + length < len(document)
        return (b"m" if more else b"l") + escape(chunk)


# --------------------------------------------------------------------------------------------
# The LPAR as a target


@dataclass(frozen=True)
class GdbEvent(Event):
    """gdb attached, detached, or was told the machine stopped (not part of a replay)."""

    kind: ClassVar[str] = "gdb"
    attached: bool = False
    client: str = ""
    message: str = ""


class GdbSession(Protocol):
    """What the glue needs of console/control/session.py's Session."""

    lpar: Lpar | None

    def execute(self, line: str) -> object: ...


def _ok(result: object) -> None:
    """Raise TargetError unless a command's result is ok."""
    if not getattr(result, "ok", False):
        raise TargetError(getattr(result, "message", "refused"))


class LparTarget:
    """The session's LPAR, changed only through operator commands (journalled)."""

    def __init__(self, session: GdbSession, client: str = "") -> None:
        self.session = session
        self.client = client
        self._owned: set[int] = set()  # breakpoints gdb set (not the operator's)
        self._held: set[int] = set()   # CPUs gdb stopped that were running: detach resumes
        self._hit: Stop | None = None

    @property
    def lpar(self) -> Lpar:
        lpar = self.session.lpar
        if lpar is None or not lpar.activated:
            raise TargetError("the LPAR is not activated")
        return lpar

    def _run(self, line: str) -> None:
        _ok(self.session.execute(line))

    def publish(self, message: str, attached: bool = True) -> None:
        lpar = self.session.lpar
        if lpar is not None and lpar.activated:
            lpar.publish(GdbEvent(t=lpar.clock.now, cpu=None, attached=attached,
                                  client=self.client, message=message))

    def program_file(self) -> str | None:
        lpar = self.session.lpar
        if lpar is None or lpar.program is None:
            return None
        path = assets_dir() / "bin" / f"{lpar.program.name}.elf"
        return str(path.absolute()) if path.is_file() else None

    def cpus(self) -> list[int]:
        lpar = self.session.lpar
        if lpar is None or not lpar.activated:
            return [0]
        return [cpu.address for cpu in lpar.cpus]

    # registers
    def read_registers(self, cpu: int) -> list[int]:
        snap = self.lpar.snapshot().cpus[cpu]
        return [snap.psw_mask, snap.psw_addr, *snap.gprs, *snap.ars, snap.fpc, *snap.fprs,
                *snap.crs, snap.prefix, snap.cpu_timer, snap.clock_comparator]

    def write_register(self, cpu: int, number: int, value: int) -> None:
        self._run(f"gdbserver write-register {cpu} {REGISTERS[number].name} {value:x}")

    # memory
    def read_memory(self, cpu: int, address: int, length: int) -> bytes:
        return b"".join(self.lpar.read(absolute, size)
                        for absolute, size in self._absolute_ranges(cpu, address, length))

    def write_memory(self, cpu: int, address: int, data: bytes) -> None:
        self._absolute_ranges(cpu, address, len(data))  # refuse a bad range before journaling
        self._run(f"gdbserver write-memory {cpu} {address:x} {data.hex()}")

    def _absolute_ranges(self, cpu: int, address: int, length: int) -> list[tuple[int, int]]:
        try:
            return real_ranges(self.lpar, cpu, address, length)
        except (HmcError, StorageError) as error:
            raise TargetError(str(error)) from None

    # breakpoints
    def insert_breakpoint(self, address: int) -> None:
        if address in self.lpar.breakpoints:
            return  # the operator's own breakpoint serves gdb too; gdb will not remove it
        self._run(f"break {address:#x}")
        self._owned.add(address)

    def remove_breakpoint(self, address: int) -> None:
        if address in self._owned:
            self._owned.discard(address)
            if address in self.lpar.breakpoints:
                self._run(f"break clear {address:#x}")

    # run control
    def step(self, cpu: int) -> Stop:
        state = self.lpar.cpus[cpu].state
        if state in (CpuState.OPERATING, CpuState.STOPPED):
            self._run(f"step 1 cpu={cpu}")
        return Stop(cpu, SIGTRAP)

    def resume(self, cpus: list[int] | None) -> None:
        lpar = self.lpar
        targets = [c.address for c in lpar.cpus] if cpus is None else cpus
        self._hit = None
        for cpu in targets:
            if lpar.cpus[cpu].state == CpuState.STOPPED:
                self._run(f"start {cpu}")
        self._held -= set(targets)

    def on_event(self, event: Event) -> None:
        """Bus subscriber: remember the first breakpoint a CPU reached while gdb waits."""
        if event.kind == "breakpoint" and event.cpu is not None:
            self._held.add(event.cpu)  # it stopped for gdb's sake: detach starts it again
            if self._hit is None:
                self._hit = Stop(event.cpu, SIGTRAP)

    def poll_stop(self) -> Stop | None:
        lpar = self.lpar
        if self._hit is not None:
            return self._stop_everything(self._hit)
        if not any(cpu.state in (CpuState.OPERATING, CpuState.WAIT) for cpu in lpar.cpus):
            # Every CPU stopped by itself or by the operator: report the first one.
            return self._stop_everything(Stop(lpar.cpus[0].address, SIGTRAP))
        return None

    def stop_all(self, signal: int) -> Stop:
        lpar = self.lpar
        running = [c.address for c in lpar.cpus if c.state in (CpuState.OPERATING,
                                                                  CpuState.WAIT)]
        return self._stop_everything(Stop(running[0] if running else 0, signal))

    def _stop_everything(self, stop: Stop, announce: bool = True) -> Stop:
        """All-stop: every CPU that still runs is stopped; detach resumes them."""
        for cpu in self.lpar.cpus:
            if cpu.state in (CpuState.OPERATING, CpuState.WAIT):
                self._run(f"stop {cpu.address}")
                self._held.add(cpu.address)
        self._hit = None
        if announce:
            why = "interrupted by gdb" if stop.signal == SIGINT else f"CPU {stop.cpu} trapped"
            self.publish(f"gdb: {why}; every CPU is stopped")
        return stop

    def attach(self) -> None:
        lpar = self.session.lpar
        self._held = set()
        self.publish(f"gdb attached from {self.client}: it stops every CPU (detach starts "
                     "them again)")
        if lpar is not None and lpar.activated:
            self._stop_everything(Stop(0, SIGTRAP), announce=False)

    def detach(self) -> None:
        lpar = self.session.lpar
        if lpar is not None and lpar.activated:
            for address in list(self._owned):
                self.remove_breakpoint(address)
            for address in sorted(self._held):
                if lpar.cpus[address].state == CpuState.STOPPED:
                    self._run(f"start {address}")
        self._held.clear()
        self.publish(f"gdb detached ({self.client})", attached=False)


def real_ranges(lpar: Lpar, cpu: int, address: int, length: int) -> list[tuple[int, int]]:
    """The absolute (address, length) pieces of a real range as a CPU sees it: prefixing
    swaps real 0-8K with the prefix area. StorageError if any piece is beyond storage."""
    if not 0 <= cpu < len(lpar.cpus):
        raise StorageError(f"no CPU {cpu}")
    target = lpar.cpus[cpu]
    pieces: list[tuple[int, int]] = []
    end = address + length
    while address < end:
        size = min(end, (address // _PREFIX_AREA + 1) * _PREFIX_AREA) - address
        absolute = target.real_to_absolute(address)
        lpar.storage.check(absolute, size)
        pieces.append((absolute, size))
        address += size
    return pieces


def write_register(lpar: Lpar, cpu: int, name: str, value: int) -> None:
    """Set one register of a CPU by its target-description name (`gdbserver write-register`)."""
    target = lpar.cpus[cpu]
    number = REGISTER_NUMBER[name]
    value &= (1 << REGISTERS[number].bits) - 1
    if name in ("pswm", "pswa"):
        mask, address = target.psw
        target.set_psw(value if name == "pswm" else mask, value if name == "pswa" else address)
    elif name == "prefix":
        target.set_prefix(value & 0x7FFFE000)
    elif name == "cputm":
        target.cpu_timer = value - (1 << 64) if value >> 63 else value
    elif name == "ckc":
        target.clock_comparator = value
    elif name == "fpc":
        target.set_reg(UC_S390X_REG_FPC, value)
    else:
        kind, index = re.fullmatch(r"([a-z]+)(\d+)", name).groups()  # type: ignore[union-attr]
        table = {"r": GPRS, "acr": ARS, "f": FPRS, "cr": CRS}[kind]
        target.set_reg(table[int(index)], value)
    if name.startswith("cr") or name == "prefix":
        lpar.flush_code()


def write_memory(lpar: Lpar, cpu: int, address: int, data: bytes) -> None:
    """Store bytes at a real address of a CPU (`gdbserver write-memory`)."""
    offset = 0
    for absolute, size in real_ranges(lpar, cpu, address, len(data)):
        lpar.storage.write(absolute, data[offset:offset + size])
        offset += size
    lpar.flush_code()  # gdb may patch code: no stale translation may run


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
