"""A GDB remote stub: what gdb-multiarch's packets mean (docs/GDB.md).

The stub is in three modules, so that each can be tested alone:

- here, `Stub`: registers, memory, breakpoints, threads and run control against a `Target`;
  no sockets, no LPAR (tests/test_gdbstub_codec.py drives it with a fake target). The packet
  framing is console/control/gdbcodec.py.
- console/control/gdbtarget.py, `LparTarget`: the `Target` of a session's LPAR. Every change
  gdb makes to the machine goes through an operator command, so the journal records it.
- console/control/gdbserver.py, `GdbServer`: the socket, one client at a time; packets are
  executed on the machine's own thread.

Run control is all-stop: when gdb gets a stop reply, every CPU is stopped. Reverse execution
(`bs`, `bc`) runs on the teaching mode's rewind (machine/checkpoint.py): a stop reply with
`replaylog:begin` tells gdb that the recorded history ends there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Protocol

from console.control.gdbcodec import MAX_PACKET, escape, unescape

SIGINT, SIGTRAP = 2, 5


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
    history_begins: bool = False  # reverse execution reached the start of the history


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
    def reverse_step(self, cpu: int) -> Stop: ...
    def reverse_continue(self, cpu: int) -> Stop: ...
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
        self.continue_thread: int | None = None  # the CPU Hc named (None: any)
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
        "D": "_detach", "k": "_kill", "qSymbol::": "_ok", "bs": "_reverse_step",
        "bc": "_reverse_continue",
    }

    def _dispatch(self, text: str, payload: bytes) -> bytes | None:
        if text in self._SIMPLE:
            return getattr(self, self._SIMPLE[text])()
        first = text[:1]
        if text.startswith("qSupported"):
            return (f"PacketSize={MAX_PACKET:x};qXfer:features:read+;qXfer:exec-file:read+;"
                    "QStartNoAckMode+;vContSupported+;ReverseStep+;ReverseContinue+").encode()
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
        if kind == "c":
            # gdb names the thread `bs` steps back this way (0 and -1: any).
            any_thread = thread_id in ("0", "-1", "")
            self.continue_thread = None if any_thread else self._cpu_of(thread_id)
            return b"OK"
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
        reply = f"T{stop.signal:02x}thread:{stop.cpu + 1:x};"
        if stop.history_begins:
            reply += "replaylog:begin;"  # gdb: "No more reverse-execution history."
        return reply.encode()

    def _question(self) -> bytes:
        cpus = self.target.cpus()
        if self.last_stop.cpu not in cpus:  # CPU addresses need not begin at 0
            self.last_stop = Stop(cpus[0], self.last_stop.signal)
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

    def _reverse_cpu(self) -> int:
        return self.thread if self.continue_thread is None else self.continue_thread

    def _reverse_step(self) -> bytes:
        """bs: the CPU gdb named (Hc, else the selected one) one instruction earlier."""
        return self._stop_reply(self.target.reverse_step(self._reverse_cpu()))

    def _reverse_continue(self) -> bytes:
        """bc: back to the latest earlier breakpoint hit of any CPU, reported with that CPU's
        thread; the selected CPU's thread with replaylog:begin when there was none."""
        return self._stop_reply(self.target.reverse_continue(self._reverse_cpu()))

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
