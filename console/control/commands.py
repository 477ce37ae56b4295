"""The operator command language.

Every operator action (typed, bound to a key, filled into an HMC form, run from a lab's solve
script, a demo or a replay) is one line of this language. `COMMANDS` is the single table of
words: `parse` uses it to read a line into a `Command`, `execute` to run that command against a
`Session`, `help` and docs/COMMANDS.md to describe it.

Parsing needs no LPAR; execution turns every refusal of the machine into a failed
`CommandResult` carrying the machine's one-line message, never an exception.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import itertools
import re
import shlex
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import capstone

from console.control import gdbserver, gdbstub, gdbtarget
from machine.breakpoints import BreakpointError
from machine.checkpoint import REVERSE_SEARCH_NS, CheckpointError
from machine.cpu import GPRS
from machine.faults import FaultError, inject
from machine.faults import check_words as check_fault_words
from machine.frames import return_point
from machine.lpar import HmcError
from machine.profile import MAX_CPUS, ProfileError
from machine.profile import parse_devno as machine_parse_devno
from machine.sourcelines import SourceLine, line_at
from machine.storage import StorageError

if TYPE_CHECKING:
    from machine.events import Event
    from machine.lpar import CpuSnapshot, Lpar

DEFAULT_TIMEOUT_NS = 5_000_000_000  # wait-for: 5 s of virtual time
DEFAULT_READ_LENGTH = 0x40
MAX_READ_LENGTH = 0x1000
DEFAULT_UNASSEMBLE_COUNT = 16
MAX_UNASSEMBLE_COUNT = 200
MAX_INSTRUCTION_LENGTH = 6  # bytes: s390 instructions are 2, 4 or 6 bytes long
# The longest virtual time one command may run (run, a wait-for timeout) and one journal run
# record may hold: beyond it a typo (`run 99999999s`) would run until killed (docs/COMMANDS.md).
MAX_VIRTUAL_NS = 3600 * 1_000_000_000
MAX_STEP_COUNT = 1_000_000  # stepping runs a Python hook per instruction: keep it bounded
WAIT_FOR_KINDS = ("console", "stage", "event", "wait", "stopped")
# wait-for since=: `last` counts events since the previous wait-for, `now` only new ones.
WAIT_FOR_SINCE = ("last", "now")
STOPPED_POLL_NS = 1_000_000  # wait-for stopped re-checks the CPU states every 1 ms (virtual)
HELP_WIDTH = 92

_NS_PER_UNIT = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|ms|s)")
_HEX = re.compile(r"(?:0x)?([0-9a-f]+)", re.IGNORECASE)
# LOADPARM: up to 8 characters, as the HMC Load panel accepts them.
_LOADPARM = re.compile(r"[A-Za-z0-9.@#$]{1,8}")


class CommandError(ValueError):
    """A line that is not a valid command; the message is one line naming the problem."""


@dataclass(frozen=True)
class Command:
    """One parsed command: the canonical command word and its typed arguments."""

    name: str
    args: Mapping[str, Any]
    text: str


@dataclass(frozen=True)
class CommandResult:
    """The outcome of one command: an acknowledgement (ok) or a one-line refusal.

    `line` is the script line the command came from, when it came from a script.
    """

    ok: bool
    message: str
    data: dict[str, Any] | None = None
    line: int | None = None


class OperatorSession(Protocol):
    """What commands need of the operator session (console/control/session.py implements it;
    a protocol, so that this module does not import the session, which imports it)."""

    lpar: Lpar | None
    stage_stops: frozenset[str]

    def activate(self, ref: str | None = None) -> str:
        """Create the LPAR from a profile; the acknowledgement."""

    def take_event(self, match: Callable[[Event], bool]) -> Event | None:
        """The first unconsumed event that matches, consumed with those before it; or None."""

    def wait_for(self, match: Callable[[Event], bool], timeout_ns: int) -> Event | None:
        """Run the machine until a matching event or the timeout (virtual time)."""


Parser = Callable[["_Words"], dict[str, Any]]
Runner = Callable[[OperatorSession, Mapping[str, Any]], CommandResult]


@dataclass(frozen=True)
class CommandSpec:
    """One entry of the command table."""

    name: str
    usage: str
    summary: str
    help: str
    parse: Parser
    run: Runner
    needs_lpar: bool = True


# --------------------------------------------------------------------------------------------
# Reading words and values


class _Words:
    """The words after the command word, with error messages that name the command."""

    def __init__(self, spec: CommandSpec, rest: str) -> None:
        self.spec = spec
        self.rest = rest
        try:
            self.items = shlex.split(rest)
        except ValueError:
            raise self.error("unbalanced quotes") from None

    def error(self, problem: str, *, usage: bool = False) -> CommandError:
        """A CommandError for this command, with its usage line when the shape is wrong."""
        suffix = f" (usage: {self.spec.usage})" if usage else ""
        return CommandError(f"{self.spec.name}: {problem}{suffix}")

    def at_most(self, count: int) -> list[str]:
        """The words, refusing more than `count` of them."""
        if len(self.items) > count:
            extra = self.items[count]
            raise self.error(f"unexpected '{extra}'", usage=True)
        return self.items

    def cpu(self, word: str, *, allow_all: bool = False) -> int | None:
        """A CPU address in decimal (0-63), or None for 'all' where allowed."""
        if allow_all and word.lower() == "all":
            return None
        if _is_decimal(word) and int(word) < MAX_CPUS:
            return int(word)
        expected = f"a CPU number 0-{MAX_CPUS - 1}" + (" or 'all'" if allow_all else "")
        raise self.error(f"bad CPU '{word}' (expected {expected})")

    def duration(self, word: str, what: str = "duration") -> int:
        """A positive virtual duration like 250us, 10ms or 2s, in nanoseconds."""
        ns = parse_duration(word)
        if ns is None:
            raise self.error(f"bad {what} '{word}' (expected a number and a unit: "
                             "ns, us, ms or s, like 10ms)")
        if ns > MAX_VIRTUAL_NS:
            raise self.error(f"{what} '{word}' too long (at most 3600s of virtual time)")
        return ns


def _is_decimal(word: str) -> bool:
    # str.isdigit() alone also accepts digits int() refuses, such as '²'.
    return word.isascii() and word.isdigit()


def parse_duration(text: str) -> int | None:
    """Nanoseconds for a duration like '250us', '10ms', '1.5s'; None if malformed or zero."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        return None
    number, unit = match.groups()
    whole, _, fraction = number.partition(".")
    scale = _NS_PER_UNIT[unit]
    # Integer arithmetic: '0.1s' must be exactly 100000000 ns, not a float approximation.
    ns = int(whole) * scale + (int(fraction) * scale // 10 ** len(fraction) if fraction else 0)
    return ns if ns > 0 else None


def format_duration(ns: int) -> str:
    """The shortest exact rendering of a duration: 5000000000 -> '5s', 250000 -> '250us'."""
    for unit in ("s", "ms", "us"):
        scale = _NS_PER_UNIT[unit]
        if ns % scale == 0:
            return f"{ns // scale}{unit}"
    return f"{ns}ns"


def format_time(ns: int) -> str:
    """A virtual time stamp for acknowledgements, in milliseconds."""
    return f"t={ns / 1_000_000:.3f}ms"


def parse_devno(text: str) -> int | None:
    """A device number: 1-4 hex digits, optionally written 0x0100 or 0.0.0100; None if bad."""
    try:
        return machine_parse_devno(text)
    except ValueError:
        return None


def _parse_hex(text: str) -> int | None:
    match = _HEX.fullmatch(text)
    return int(match.group(1), 16) if match else None


def _split_timeout(words: _Words) -> tuple[list[str], int]:
    """The words without a trailing timeout=DURATION, and the timeout (default 5 s)."""
    items = list(words.items)
    timeout = DEFAULT_TIMEOUT_NS
    if items and items[-1].lower().startswith("timeout="):
        timeout = words.duration(items.pop().partition("=")[2], "timeout")
    for item in items:
        if item.lower().startswith("timeout="):
            raise words.error("timeout=DURATION must come last", usage=True)
    return items, timeout


# --------------------------------------------------------------------------------------------
# Argument parsers, one per command


def _parse_nothing(words: _Words) -> dict[str, Any]:
    words.at_most(0)
    return {}


def _parse_activate(words: _Words) -> dict[str, Any]:
    items = words.at_most(1)
    return {"profile": items[0] if items else None}


def _parse_load(words: _Words) -> dict[str, Any]:
    if not words.items:
        raise words.error("missing device number", usage=True)
    devno_word, *options = words.items
    devno = parse_devno(devno_word)
    if devno is None:
        raise words.error(f"bad device number '{devno_word}' (expected hex like 0100)")
    args: dict[str, Any] = {"devno": devno, "clear": False, "store_status": False, "parm": ""}
    seen: set[str] = set()
    for option in options:
        key, has_value, value = option.partition("=")
        key = key.lower()
        if key in seen:
            raise words.error(f"'{key}' given twice")
        seen.add(key)
        if key == "clear" and not has_value:
            args["clear"] = True
        elif key == "store" and not has_value:
            args["store_status"] = True
        elif key == "parm" and has_value:
            if not _LOADPARM.fullmatch(value):
                raise words.error(f"bad load parameter '{value}' "
                                  "(expected 1-8 letters, digits or . @ # $)")
            args["parm"] = value
        else:
            raise words.error(f"unknown option '{option}' (expected clear, store or parm=X)")
    if args["clear"] and args["store_status"]:
        # As on the HMC Load panel: store status is offered only with a normal load, since a
        # clear reset would wipe the storage the status is meant to preserve.
        raise words.error("'store' needs a normal load, not 'clear'")
    return args


def _parse_cpu_or_all(words: _Words) -> dict[str, Any]:
    items = words.at_most(1)
    return {"cpu": words.cpu(items[0], allow_all=True) if items else None}


def _parse_optional_cpu(words: _Words) -> dict[str, Any]:
    items = words.at_most(1)
    return {"cpu": words.cpu(items[0]) if items else 0}


def _parse_reset(words: _Words) -> dict[str, Any]:
    items = words.at_most(1)
    if not items or items[0].lower() not in ("normal", "clear"):
        raise words.error("expected 'normal' or 'clear'", usage=True)
    return {"clear": items[0].lower() == "clear"}


def _parse_oscmd(words: _Words) -> dict[str, Any]:
    # The text goes to the operating system as typed: take the raw rest of the line, so that
    # spacing survives, and drop quotes only when they wrap the whole text.
    text = words.rest.strip()
    priority = False
    first, _, remainder = text.partition(" ")
    if first == "--priority":
        priority, text = True, remainder.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]
    if not text:
        raise words.error("missing TEXT", usage=True)
    return {"text": text, "priority": priority}


KDUMP_ACTIONS = ("load", "unload", "status")


def _parse_fault(words: _Words) -> dict[str, Any]:
    fault = [w.lower() for w in words.items[:1]] + words.items[1:]
    if fault and fault[0] == "hang":
        fault = [w.lower() for w in fault]
    try:
        check_fault_words(fault)
    except FaultError as exc:
        raise words.error(str(exc), usage=not fault) from None
    if fault[0] == "panic":
        return {"words": ["panic", " ".join(fault[1:])] if len(fault) > 1 else ["panic"]}
    return {"words": fault}


def _parse_run(words: _Words) -> dict[str, Any]:
    items = words.at_most(1)
    if not items:
        raise words.error("missing DURATION", usage=True)
    return {"ns": words.duration(items[0])}


def _parse_step(words: _Words) -> dict[str, Any]:
    args: dict[str, Any] = {"count": 1, "cpu": 0}
    counted = False
    items = list(words.items)
    if items and items[0].lower() in ("back", "line"):
        args[items.pop(0).lower()] = True
    if args.get("line") and any("=" not in item for item in items):
        raise words.error("line takes only cpu=C", usage=True)
    for item in items:
        key, has_value, value = item.partition("=")
        if has_value and key.lower() == "cpu":
            args["cpu"] = words.cpu(value)
        elif not has_value and not counted:
            if not _is_decimal(item) or not 1 <= int(item) <= MAX_STEP_COUNT:
                raise words.error(f"bad count '{item}' (expected 1-{MAX_STEP_COUNT})")
            args["count"], counted = int(item), True
        else:
            raise words.error(f"unexpected '{item}'", usage=True)
    return args


def _parse_regs(words: _Words) -> dict[str, Any]:
    items = words.at_most(1)
    return {"cpu": words.cpu(items[0]) if items else 0}


def _parse_read(words: _Words) -> dict[str, Any]:
    items = words.at_most(1)
    if not items:
        raise words.error("missing ADDR", usage=True)
    address_word, dot, length_word = items[0].partition(".")
    address = _parse_hex(address_word)
    if address is None:
        raise words.error(f"bad address '{address_word}' (expected hex like 10000)")
    length = DEFAULT_READ_LENGTH
    if dot:
        length = _parse_hex(length_word)
        if length is None or length == 0:
            raise words.error(f"bad length '{length_word}' (expected hex like 40)")
        if length > MAX_READ_LENGTH:
            raise words.error(f"length 0x{length:x} too large (at most 0x{MAX_READ_LENGTH:x})")
    return {"address": address, "length": length}


def _parse_unassemble(words: _Words) -> dict[str, Any]:
    source = bool(words.items) and words.items[0].lower() == "/s"
    if source:
        words.items = words.items[1:]
    items = words.at_most(2)
    if not items:
        raise words.error("missing ADDR or SYMBOL", usage=True)
    count = DEFAULT_UNASSEMBLE_COUNT
    if len(items) > 1:
        if not _is_decimal(items[1]) or not 1 <= int(items[1]) <= MAX_UNASSEMBLE_COUNT:
            raise words.error(f"bad count '{items[1]}' (expected 1-{MAX_UNASSEMBLE_COUNT})")
        count = int(items[1])
    return {"where": items[0], "count": count, **({"source": True} if source else {})}


def _parse_wait_for(words: _Words) -> dict[str, Any]:
    items, timeout = _split_timeout(words)
    since = _split_since(words, items)
    if not items:
        raise words.error(f"missing what to wait for ({_alternatives(WAIT_FOR_KINDS)})",
                          usage=True)
    what, *rest = items
    what = what.lower()
    args: dict[str, Any] = {"what": what, "timeout": timeout}
    if since == "now":
        args["since"] = "now"
    if what == "console":
        if not rest:
            raise words.error("console: missing TEXT", usage=True)
        args["text"] = " ".join(rest)
    elif what in ("stage", "event"):
        if len(rest) != 1:
            name = "NAME" if what == "stage" else "KIND"
            raise words.error(f"{what}: expected one {name}", usage=True)
        args["name"] = rest[0]
    elif what == "wait":
        if len(rest) > 1:
            raise words.error(f"unexpected '{rest[1]}'", usage=True)
        args["cpu"] = words.cpu(rest[0]) if rest else None
    elif what == "stopped":
        if rest:
            raise words.error(f"unexpected '{rest[0]}'", usage=True)
    else:
        raise words.error(f"cannot wait for '{what}' (expected {_alternatives(WAIT_FOR_KINDS)})")
    return args


def _split_since(words: _Words, items: list[str]) -> str:
    """Take a `since=last|now` word off the end of items (before timeout=); its value."""
    if not items or not items[-1].lower().startswith("since="):
        return "last"
    value = items.pop().partition("=")[2].lower()
    if value not in WAIT_FOR_SINCE:
        raise words.error(f"bad since '{value}' (expected {_alternatives(WAIT_FOR_SINCE)})")
    return value


def _parse_help(words: _Words) -> dict[str, Any]:
    items = words.at_most(1)
    if items and items[0].lower() not in COMMANDS:
        raise words.error(_unknown(items[0]))
    return {"topic": items[0].lower() if items else None}


# --------------------------------------------------------------------------------------------
# Runners, one per command. Each gets a session whose LPAR exists when the spec needs one.


def _lpar(session: OperatorSession) -> Lpar:
    assert session.lpar is not None  # execute() checks needs_lpar before calling a runner
    return session.lpar


def _done(message: str, data: dict[str, Any] | None = None) -> CommandResult:
    return CommandResult(True, message, data)


def _run_activate(session: OperatorSession, args: Mapping[str, Any]) -> CommandResult:
    acknowledgement = session.activate(args["profile"])
    profile = _lpar(session).profile
    return _done(acknowledgement, {"profile": profile.name, "cpus": profile.cpus,
                                   "memory": profile.memory,
                                   "crashkernel": profile.crashkernel})


# The HMC operations below return the machine's own one-line acknowledgement, so that what the
# operator reads always matches what the machine did (e.g. Start when no CPU was stopped).


def _run_deactivate(session: OperatorSession, args: Mapping[str, Any]) -> CommandResult:
    return _done(_lpar(session).deactivate())


def _run_load(session: OperatorSession, args: Mapping[str, Any]) -> CommandResult:
    acknowledgement = _lpar(session).load(args["devno"], clear=args["clear"],
                                          store_status=args["store_status"], parm=args["parm"])
    return _done(acknowledgement, {"devno": args["devno"], "clear": args["clear"],
                                   "store_status": args["store_status"], "parm": args["parm"]})


def _run_stop(session: OperatorSession, args: Mapping[str, Any]) -> CommandResult:
    return _done(_lpar(session).stop(args["cpu"]))


def _run_start(session: OperatorSession, args: Mapping[str, Any]) -> CommandResult:
    return _done(_lpar(session).start(args["cpu"]))


def _run_restart(session: OperatorSession, args: Mapping[str, Any]) -> CommandResult:
    return _done(_lpar(session).psw_restart(args["cpu"]))


def _run_reset(session: OperatorSession, args: Mapping[str, Any]) -> CommandResult:
    return _done(_lpar(session).reset(clear=args["clear"]))


def _run_store(session: OperatorSession, args: Mapping[str, Any]) -> CommandResult:
    return _done(_lpar(session).store_status(args["cpu"]))


def _run_oscmd(session: OperatorSession, args: Mapping[str, Any]) -> CommandResult:
    return _done(_lpar(session).os_command(args["text"], priority=args["priority"]))


def _parse_kdump(words: _Words) -> dict[str, Any]:
    action = words.items[0].lower() if words.items else "status"
    if action not in KDUMP_ACTIONS or len(words.items) > 1:
        raise words.error(f"expected one of {_alternatives(KDUMP_ACTIONS)}", usage=True)
    return {"action": action}


def _run_kdump(session: OperatorSession, args: Mapping[str, Any]) -> CommandResult:
    return _done(_lpar(session).os_command(f"kdump {args['action']}"))


def _run_fault(session: OperatorSession, args: Mapping[str, Any]) -> CommandResult:
    lpar = _lpar(session)
    if lpar.checkpoints is not None:
        lpar.checkpoints.barrier()  # a fault changes storage behind the machine's back
    return _done(inject(lpar, list(args["words"])))


def _run_run(session: OperatorSession, args: Mapping[str, Any]) -> CommandResult:
    lpar = _lpar(session)
    lpar.run(args["ns"])
    now = lpar.snapshot().t
    return _done(f"Ran {format_duration(args['ns'])} of virtual time, now {format_time(now)}",
                 {"t": now})


_CODE_ADDRESS = re.compile(r"(?:0x[0-9a-f]+|[0-9][0-9a-f]*)", re.IGNORECASE)


def _parse_break(words: _Words) -> dict[str, Any]:
    items = words.at_most(2)
    if not items or items == ["list"]:
        return {"action": "list", "where": None}
    if items[0].lower() == "clear":
        return {"action": "clear", "where": items[1] if len(items) > 1 else "all"}
    if len(items) > 1:
        raise words.error(f"unexpected '{items[1]}'", usage=True)
    return {"action": "set", "where": items[0]}


def _code_address(lpar: Lpar, where: str) -> tuple[int, str]:
    """An instruction address typed as hex (0x11140, 11140) or as a symbol; its label."""
    if _CODE_ADDRESS.fullmatch(where):
        return int(where, 16), f"{int(where, 16):#x}"
    address = lpar.code_address(where)
    if address is None and re.fullmatch(r"[0-9a-f]+", where, re.IGNORECASE):
        raise CommandError(f"break: no symbol '{where}' (an address that starts with a letter "
                           f"is written 0x{where})")
    if address is None:
        loaded = lpar.program.name if lpar.program is not None else "no program"
        raise CommandError(f"break: no symbol '{where}' (loaded: {loaded}; other programs as "
                           "PROGRAM:NAME, the loaded purgatory as purgatory:NAME)")
    return address, where


def _breakpoint_list(lpar: Lpar) -> CommandResult:
    listed = lpar.breakpoints.listed()
    if not listed:
        return _done("No breakpoints.", {"breakpoints": []})
    rows = [f"  {b.address:#012x}  {b.label}" for b in listed]
    return _done("Breakpoints:\n" + "\n".join(rows),
                 {"breakpoints": [{"address": b.address, "label": b.label} for b in listed]})


def _run_break(session: OperatorSession, args: Mapping[str, Any]) -> CommandResult:
    lpar = _lpar(session)
    action, where = args["action"], args["where"]
    try:
        if action == "list":
            return _breakpoint_list(lpar)
        if action == "clear" and where.lower() == "all":
            count = lpar.breakpoints.clear()
            return _done(f"Breakpoints cleared: {count}", {"cleared": count})
        address, label = _code_address(lpar, where)
        if action == "clear":
            lpar.breakpoints.remove(address)
            return _done(f"Breakpoint at {address:#x} ({label}) cleared", {"address": address})
        lpar.breakpoints.add(address, label)
    except BreakpointError as error:
        raise CommandError(f"break: {error}") from None
    return _done(f"Breakpoint set at {address:#x} ({label}): a CPU that reaches it stops in "
                 "front of it", {"address": address, "label": label})


def _cpu_snapshot(session: OperatorSession, cpu: int, command: str) -> CpuSnapshot:
    """The snapshot of one CPU, or a CommandError naming the CPUs this LPAR has."""
    lpar = _lpar(session)
    cpus = {snapshot.address: snapshot for snapshot in lpar.snapshot().cpus}
    if cpu not in cpus:
        raise CommandError(f"{command}: no CPU {cpu} (this LPAR has CPUs {lpar.cpu_list()})")
    return cpus[cpu]


def _run_step(session: OperatorSession, args: Mapping[str, Any]) -> CommandResult:
    _cpu_snapshot(session, args["cpu"], "step")
    if args.get("back"):
        return _run_step_back(session, args)
    if args.get("line"):
        return _run_step_line(session, args)
    _lpar(session).step(args["cpu"], args["count"])
    cpu = _cpu_snapshot(session, args["cpu"], "step")
    plural = "" if args["count"] == 1 else "s"
    return _done(f"CPU {args['cpu']} stepped {args['count']} instruction{plural}: "
                 f"PSW {cpu.psw_mask:016x} {cpu.psw_addr:016x} ({cpu.state})",
                 {"cpu": args["cpu"], "psw_mask": cpu.psw_mask, "psw_addr": cpu.psw_addr,
                  "state": cpu.state})


def _checkpoints(session: OperatorSession, command: str):
    checkpoints = _lpar(session).checkpoints
    if checkpoints is None:
        raise CommandError(f"{command}: the LPAR is not activated (use 'activate' first)")
    return checkpoints


def _run_step_back(session: OperatorSession, args: Mapping[str, Any]) -> CommandResult:
    cpu, count = args["cpu"], args["count"]
    try:
        target = _checkpoints(session, "step back").step_back(cpu, count)
    except CheckpointError as error:
        raise CommandError(f"step back: {error}") from None
    snap = _cpu_snapshot(session, cpu, "step back")
    plural = "" if count == 1 else "s"
    return _done(f"CPU {cpu} stepped back {count} instruction{plural} (to instruction {target}, "
                 f"{format_time(_lpar(session).clock.now)}): PSW {snap.psw_mask:016x} "
                 f"{snap.psw_addr:016x} ({snap.state})",
                 {"cpu": cpu, "instructions": target, "t": _lpar(session).clock.now,
                  "psw_mask": snap.psw_mask, "psw_addr": snap.psw_addr, "state": snap.state})


def _run_reverse_continue(session: OperatorSession, args: Mapping[str, Any]) -> CommandResult:
    lpar = _lpar(session)
    kept = lpar.breakpoints.listed()
    labels = {b.address: b.label for b in kept}
    checkpoints = _checkpoints(session, "reverse-continue")
    try:
        found = checkpoints.reverse_continue(frozenset(labels))
    except CheckpointError as error:
        raise CommandError(f"reverse-continue: {error}") from None
    _keep_breakpoints(lpar, kept)
    now, hit = format_time(lpar.clock.now), found.hit
    if hit is None:
        data = {"cpu": None, "t": lpar.clock.now, "complete": found.complete}
        if not found.complete:
            return _done(f"No CPU reached a breakpoint since {format_time(found.since)} (one "
                         f"reverse-continue looks back "
                         f"{checkpoints.reverse_search_ns / 1_000_000:g} ms): the "
                         f"machine stays at {now}; go back further with rewind, checkpoint "
                         "restore or step back, then try again", data)
        why = "no CPU reached a breakpoint in it" if labels else "no breakpoints are set"
        return _done(f"Back at the beginning of the recorded history ({now}): {why}", data)
    return _done(f"CPU {hit.cpu} reached breakpoint {hit.address:#x} ({labels[hit.address]}) "
                 f"at {now}, after {hit.count} instructions: the machine is as it was then",
                 {"cpu": hit.cpu, "address": hit.address, "instructions": hit.count,
                  "t": lpar.clock.now})


def _keep_breakpoints(lpar: Lpar, kept: list) -> None:
    """Going back restored the breakpoints set back then; the ones set before the command
    stay (as a debugger's do), so that reverse-continue can be repeated."""
    wanted = {b.address: b.label for b in kept}
    for address in lpar.breakpoints.addresses - wanted.keys():
        lpar.breakpoints.remove(address)
    for address, label in wanted.items():
        if address not in lpar.breakpoints:
            lpar.breakpoints.add(address, label)


def _parse_finish(words: _Words) -> dict[str, Any]:
    items = words.at_most(1)
    cpu = 0
    for item in items:
        key, has_value, value = item.partition("=")
        if not has_value or key.lower() != "cpu":
            raise words.error(f"unexpected '{item}'", usage=True)
        cpu = words.cpu(value)
    return {"cpu": cpu}


CHECKPOINT_ACTIONS = ("save", "list", "restore")
_CHECKPOINT_NAME = re.compile(r"[A-Za-z0-9_.-]{1,40}")


def _parse_checkpoint(words: _Words) -> dict[str, Any]:
    items = words.at_most(2)
    action = items[0].lower() if items else "list"
    if action not in CHECKPOINT_ACTIONS:
        raise words.error(f"expected {_alternatives(CHECKPOINT_ACTIONS)}", usage=True)
    if action == "list":
        if len(items) > 1:
            raise words.error(f"unexpected '{items[1]}'", usage=True)
        return {"action": action, "name": None}
    if len(items) < 2:
        raise words.error(f"{action}: missing NAME", usage=True)
    if not _CHECKPOINT_NAME.fullmatch(items[1]):
        raise words.error(f"bad name '{items[1]}' (1-40 letters, digits, - _ .)")
    return {"action": action, "name": items[1]}


def _checkpoint_row(node) -> str:
    what = {"user": "saved", "stage": "stage began", "activation": "activation"}[node.kind]
    size = node.delta_bytes / (1 << 20)
    return f"  {node.name:<20} {format_time(node.t):<16} {what:<12} {size:8.2f} MiB"


def _run_checkpoint(session: OperatorSession, args: Mapping[str, Any]) -> CommandResult:
    checkpoints = _checkpoints(session, "checkpoint")
    action, name = args["action"], args["name"]
    try:
        if action == "save":
            node = checkpoints.save(name)
            return _done(f"Checkpoint {name} saved at {format_time(node.t)} "
                         f"({node.delta_bytes / (1 << 20):.2f} MiB of changes)",
                         {"name": name, "t": node.t})
        if action == "restore":
            node = checkpoints.find(name)
            checkpoints.restore(node, f"checkpoint {name}")
            return _done(f"Checkpoint {name} restored: the machine is as it was at "
                         f"{format_time(node.t)}", {"name": name, "t": node.t})
    except CheckpointError as error:
        raise CommandError(f"checkpoint: {error}") from None
    listed = checkpoints.listed()
    rows = [_checkpoint_row(node) for node in listed]
    total = checkpoints.host_bytes() / (1 << 20)
    return _done("\n".join(["Checkpoints (name, time, kind, changes held):", *rows,
                            f"  all checkpoints hold {total:.2f} MiB"]),
                 {"checkpoints": [{"name": n.name, "kind": n.kind, "t": n.t}
                                  for n in listed]})


def _parse_rewind(words: _Words) -> dict[str, Any]:
    items = words.at_most(1)
    if not items:
        raise words.error("missing STAGE", usage=True)
    return {"stage": items[0].lower()}


def _run_rewind(session: OperatorSession, args: Mapping[str, Any]) -> CommandResult:
    try:
        start = _checkpoints(session, "rewind").rewind_to_stage(args["stage"])
    except CheckpointError as error:
        raise CommandError(f"rewind: {error}") from None
    now = _lpar(session).clock.now
    return _done(f"Rewound to stage {start.stage}, which began at {format_time(start.t)}: the "
                 f"machine is as it was then", {"stage": start.stage, "t": now})


# The dump workflow's stages: `stage-stop on` holds at each (docs/COMMANDS.md).
WORKFLOW_STAGES = ("crash-kexec", "purgatory-verify", "purgatory-load", "notes", "swap",
                   "kdump-boot", "vmcore", "dumper", "cpu-status", "checks", "kdump",
                   "full-dump", "oldmem-copy")


def _parse_stage_stop(words: _Words) -> dict[str, Any]:
    items = words.at_most(1)
    if not items:
        return {"stages": None}
    word = items[0].lower()
    if word == "on":
        return {"stages": list(WORKFLOW_STAGES)}
    if word == "off":
        return {"stages": []}
    stages = [s for s in word.split(",") if s]
    unknown = [s for s in stages if s not in WORKFLOW_STAGES + _OTHER_STAGES]
    if unknown or not stages:
        raise words.error(f"unknown stage '{unknown[0] if unknown else word}' (expected on, "
                          f"off or stages from: {', '.join(WORKFLOW_STAGES + _OTHER_STAGES)})")
    return {"stages": stages}


_OTHER_STAGES = ("ipl", "boot", "workload", "workload-filled", "kexec-load")


def _run_stage_stop(session: OperatorSession, args: Mapping[str, Any]) -> CommandResult:
    stages = args["stages"]
    if stages is not None:
        session.stage_stops = frozenset(stages)
        if session.lpar is not None and session.lpar.checkpoints is not None:
            session.lpar.checkpoints.stage_stops = session.stage_stops
    current = sorted(session.stage_stops, key=lambda s: (WORKFLOW_STAGES + _OTHER_STAGES).index(s))
    shown = ", ".join(current) if current else "off"
    return _done(f"Stage stops: {shown}", {"stages": current})


def _parse_incident(words: _Words) -> dict[str, Any]:
    items = words.at_most(2)
    if not items or items == ["list"]:
        return {"number": None}
    if items[0].lower() != "show" or len(items) != 2 or not _is_decimal(items[1]):
        raise words.error("expected 'list' or 'show N'", usage=True)
    return {"number": int(items[1])}


def _run_incident(session: OperatorSession, args: Mapping[str, Any]) -> CommandResult:
    incidents = _checkpoints(session, "incident").incidents.items
    number = args["number"]
    if number is None:
        rows = [f"  {i.number:3d}  {format_time(i.t):<16} {i.cause:<28} {i.outcome}"
                for i in incidents]
        return _done("\n".join(["Incidents (number, began, cause, outcome):", *rows]),
                     {"incidents": [i.to_dict() for i in incidents]})
    if not 1 <= number <= len(incidents):
        raise CommandError(f"incident: no incident {number} (there are {len(incidents)})")
    incident = incidents[number - 1]
    lines = [f"Incident {number}: began {format_time(incident.t)} by {incident.cause}",
             f"  programs: {', '.join(incident.programs) or '-'}",
             f"  outcome:  {incident.outcome}"]
    lines += [f"  {stage:<18} {status}" for stage, status in incident.stages.items()]
    return _done("\n".join(lines), incident.to_dict())


def _register_rows(prefix: str, values: tuple[int, ...], width: int, per_row: int) -> list[str]:
    cells = [f"{prefix}{index:02d} {value:0{width}x}" for index, value in enumerate(values)]
    return ["  ".join(cells[row:row + per_row]) for row in range(0, len(cells), per_row)]


def format_registers(cpu: CpuSnapshot) -> str:
    """A register display of one CpuSnapshot: PSW, prefix, timers, GRs, CRs, ARs, FPRs."""
    wait = f"  wait code {cpu.wait_code:#x}" if cpu.wait_code is not None else ""
    lines = [
        f"CPU {cpu.address}  {cpu.state}{wait}",
        (f"PSW {cpu.psw_mask:016x} {cpu.psw_addr:016x}  prefix {cpu.prefix:08x}  "
         f"FPC {cpu.fpc:08x}"),
        f"CPU timer {cpu.cpu_timer:016x}  clock comparator {cpu.clock_comparator:016x}",
        *_register_rows("GR", cpu.gprs, 16, 4),
        *_register_rows("CR", cpu.crs, 16, 4),
        *_register_rows("AR", cpu.ars, 8, 8),
        *_register_rows("FPR", cpu.fprs, 16, 4),
    ]
    return "\n".join(lines)


def _json_safe(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: _json_safe(getattr(value, field.name))
                for field in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
        return [_json_safe(item) for item in value]
    return value


def _run_regs(session: OperatorSession, args: Mapping[str, Any]) -> CommandResult:
    cpu = _cpu_snapshot(session, args["cpu"], "regs")
    return _done(format_registers(cpu), _json_safe(cpu))


def hex_dump(address: int, data: bytes) -> list[str]:
    """Storage display lines: address, four words of hex, and the printable ASCII."""
    lines = []
    for offset in range(0, len(data), 16):
        chunk = data[offset:offset + 16]
        words = " ".join(chunk[i:i + 4].hex() for i in range(0, len(chunk), 4))
        text = "".join(chr(byte) if 0x20 <= byte < 0x7F else "." for byte in chunk)
        lines.append(f"{address + offset:016x}  {words:<35}  |{text}|")
    return lines


def _run_read(session: OperatorSession, args: Mapping[str, Any]) -> CommandResult:
    data = _lpar(session).read(args["address"], args["length"])
    return _done("\n".join(hex_dump(args["address"], data)),
                 {"address": args["address"], "length": len(data), "hex": data.hex()})


def _run_unassemble(session: OperatorSession, args: Mapping[str, Any]) -> CommandResult:
    lpar = _lpar(session)
    try:
        address, _ = _code_address(lpar, args["where"])
    except CommandError as error:
        raise CommandError(str(error).replace("break:", "u:", 1)) from None
    if address >= lpar.profile.memory:
        raise CommandError(f"u: address {address:#x} is beyond the LPAR's storage "
                           f"({lpar.profile.memory >> 20} MiB, up to "
                           f"{lpar.profile.memory - 1:#x})")
    length = min(args["count"] * MAX_INSTRUCTION_LENGTH, lpar.profile.memory - address)
    data = lpar.read(address, max(length, 0)) if length > 0 else b""
    program = lpar.program
    lines, listed = [], []
    shown_line = None
    for insn in itertools.islice(_disassembler().disasm(data, address), args["count"]):
        symbol = program.symbol_at(insn.address) if program is not None else None
        if symbol is not None and symbol[1] == 0:
            lines.append(f"{symbol[0]}:")
        source = source_line(lpar, insn.address) if args.get("source") else None
        if source is not None and source != shown_line:
            lines.append(f"    {source}  {source.text().strip()}")
            shown_line = source
        text = f"{insn.mnemonic} {insn.op_str}".strip()
        lines.append(f"  {insn.address:016x}  {insn.bytes.hex():<12}  {text}")
        listed.append({"address": insn.address, "bytes": insn.bytes.hex(), "text": text,
                       **({"source": str(source)} if source is not None else {})})
    if not listed:
        return _done(f"No instruction decodes at {address:#x}", {"instructions": []})
    return _done("\n".join(lines), {"address": address, "instructions": listed})


def source_line(lpar: Lpar, address: int) -> SourceLine | None:
    """The C source line of an instruction address: in the loaded crash image's purgatory
    (where kexec put it), else in the loaded program."""
    crash = lpar.kdump.image
    if crash is not None:
        segment = crash.segment("purgatory")
        if segment.mem <= address < segment.mem + segment.memsz:
            return line_at("purgatory", address, segment.mem)
    program = lpar.program
    if program is not None and program.start <= address < program.end:
        try:
            return line_at(program.name, address)
        except (OSError, ValueError):
            return None
    return None


def _current_line(lpar: Lpar, cpu: int) -> SourceLine | None:
    return source_line(lpar, lpar.cpus[cpu].psw[1])


def _run_step_line(session: OperatorSession, args: Mapping[str, Any]) -> CommandResult:
    """Step one CPU until its PSW is in another source line (at most MAX_STEP_COUNT)."""
    lpar, cpu = _lpar(session), args["cpu"]
    start = _current_line(lpar, cpu)
    if start is None:
        raise CommandError(f"step line: CPU {cpu}'s PSW is in no program with a line table "
                           "(use step)")
    for steps in range(1, MAX_STEP_COUNT + 1):
        lpar.step(cpu, 1)
        now = _current_line(lpar, cpu)
        state = str(lpar.cpus[cpu].state)
        if (now is not None and now != start) or state not in ("operating", "stopped"):
            break
    address = lpar.cpus[cpu].psw[1]
    where = f"{now}  {now.text().strip()}" if now is not None else "no source line"
    return _done(f"CPU {cpu} stepped {steps} instructions to {address:#x}: {where}",
                 {"cpu": cpu, "steps": steps, "psw_addr": address,
                  "source": str(now) if now is not None else None})


FINISH_CHUNK = 20_000
MAX_FINISH_INSTRUCTIONS = 50_000_000


def _run_finish(session: OperatorSession, args: Mapping[str, Any]) -> CommandResult:
    """Run one CPU until the function its PSW is in returns to its caller."""
    lpar, cpu = _lpar(session), args["cpu"]
    _cpu_snapshot(session, cpu, "finish")
    target = lpar.cpus[cpu]
    found = return_point(lpar, cpu)
    if found is None:
        raise CommandError(f"finish: no call frame known at CPU {cpu}'s PSW "
                           f"{target.psw[1]:#x} (no debug information there)")
    return_address, frame = found
    ours = return_address not in lpar.breakpoints
    if ours:
        lpar.breakpoints.add(return_address, "finish")
    try:
        executed = 0
        while executed < MAX_FINISH_INSTRUCTIONS:
            lpar.step(cpu, FINISH_CHUNK)
            executed += FINISH_CHUNK
            if target.stopped_at_breakpoint == return_address and target.regs(GPRS[15:])[0] >= frame:
                break
            if str(target.state) not in ("operating", "stopped"):
                break
        else:
            raise CommandError(f"finish: the function did not return within "
                               f"{MAX_FINISH_INSTRUCTIONS} instructions")
    finally:
        if ours:
            lpar.breakpoints.remove(return_address)
    address = target.psw[1]
    where = source_line(lpar, address)
    return _done(f"CPU {cpu} returned to {address:#x}"
                 + (f": {where}  {where.text().strip()}" if where is not None else ""),
                 {"cpu": cpu, "psw_addr": address, "source": str(where) if where else None})


@functools.lru_cache(maxsize=1)
def _disassembler() -> capstone.Cs:
    return capstone.Cs(capstone.CS_ARCH_SYSZ, capstone.CS_MODE_BIG_ENDIAN)


def _run_status(session: OperatorSession, args: Mapping[str, Any]) -> CommandResult:
    if session.lpar is None or session.lpar.status == "not activated":
        return _done("LPAR status: not activated", {"status": "not activated", "cpus": []})
    snapshot = session.lpar.snapshot()
    cpus = [{"address": cpu.address, "state": cpu.state, "psw_mask": cpu.psw_mask,
             "psw_addr": cpu.psw_addr, "wait_code": cpu.wait_code} for cpu in snapshot.cpus]
    lines = [f"LPAR status: {snapshot.status}  ({format_time(snapshot.t)})"]
    lines += [f"CPU {cpu['address']:2d}  {cpu['state']:<13}  PSW {cpu['psw_mask']:016x} "
              f"{cpu['psw_addr']:016x}" for cpu in cpus]
    return _done("\n".join(lines), {"status": snapshot.status, "t": snapshot.t, "cpus": cpus})


def _describe_wait(args: Mapping[str, Any]) -> str:
    what = args["what"]
    if what == "console":
        return f"console '{args['text']}'"
    if what in ("stage", "event"):
        return f"{what} {args['name']}"
    if what == "wait" and args.get("cpu") is not None:
        return f"wait {args['cpu']}"
    return what


def _event_matcher(args: Mapping[str, Any]) -> Callable[[Event], bool]:
    """The predicate on events that ends a wait-for console|stage|event|wait."""
    what = args["what"]
    if what == "console":
        # The operator's own commands are echoed on the console too; waiting for text means
        # waiting for the system to print it.
        return lambda e: (e.kind == "console" and getattr(e, "source", "os") != "operator"
                          and args["text"] in getattr(e, "text", ""))
    if what == "stage":
        return lambda e: (e.kind == "stage" and getattr(e, "stage", None) == args["name"]
                          and getattr(e, "status", None) == "done")
    if what == "event":
        return lambda e: e.kind == args["name"]
    cpu = args["cpu"]
    return lambda e: (e.kind == "wait" and not getattr(e, "enabled", True)
                      and (cpu is None or e.cpu == cpu))


def _disabled_wait_cpu(session: OperatorSession, cpu: int | None) -> CpuSnapshot | None:
    """A CPU (the given one, or any) already in disabled wait, or None."""
    for snap in _lpar(session).snapshot().cpus:
        if snap.state == "disabled wait" and (cpu is None or snap.address == cpu):
            return snap
    return None


def _no_cpu_running(session: OperatorSession) -> str:
    """How the CPUs stand once none can run: 'All CPUs stopped', or the mix of states."""
    states = [cpu.state for cpu in _lpar(session).snapshot().cpus]
    if set(states) == {"stopped"}:
        return "All CPUs stopped"
    counts = ", ".join(f"{states.count(state)} {state}" for state in dict.fromkeys(states))
    return f"No CPU can run ({counts})"


def _wait_stopped(session: OperatorSession, timeout: int) -> int | None:
    """Run until every CPU is stopped; the virtual time it happened, or None on timeout."""
    lpar = _lpar(session)
    remaining = timeout
    while not lpar.all_stopped():
        if remaining <= 0:
            return None
        # A CPU stopping shows as a cpu_state event: return early then, else re-check after
        # each slice. Counting slices (not reading the clock) guarantees the loop ends.
        chunk = min(STOPPED_POLL_NS, remaining)
        lpar.run_until(lambda e: e.kind == "cpu_state" and lpar.all_stopped(), chunk)
        remaining -= chunk
    return lpar.snapshot().t


def _run_wait_for(session: OperatorSession, args: Mapping[str, Any]) -> CommandResult:
    what, timeout = args["what"], args["timeout"]
    timed_out = CommandResult(False, f"wait-for {_describe_wait(args)}: timed out after "
                                     f"{format_duration(timeout)} (virtual)")
    if what == "stopped":
        when = _wait_stopped(session, timeout)
        if when is None:
            return timed_out
        return _done(f"{_no_cpu_running(session)} at {format_time(when)}", {"t": when})
    match = _event_matcher(args)
    # By default what already happened counts (since the previous wait-for, live runs of the
    # console included: F7 says the stages in order); `since=now` waits for a new one.
    look_back = args.get("since", "last") == "last"
    event = session.take_event(match) if look_back else None
    if event is None and what == "wait" and look_back:
        cpu = _disabled_wait_cpu(session, args["cpu"])
        if cpu is not None:
            now = _lpar(session).snapshot().t
            return _done(f"CPU {cpu.address} is in disabled wait (code {cpu.wait_code:#x})",
                         {"t": now, "cpu": cpu.address, "code": cpu.wait_code})
    if event is None:
        event = session.wait_for(match, timeout)
    if event is None and _lpar(session).held_at is not None:
        stage = _lpar(session).held_at
        return CommandResult(False, f"wait-for {_describe_wait(args)}: held where stage "
                                    f"{stage} began (stage stops are on: go on, or "
                                    "stage-stop off)")
    if event is None:
        return timed_out
    detail = getattr(event, "detail", "") if event.kind == "stage" else ""
    return _done(f"{_describe_event(event)} at {format_time(event.t)}"
                 + (f": {detail}" if detail else ""), event.to_dict())


def _describe_event(event: Event) -> str:
    if event.kind == "console":
        return f"Console: {getattr(event, 'text', '').strip()}"
    if event.kind == "stage":
        # Its own status: a failed stage is no "done" (F7 and `wait-for event stage` see all).
        return f"Stage {getattr(event, 'stage', '?')} {getattr(event, 'status', '?')}"
    if event.kind == "wait":
        return f"CPU {event.cpu} entered disabled wait (code {getattr(event, 'code', 0):#x})"
    cpu = f" on CPU {event.cpu}" if event.cpu is not None else ""
    return f"Event {event.kind}{cpu}"


GDBSERVER_USAGE = ("gdbserver [ADDR:]PORT [wait] | gdbserver wait | gdbserver stop | gdbserver "
                   "| gdbserver write-register CPU NAME HEX | gdbserver write-memory CPU ADDR HEX")


def _parse_gdbserver(words: _Words) -> dict[str, Any]:
    items = words.items
    if not items:
        return {"action": "status"}
    first = items[0].lower()
    if first in ("stop", "wait") and len(items) == 1:
        return {"action": first}
    if first == "write-register":
        if len(items) != 4 or items[2] not in gdbstub.REGISTER_NUMBER:
            raise words.error("write-register needs CPU, a register name (r0, pswa, f2, "
                              "cr0, prefix, ...) and a hex value", usage=True)
        value = _parse_hex(items[3])
        if value is None:
            raise words.error(f"bad value '{items[3]}' (expected hex)")
        return {"action": first, "cpu": words.cpu(items[1]), "name": items[2], "value": value}
    if first == "write-memory":
        address = _parse_hex(items[2]) if len(items) == 4 else None
        if address is None or not re.fullmatch(r"(?:[0-9a-fA-F]{2})+", items[3]):
            raise words.error("write-memory needs CPU, a hex real address and hex bytes",
                              usage=True)
        return {"action": first, "cpu": words.cpu(items[1]), "address": address,
                "data": bytes.fromhex(items[3])}
    try:
        host, port = gdbserver.parse_endpoint(items[0])
    except ValueError as error:
        raise words.error(str(error)) from None
    if len(items) > 2 or (len(items) == 2 and items[1].lower() != "wait"):
        raise words.error(f"unexpected '{items[-1]}'", usage=True)
    return {"action": "start", "host": host, "port": port, "wait": len(items) == 2}


def _gdb_server(session: OperatorSession) -> gdbserver.GdbServer | None:
    return getattr(session, "gdb", None)


def _purgatory_note(session: OperatorSession) -> str:
    """Where the loaded crash image's purgatory runs, for gdb's add-symbol-file."""
    lpar = session.lpar
    if lpar is None or not lpar.activated or lpar.kdump.image is None:
        return ""
    base = lpar.kdump.image.segment("purgatory").mem
    return f"; purgatory at {base:#x} (add-symbol-file PURGATORY.elf -o {base:#x})"


def _gdb_wait(session: OperatorSession, server: gdbserver.GdbServer) -> CommandResult:
    if getattr(session, "wake", None) is not None:
        raise CommandError("gdbserver: 'wait' is for headless runs; the console serves gdb "
                           "while it runs")
    advance = session.advance  # type: ignore[attr-defined]
    try:
        server.serve_until_detached(advance)
    except KeyboardInterrupt:  # Ctrl-C while no gdb comes: end the wait with one line
        server.close()
        session.gdb = None  # type: ignore[attr-defined]
        return CommandResult(False, "gdbserver: wait interrupted (Ctrl-C); server stopped")
    return _done(f"gdbserver: the client detached; still listening on {server.endpoint}",
                 {"endpoint": server.endpoint})


def _run_gdbserver(session: OperatorSession, args: Mapping[str, Any]) -> CommandResult:
    action = args["action"]
    if action.startswith("write-"):
        lpar = _lpar(session) if session.lpar is not None and session.lpar.activated else None
        if lpar is None:
            raise CommandError(f"gdbserver: {action}: the LPAR is not activated")
        if lpar.cpu_by_address(args["cpu"]) is None:
            raise CommandError(f"gdbserver: no CPU {args['cpu']}")
        if action == "write-register":
            gdbtarget.write_register(lpar, args["cpu"], args["name"], args["value"])
            return _done(f"gdb set {args['name']} of CPU {args['cpu']} to {args['value']:#x}")
        try:
            gdbtarget.write_memory(lpar, args["cpu"], args["address"], args["data"])
        except StorageError as error:
            raise CommandError(f"gdbserver: write-memory: {error}") from None
        return _done(f"gdb wrote {len(args['data'])} bytes at real {args['address']:#x} "
                     f"(CPU {args['cpu']})")
    if getattr(session, "replaying", False):
        # A replay has no gdb: what gdb did is in the journal as the commands it ran.
        return _done("gdbserver: not started in a replay (gdb's actions replay as commands)")
    server = _gdb_server(session)
    if action == "status":
        if server is None:
            return _done("gdbserver: not running", {"listening": None})
        client = server.client.name if server.attached and server.client else None
        state = f"gdb attached from {client}" if client else "no client attached"
        return _done(f"gdbserver: listening on {server.endpoint}, {state}",
                     {"listening": server.endpoint, "client": client})
    if action == "stop":
        if server is None:
            raise CommandError("gdbserver: not running")
        server.close()
        session.gdb = None  # type: ignore[attr-defined]
        return _done(f"gdbserver: stopped listening on {server.endpoint}")
    if action == "wait":
        if server is None:
            raise CommandError("gdbserver: not running (start it with gdbserver [ADDR:]PORT)")
        return _gdb_wait(session, server)
    if server is not None:
        raise CommandError(f"gdbserver: already listening on {server.endpoint} "
                           "(gdbserver stop first)")
    try:
        server = gdbserver.GdbServer(session, args["host"], args["port"],  # type: ignore[arg-type]
                                   wake=getattr(session, "wake", None))
    except gdbserver.GdbServerError as error:
        raise CommandError(f"gdbserver: {error}") from None
    session.gdb = server  # type: ignore[attr-defined]
    started = _done(f"gdbserver: listening on {server.endpoint} (in gdb-multiarch: set "
                    f"architecture s390:64-bit; target remote {server.endpoint})"
                    + _purgatory_note(session), {"listening": server.endpoint})
    if args["wait"]:
        waited = _gdb_wait(session, server)
        if not waited.ok:
            return waited
        return _done(started.message + "\n" + waited.message, started.data)
    return started


def _run_help(session: OperatorSession, args: Mapping[str, Any]) -> CommandResult:
    return _done(help_text(args["topic"]))


# --------------------------------------------------------------------------------------------
# The table


def _alternatives(words: tuple[str, ...]) -> str:
    return ", ".join(words[:-1]) + f" or {words[-1]}"


_TIMEOUT_HELP = "The timeout is virtual time, 5s unless `timeout=DURATION` ends the line."

_SPECS = (
    CommandSpec(
        "activate", "activate [PROFILE]", "Activate the LPAR with a profile.",
        "PROFILE is a name from assets/profiles/ (default: the session's profile, normally "
        "`default`) or the path of a profile .toml file. Command-line overrides (--cpus, "
        "--memory) apply on top. A deactivated LPAR can be activated again.",
        _parse_activate, _run_activate, needs_lpar=False),
    CommandSpec(
        "deactivate", "deactivate", "Deactivate the LPAR.",
        "Stops every CPU and releases the LPAR's storage.",
        _parse_nothing, _run_deactivate),
    CommandSpec(
        "load", "load DEVNO [clear] [store] [parm=X]", "Load (IPL) from a device.",
        "DEVNO is 1-4 hex digits, optionally written 0x0100 or 0.0.0100. `clear` performs a "
        "clear reset first (storage is cleared), otherwise a normal load. `store` stores the "
        "status of the IPL CPU first (normal load only), as a stand-alone dump requires. "
        "`parm=X` sets the load parameter (1-8 characters).",
        _parse_load, _run_load),
    CommandSpec(
        "stop", "stop [CPU|all]", "Stop one CPU or all of them (default all).",
        "CPU is a decimal CPU address.",
        _parse_cpu_or_all, _run_stop),
    CommandSpec(
        "start", "start [CPU|all]", "Start one CPU or all of them (default all).",
        "CPU is a decimal CPU address.",
        _parse_cpu_or_all, _run_start),
    CommandSpec(
        "restart", "restart [CPU]", "PSW restart on a CPU (default 0).",
        "Performs the restart interruption: the CPU stores the restart old PSW and loads the "
        "restart new PSW from its lowcore.",
        _parse_optional_cpu, _run_restart),
    CommandSpec(
        "reset", "reset normal|clear", "System reset, normal or clear.",
        "`clear` also clears storage.",
        _parse_reset, _run_reset),
    CommandSpec(
        "store", "store [CPU]", "Store status of a stopped CPU (default 0).",
        "Stores the CPU's registers and PSW into the store-status save area.",
        _parse_optional_cpu, _run_store),
    CommandSpec(
        "oscmd", "oscmd [--priority] TEXT...", "Send a command to the operating system.",
        "TEXT is sent as typed (quotes around the whole text are removed). `--priority` marks "
        "it as a priority command.",
        _parse_oscmd, _run_oscmd),
    CommandSpec(
        "fault", "fault hang KIND | panic [TEXT] | corrupt WHAT | unload-kdump | kdump-save-fails",
        "Inject a fault: a hang, a panic, a corrupted byte, kdump unloaded, or kdump failing "
        "after its swap.",
        "`hang spin`: a CPU spins with interrupts off holding a lock; `hang wait`: a disabled "
        "wait; `hang deadlock`: CPUs deadlock on locks; `hang loop`: every CPU loops. "
        "`panic [TEXT]`: the kernel panics with TEXT as its message. "
        "`corrupt purgatory`, `corrupt os_info`, `corrupt segment N|kernel|elfcorehdr|initrd`: "
        "flip one byte, so that a checksum or digest no longer matches. "
        "`unload-kdump`: the kdump kernel is unloaded without the operator seeing it. "
        "`kdump-save-fails`: the next vmcore save finds its target full (No space left on "
        "device), so kdump fails after the swap and runs its failure action (profile "
        "`kdump_failure`: `reboot` by default, `halt`: the disabled wait 0x4B02, `dump`: it "
        "IPLs the stand-alone dumper); a stand-alone dump then holds two systems "
        "(`dumplab inspect --select prod|kdump`).",
        _parse_fault, _run_fault),
    CommandSpec(
        "kdump", "kdump [load|unload|status]",
        "Load or unload the kdump kernel (kexec -p), or show its status, at the OS console.",
        "Sends `kdump ACTION` to the operating system, as typing it into Operating System "
        "Messages would; the kernel answers there.",
        _parse_kdump, _run_kdump),
    CommandSpec(
        "run", "run DURATION", "Let the machine run for a span of virtual time.",
        "DURATION is a number and a unit: ns, us, ms or s (`250us`, `10ms`, `2s`).",
        _parse_run, _run_run),
    CommandSpec(
        "step", "step [back|line] [N] [cpu=C]",
        "Execute N instructions (default 1) on one CPU (default 0), or go back N.",
        f"N is at most {MAX_STEP_COUNT}. `step line` steps to the next C source line (the "
        "PSW in another line of the program's line table). `step back N` puts the machine where it was when "
        "the CPU had executed N fewer instructions: every CPU, storage, devices and the host "
        "as they were at that point (the machine runs again from the nearest checkpoint, "
        "without events). Running on from there repeats exactly what happened the first time.",
        _parse_step, _run_step),
    CommandSpec(
        "reverse-continue", "reverse-continue",
        "Run backwards to the latest earlier point at which a CPU reached a breakpoint.",
        "The machine goes back to where a CPU was last about to execute an instruction at one "
        "of the breakpoints set now (`break`), every CPU, storage, devices and the host as "
        "they were then (the breakpoints stay as they are now); without such a point, to the "
        "beginning of the recorded history (the activation, or the end of a stretch the "
        "machine ran free). It runs the history again from checkpoints, without events, to "
        f"find the point, looking back {REVERSE_SEARCH_NS // 1_000_000} ms of virtual time at "
        "most; when the history goes back further and no CPU reached a breakpoint in that "
        "time, the machine stays where it is and says so. gdb's `reverse-continue` does "
        "this.",
        _parse_nothing, _run_reverse_continue),
    CommandSpec(
        "finish", "finish [cpu=C]", "Run one CPU (default 0) until its function returns.",
        "The return address and the caller's frame come from the program's DWARF call frame "
        "information; the CPU runs alone, in steps, until it is back in the caller (at most "
        f"{MAX_FINISH_INSTRUCTIONS} instructions).",
        _parse_finish, _run_finish),
    CommandSpec(
        "checkpoint", "checkpoint save NAME | list | restore NAME",
        "Save the whole machine under a name, list the checkpoints, or go back to one.",
        "A checkpoint holds storage, devices, every CPU, the clock and the host's state "
        "(kdump, dumper, breakpoints, incidents, the dump files). A checkpoint is also taken "
        "automatically when each workflow stage begins; `list` shows them with the stage "
        "names. `restore NAME` makes the machine exactly what it was: running on gives the "
        "same events, storage and dump files as the first time. Dump files written after the "
        "checkpoint move to `rewound/` in the work directory. Saving a name again replaces it.",
        _parse_checkpoint, _run_checkpoint),
    CommandSpec(
        "rewind", "rewind STAGE",
        "Put the machine back to where a workflow stage (its latest run) began.",
        "STAGE is a stage name of the timeline (`purgatory-verify`, `notes`, `swap`, "
        "`kdump-boot`, `vmcore`, `dumper`, `checks`, `full-dump`, `ipl`, ...). The machine "
        "is as it was just after the instruction that announced the stage.",
        _parse_rewind, _run_rewind),
    CommandSpec(
        "stage-stop", "stage-stop [on|off|STAGE,...]",
        "Hold the machine when a workflow stage begins (show the setting without argument).",
        "`on` holds at each stage of the dump workflow (" + ", ".join(WORKFLOW_STAGES) + "); "
        "`off` never; or a comma-separated list of stages. A run or wait-for ends after the "
        "slice in which the stage began and a `stage_stop` event tells the console, which "
        "shows the stage's card. Running on continues exactly as without the stop. Off by "
        "default in `dumplab run`; on in the console.",
        _parse_stage_stop, _run_stage_stop, needs_lpar=False),
    CommandSpec(
        "incident", "incident [list] | incident show N",
        "List the incidents (each activate, and each IPL after a dump), or show one.",
        "An incident runs from an activation or IPL until after its dump: a fallback "
        "stand-alone dump after a failed kdump, or the system re-IPLed after its dump, "
        "begins a new one. `show N` lists its programs, stages with their outcome and dumps.",
        _parse_incident, _run_incident),
    CommandSpec(
        "break", "break [ADDR|SYMBOL] | break clear ADDR|SYMBOL|all",
        "Stop a CPU when it reaches an instruction address; list or clear breakpoints.",
        "ADDR is hex (`0x11140` or `11140`); SYMBOL is a function of the loaded program "
        "(`spin_lock`), of another built program (`dumper:main`), or of the purgatory of the "
        "loaded kdump kernel, where kexec put it (`purgatory:purgatory`). The CPU that "
        "reaches the address stops in front of the instruction (a `breakpoint` event); "
        "`start` or `step` executes it and goes on. `break` alone lists the breakpoints.",
        _parse_break, _run_break),
    CommandSpec(
        "regs", "regs [CPU]", "Show the registers of a CPU (default 0).",
        "PSW, prefix, FPC, CPU timer, clock comparator, general, control, access and "
        "floating-point registers.",
        _parse_regs, _run_regs),
    CommandSpec(
        "r", "r ADDR[.LEN]", "Display absolute storage.",
        f"ADDR and LEN are hex; LEN defaults to {DEFAULT_READ_LENGTH:#x} and is at most "
        f"{MAX_READ_LENGTH:#x}. Example: `r 10000.100`.",
        _parse_read, _run_read),
    CommandSpec(
        "u", "u [/s] ADDR|SYMBOL [N]", "Disassemble N instructions (default "
        f"{DEFAULT_UNASSEMBLE_COUNT}) from absolute storage.",
        "ADDR is hex; SYMBOL as for `break` (`spin_lock`, `dumper:main`, "
        "`purgatory:purgatory_main`). Each line gives the address, the instruction bytes and "
        f"the instruction; a function's name stands before its first instruction. N is at most "
        f"{MAX_UNASSEMBLE_COUNT}. `/s` interleaves the C source: each new source line "
        "(file:line and its text, from the program's DWARF line table) before its first "
        "instruction.",
        _parse_unassemble, _run_unassemble),
    CommandSpec(
        "status", "status", "Show the LPAR status and every CPU's state and PSW.", "",
        _parse_nothing, _run_status, needs_lpar=False),
    CommandSpec(
        "wait-for",
        "wait-for console TEXT|stage NAME|event KIND|wait [CPU]|stopped [since=last|now] "
        "[timeout=DURATION]",
        "Run until something happens (for scripts).",
        "`console TEXT`: a message from the operating system containing TEXT (echoes of "
        "`oscmd` commands do not count); `stage NAME`: the workflow stage "
        "NAME is done; `event KIND`: any event of that kind; `wait [CPU]`: a CPU (any, or the "
        "given one) enters a disabled wait; `stopped`: no CPU can run any more (each one is "
        "stopped, in disabled wait or check-stopped). An event that "
        "already happened since the previous wait-for counts, as in `expect`, in the console "
        "too, where the machine runs between commands: a wait-for typed after its event "
        "returns at once (`since=last`, the default). `since=now` counts only what happens "
        "from now on. "
        + _TIMEOUT_HELP + " A timeout fails the command.",
        _parse_wait_for, _run_wait_for),
    CommandSpec(
        "gdbserver", GDBSERVER_USAGE,
        "Let gdb-multiarch attach to the LPAR (GDB remote protocol); stop it; show it.",
        "`gdbserver [ADDR:]PORT` listens on ADDR (default 127.0.0.1: only this host) for one "
        "gdb client at a time; starting and stopping it does not disturb the LPAR. An "
        "attaching gdb stops every CPU (all-stop); `detach` starts again the CPUs gdb stopped. "
        "Each CPU is a gdb thread; memory is real storage as the selected CPU sees it. `wait` "
        "(headless `dumplab run` only) serves gdb until the client detaches. `gdbserver stop` "
        "closes it, `gdbserver` alone shows it. What gdb changes is journalled as commands: "
        "`step`, `start`, `stop`, `break`, and `gdbserver write-register CPU NAME HEX` / "
        "`gdbserver write-memory CPU ADDR HEX` for what gdb writes. See docs/GDB.md.",
        _parse_gdbserver, _run_gdbserver, needs_lpar=False),
    CommandSpec(
        "help", "help [COMMAND]", "List the commands, or describe one.", "",
        _parse_help, _run_help, needs_lpar=False),
)

COMMANDS: dict[str, CommandSpec] = {spec.name: spec for spec in _SPECS}


def _unknown(word: str) -> str:
    close = difflib.get_close_matches(word.lower(), COMMANDS, n=1)
    hint = f"did you mean '{close[0]}'?" if close else "type 'help' for the list"
    return f"unknown command '{word}' ({hint})"


def help_text(topic: str | None = None) -> str:
    """The command list, or the usage and description of one command."""
    if topic is None:
        width = max(len(spec.usage) for spec in _SPECS if len(spec.usage) < 40)
        rows = [f"{spec.usage:<{width}}  {spec.summary}" if len(spec.usage) <= width
                else f"{spec.usage}\n{'':<{width}}  {spec.summary}" for spec in _SPECS]
        return "\n".join(["Commands (help COMMAND for details):", *rows])
    spec = COMMANDS[topic]
    parts = (f"usage: {spec.usage}", spec.summary, textwrap.fill(spec.help, HELP_WIDTH))
    return "\n".join(part for part in parts if part)


def reference_markdown() -> str:
    """The command reference section of docs/COMMANDS.md, generated from the table."""
    sections = []
    for spec in _SPECS:
        body = "\n\n".join(part for part in (spec.summary, spec.help) if part)
        sections.append(f"### `{spec.name}`\n\n```\n{spec.usage}\n```\n\n{body}\n")
    return "\n".join(sections)


# --------------------------------------------------------------------------------------------
# The entry points


def is_blank(line: str) -> bool:
    """True for lines a script skips: empty, white space, or a `#` comment."""
    text = line.strip()
    return not text or text.startswith("#")


def parse(line: str) -> Command:
    """Read one command line; raise CommandError (one line) if it is not a valid command."""
    text = line.strip()
    if is_blank(text):
        raise CommandError("empty command")
    word, _, rest = text.partition(" ")
    spec = COMMANDS.get(word.lower())
    if spec is None:
        raise CommandError(_unknown(word))
    return Command(spec.name, spec.parse(_Words(spec, rest)), text)


def execute(session: OperatorSession, command: Command) -> CommandResult:
    """Run a parsed command; refusals come back as ok=False with a one-line message."""
    spec = COMMANDS[command.name]
    if spec.needs_lpar and session.lpar is None:
        return CommandResult(False, f"{command.name}: the LPAR is not activated "
                                    "(use 'activate' first)")
    try:
        return spec.run(session, command.args)
    except (HmcError, FaultError, ProfileError, CommandError, CheckpointError) as refusal:
        return CommandResult(False, _one_line(refusal))


def _one_line(error: Exception) -> str:
    text = " ".join(str(error).split())
    return text or type(error).__name__
