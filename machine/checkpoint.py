"""Checkpoints, rewind and reverse step: the machine as it was at an earlier point, exactly.

A checkpoint holds everything the LPAR is: storage, the device images, every CPU's unicorn
context and the state unicorn does not model, the clock, and the host's state (the loaded
program and its emulated instructions, kdump and dumper hosts, breakpoints, queued OS commands,
incidents, the stage history, the files in `dumps/`).

Storage is kept as differences. A shadow copy holds storage as it was at the checkpoint the
machine last saved or restored; pages that differ from it (found with memcmp, 1 MiB then 4 KiB
at a time: tens of milliseconds for 256 MiB) go into the next checkpoint, and only those. The
checkpoints form a tree (a restore starts a new branch); a page's content at a checkpoint is
the nearest delta up its ancestors that holds the page, else zero. Device blocks work the same
way, except that the device tells us which blocks it is about to write.

Points between checkpoints are reached by running again: the machine is deterministic, so from
the nearest earlier checkpoint the same rounds (each `_round(limit)` and `step` since the
checkpoint is logged; state-changing commands are preceded by a checkpoint, so a log holds
nothing else) give the same states. A replay publishes no events (they were published the
first time) and stops at an exact point: just after the handler that published a given event
(`rewind STAGE`), or when a CPU has executed a given number of instructions (`step back`).
Such a point can lie inside a round; running on from it first finishes that round exactly as
the first time (run again from the checkpoint, publishing only the events not seen yet), so
everything that follows is identical too.
"""

from __future__ import annotations

import copy
import ctypes
import itertools
import mmap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from unicorn import UC_HOOK_CODE

from machine.devices import BLOCK_SIZE, Device
from machine.engine import context_address, flush_tlb
from machine.events import CheckpointEvent, RewindEvent, StageStopEvent
from machine.icount import counter_offset
from machine.incidents import Incidents

if TYPE_CHECKING:
    from machine.cpu import Cpu
    from machine.events import Event
    from machine.lpar import Lpar

PAGE = 4096
CHUNK = 1 << 20
_ZERO_PAGE = bytes(PAGE)
_ZERO_BLOCK = bytes(BLOCK_SIZE)
# Internal checkpoints (periodic ones) kept before the oldest is merged into its successor.
MAX_PERIODIC = 12
# A periodic checkpoint when the machine ran this much host time since the last one, and at least
# PERIODIC_COST_FACTOR times what the last checkpoint cost: replays stay short, and the guest
# spends at most ~1/PERIODIC_COST_FACTOR of its time on checkpoints.
PERIODIC_SECONDS = 0.25
PERIODIC_COST_FACTOR = 10
REWOUND_DIR = "rewound"
# How far back in virtual time one reverse-continue looks for a breakpoint hit: what it runs
# again is bounded by this (and one stretch between checkpoints), seconds of host time at
# most. A window of virtual time, not of checkpoints, so the answer does not depend on where
# the (host-timed) periodic checkpoints fell: a journal replays it the same.
REVERSE_SEARCH_NS = 200_000_000

_libc = ctypes.CDLL(None)
_libc.memcmp.restype = ctypes.c_int
_libc.memcmp.argtypes = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)


class CheckpointError(ValueError):
    """A checkpoint operation that cannot be carried out; the message says why in one line."""


# ------------------------------------------------------------------------------------------
# storage and devices as differences


class StorageHistory:
    """Which pages of storage changed since the last checkpoint, against a shadow copy."""

    def __init__(self, storage) -> None:
        self.storage = storage
        self.size = storage.size
        self._shadow = mmap.mmap(-1, storage.size, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        self._anchor = ctypes.c_char.from_buffer(self._shadow)
        self._shadow_address = ctypes.addressof(self._anchor)
        self._shadow_view = memoryview(self._shadow)

    def changed_pages(self) -> list[int]:
        live, shadow = self.storage.address, self._shadow_address
        changed = []
        for chunk in range(0, self.size, CHUNK):
            if not _libc.memcmp(live + chunk, shadow + chunk, CHUNK):
                continue
            for offset in range(chunk, chunk + CHUNK, PAGE):
                if _libc.memcmp(live + offset, shadow + offset, PAGE):
                    changed.append(offset // PAGE)
        return changed

    def take(self) -> dict[int, bytes | None]:
        """The changed pages (None for a page of zeros), now also in the shadow."""
        delta: dict[int, bytes | None] = {}
        view = self.storage.view
        for page in self.changed_pages():
            at = page * PAGE
            data = bytes(view[at:at + PAGE])
            self._shadow_view[at:at + PAGE] = data
            delta[page] = None if data == _ZERO_PAGE else data
        return delta

    def put(self, page: int, data: bytes | None) -> None:
        at = page * PAGE
        data = data or _ZERO_PAGE
        self.storage.view[at:at + PAGE] = data
        self._shadow_view[at:at + PAGE] = data

    def close(self) -> None:
        del self._anchor
        self._shadow_view.release()
        self._shadow.close()


class DeviceHistory:
    """Blocks of one device written since the last checkpoint, and what they first held."""

    def __init__(self, device: Device) -> None:
        self.device = device
        self.dirty: set[int] = set()
        self.original: dict[int, bytes | None] = {}  # before the first write we saw
        device.before_write = self._before_write

    def _before_write(self, block: int, count: int) -> None:
        # Only the image's data is read (holes are zeros): a full dump onto an empty device
        # costs no reading here.
        fresh = [b for b in range(block, block + count) if b not in self.original]
        if fresh:
            first, last = fresh[0], fresh[-1]
            held = self.device.data_blocks(first, last - first + 1)
            self.original.update({b: held.get(b) for b in fresh})
        self.dirty.update(range(block, block + count))

    def take(self) -> dict[int, bytes | None]:
        delta: dict[int, bytes | None] = {}
        for first, count in _runs(sorted(self.dirty)):
            delta.update(dict.fromkeys(range(first, first + count)))
            delta.update(self.device.data_blocks(first, count))
        self.dirty.clear()
        return delta

    def put(self, block: int, data: bytes | None) -> None:
        self.device.write_raw(block, data or _ZERO_BLOCK)

    def close(self) -> None:
        self.device.before_write = None


def _runs(blocks: list[int]) -> list[tuple[int, int]]:
    """Sorted block numbers as (first, count) runs."""
    runs: list[tuple[int, int]] = []
    for block in blocks:
        if runs and runs[-1][0] + runs[-1][1] == block:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((block, 1))
    return runs


# ------------------------------------------------------------------------------------------
# what a checkpoint holds besides storage and devices


@dataclass(frozen=True)
class CpuRecord:
    context: bytes
    state: Any
    clock_comparator: int
    cpu_timer: int
    tod_programmable: int
    wait_code: int | None
    pending: Any
    check_stop_reason: str
    stopped_at_breakpoint: int | None
    instructions: int


def _save_cpu(cpu: Cpu) -> CpuRecord:
    context = ctypes.string_at(context_address(cpu.ctx), cpu.ctx._size)
    return CpuRecord(context, cpu.state, cpu.clock_comparator, cpu.cpu_timer,
                     cpu.tod_programmable, cpu.wait_code, copy.deepcopy(cpu.pending),
                     cpu.check_stop_reason, cpu.stopped_at_breakpoint, cpu.instructions)


def _restore_cpu(cpu: Cpu, record: CpuRecord) -> None:
    ctypes.memmove(context_address(cpu.ctx), record.context, len(record.context))
    cpu.state = record.state
    cpu.clock_comparator = record.clock_comparator
    cpu.cpu_timer = record.cpu_timer
    cpu.tod_programmable = record.tod_programmable
    cpu.wait_code = record.wait_code
    cpu.pending = copy.deepcopy(record.pending)
    cpu.check_stop_reason = record.check_stop_reason
    cpu.stopped_at_breakpoint = record.stopped_at_breakpoint
    cpu.instructions = record.instructions


# The LPAR's own attributes a checkpoint keeps (copied deeply: sets, dicts, deques).
_LPAR_FIELDS = ("program", "ipl_devno", "_program_exits", "_kexec_exits", "_os_commands",
                "_service_signal", "_last_program_check", "_looping", "_console_partial",
                "events_published")


def _save_host(lpar: Lpar) -> dict[str, Any]:
    host = {name: copy.copy(getattr(lpar, name)) for name in _LPAR_FIELDS}
    host["clock"] = (lpar.clock.now, lpar.clock._last_tod)
    host["breakpoints"] = dict(lpar.breakpoints._by_address)
    host["kdump"] = (lpar.kdump.image, lpar.kdump.vmcores, lpar.kdump.fail_next_save)
    host["dumps"] = lpar.dumper.dumps
    host["ipib"] = lpar.ipl_control.ipib
    return host


def _restore_host(lpar: Lpar, host: dict[str, Any]) -> None:
    for name in _LPAR_FIELDS:
        setattr(lpar, name, copy.copy(host[name]))
    lpar.clock.now, lpar.clock._last_tod = host["clock"]
    lpar.breakpoints._by_address = dict(host["breakpoints"])
    lpar.kdump.image, lpar.kdump.vmcores, lpar.kdump.fail_next_save = host["kdump"]
    lpar.dumper.dumps = host["dumps"]
    lpar.ipl_control.ipib = host["ipib"]


@dataclass(frozen=True)
class StageStart:
    """A workflow stage began: its name, the index of the event that said so, the time."""

    stage: str
    event: int
    t: int


@dataclass(eq=False)
class Checkpoint:
    id: int
    name: str
    kind: str  # user | stage | periodic | barrier | activation
    parent: Checkpoint | None
    pages: dict[int, bytes | None]
    blocks: dict[int, dict[int, bytes | None]]
    cpus: tuple[CpuRecord, ...]
    host: dict[str, Any]
    teaching: dict[str, Any]
    files: frozenset[str]
    ops: list[list[Any]]  # what ran from the parent to here
    held: bool  # taken inside a round: running on finishes the round first
    seconds: float = 0.0

    @property
    def t(self) -> int:
        return self.host["clock"][0]

    @property
    def events(self) -> int:
        return self.host["events_published"]

    def count(self, position: int) -> int:
        """Instructions the CPU at this position of `lpar.cpus` had executed."""
        return self.cpus[position].instructions

    @property
    def delta_bytes(self) -> int:
        stored = itertools.chain(self.pages.values(),
                                 *(blocks.values() for blocks in self.blocks.values()))
        return sum(len(data) for data in stored if data)

    def ancestors(self) -> list[Checkpoint]:
        """This checkpoint and its ancestors, nearest first."""
        chain, node = [], self
        while node is not None:
            chain.append(node)
            node = node.parent
        return chain


# ------------------------------------------------------------------------------------------
# exact stops


@dataclass
class StopAfterEvent:
    """Stop once the event with this index has been published."""

    event: int

    def reached(self, lpar: Lpar) -> bool:
        return lpar.events_published > self.event

    def cap(self, cpu: Cpu, budget: int) -> int:
        return budget


@dataclass
class StopAtCount:
    """Stop when one CPU has executed this many instructions."""

    cpu: int
    count: int

    def reached(self, lpar: Lpar) -> bool:
        return lpar.cpu_by_address(self.cpu).instructions >= self.count

    def cap(self, cpu: Cpu, budget: int) -> int:
        if cpu.address != self.cpu:
            return budget
        return max(0, min(budget, self.count - cpu.instructions))


@dataclass
class StopAtHit:
    """Stop where one CPU is about to execute its instruction number `count`, as the CPU
    itself saw it: when it runs (it is the current CPU, interruptions delivered), not at the
    end of an earlier slice that left it at that count (other CPUs ran in between, and an
    interruption may have moved its PSW since)."""

    cpu: int
    count: int

    def reached(self, lpar: Lpar) -> bool:
        current = lpar.current
        return (current is not None and current.address == self.cpu
                and current.instructions >= self.count)

    def cap(self, cpu: Cpu, budget: int) -> int:
        if cpu.address != self.cpu:
            return budget
        return max(0, min(budget, self.count - cpu.instructions))


# ------------------------------------------------------------------------------------------
# breakpoint hits in the history (reverse continue)


@dataclass(frozen=True)
class BreakpointHit:
    """A CPU reached a breakpoint address: it had executed `count` instructions and was about
    to execute the one at `address`."""

    cpu: int
    count: int
    address: int


@dataclass(frozen=True)
class ReverseSearch:
    """What reverse_continue found: the latest hit, or none since virtual time `since`;
    `complete` when that is the beginning of the history (else the machine stayed where it
    was: the search window, `Checkpoints.reverse_search_ns`, ends before the history does)."""

    hit: BreakpointHit | None
    since: int
    complete: bool


class _HitWatch:
    """While a replay runs: every time a CPU is about to execute an instruction at one of the
    addresses, keep it if it lies before `present` (the CPU's count then is below its count
    now); the last one kept is the latest hit before the present.

    A range-limited code hook per address sees instructions unicorn executes (it costs
    nothing elsewhere); its instruction number is the CPU's count at the slice's start plus
    unicorn's counter, which already counts the hooked instruction. An address that is an
    exit (an emulated instruction, the operator's breakpoint) never reaches the hook: the
    LPAR handles it in Python, so the LPAR's handler of emulated instructions is watched too
    (a stopped-at breakpoint reaches the hook when its CPU goes on)."""

    def __init__(self, lpar: Lpar, addresses: frozenset[int], present: dict[int, int],
                 since: int) -> None:
        self.lpar = lpar
        self.addresses = addresses
        self.present = present
        self.since = since
        self.latest: BreakpointHit | None = None
        self._counter = lpar.uc._uch.value + counter_offset()
        self._hooks: list[int] = []

    def __enter__(self) -> Self:
        uc = self.lpar.uc
        for address in sorted(self.addresses):
            self._hooks.append(uc.hook_add(UC_HOOK_CODE, self._on_code, begin=address,
                                           end=address))
        system, handle = self.lpar.system, self.lpar.system.handle

        def watched_handle(uc_, cpu, pc):
            if pc in self.addresses:
                self._note(cpu, cpu.instructions, pc)
            return handle(uc_, cpu, pc)

        system.handle = watched_handle  # an instance attribute: __exit__ uncovers the method
        # Hooks are compiled into translated code: translate again with them.
        self.lpar.flush_code()
        return self

    def __exit__(self, *_exc) -> None:
        uc = self.lpar.uc
        for handle in self._hooks:
            uc.hook_del(handle)
        self._hooks.clear()
        self.lpar.system.__dict__.pop("handle", None)
        self.lpar.flush_code()

    def _on_code(self, _uc, address: int, _size: int, _data) -> None:
        cpu = self.lpar.current
        if cpu is None:
            return
        executed = ctypes.c_uint64.from_address(self._counter).value - 1
        self._note(cpu, cpu.instructions + executed, address)

    def _note(self, cpu: Cpu, count: int, address: int) -> None:
        if 0 <= count < self.present[cpu.address] and self.lpar.clock.now >= self.since:
            self.latest = BreakpointHit(cpu.address, count, address)


# ------------------------------------------------------------------------------------------
# the manager


@dataclass
class _Live:
    """The live line: the checkpoint it started from and what ran since."""

    base: Checkpoint
    ops: list[list[Any]] = field(default_factory=list)
    held: bool = False  # inside a round (after an exact stop)
    replayable: bool = True


class Checkpoints:
    """Checkpoints of one LPAR, its stage history and stage stops, and the incidents."""

    def __init__(self, lpar: Lpar) -> None:
        self.lpar = lpar
        self.storage = StorageHistory(lpar.storage)
        self.devices = {devno: DeviceHistory(device) for devno, device in lpar.devices.items()}
        self.stage_starts: list[StageStart] = []
        self.open_stages: set[str] = set()
        self.incidents = Incidents(lpar)
        self.stage_stops: frozenset[str] = frozenset()
        self.automatic = True
        self.reverse_search_ns = REVERSE_SEARCH_NS
        self._ids = itertools.count(1)
        self.nodes: list[Checkpoint] = []
        self._stage_pending: str | None = None
        self._stops: list[str] = []  # stage stops reached in this round
        self._replaying = False
        # A command changed the machine since the last barrier: the next run starts a new
        # stretch (a replay repeats rounds, not commands).
        self._after_command = False
        self._last_cost = 0.0
        # Host time spent in rounds since the last checkpoint: what a replay from it costs.
        self._round_started = 0.0
        self._run_seconds = 0.0
        # Storage is all zeros at activation, as the shadow is: nothing to compare yet.
        self._fresh = True
        root = self._take("activation", "activation", held=False, ops=[])
        self.shadow_of = root
        self.live = _Live(root)

    def close(self) -> None:
        self.storage.close()
        for history in self.devices.values():
            history.close()
        self.nodes.clear()

    # -- observing the machine ---------------------------------------------------------------
    def observe(self, event: Event, index: int) -> None:
        """Every event the LPAR publishes (muted ones too), with its index."""
        self.incidents.observe(event)
        if event.kind != "stage":
            return
        stage, status = event.stage, event.status
        if status == "running":
            if stage in self.open_stages:
                return
            self.open_stages.add(stage)
        elif stage in self.open_stages:
            self.open_stages.discard(stage)
            return
        self.stage_starts.append(StageStart(stage, index, event.t))
        self._stage_pending = stage
        if not self._replaying and stage in self.stage_stops:
            self._stops.append(stage)
            self.lpar.hold(stage)

    def _teaching(self) -> dict[str, Any]:
        return {"stage_starts": list(self.stage_starts), "open_stages": set(self.open_stages),
                "incidents": self.incidents.save()}

    def _restore_teaching(self, saved: dict[str, Any]) -> None:
        self.stage_starts = list(saved["stage_starts"])
        self.open_stages = set(saved["open_stages"])
        self.incidents.restore(saved["incidents"])

    # -- the log of what ran ---------------------------------------------------------------------
    def before_running(self) -> None:
        """A run or wait-for begins: finish a round left half done by an exact stop."""
        if self.live.held:
            self._finish_round()

    def _settle(self) -> None:
        """After a command changed the machine: a checkpoint of the result, so that no
        stretch of the log starts before a command and ends after it."""
        if self._after_command and not self._replaying:
            self._after_command = False
            self._save_live("barrier", "barrier")

    def before_round(self, limit: int) -> None:
        self._round_started = time.perf_counter()
        self._settle()
        ops = self.live.ops
        if ops and ops[-1][0] == "rounds" and ops[-1][1] == limit:
            ops[-1][2] += 1
        else:
            ops.append(["rounds", limit, 1])

    def after_round(self, unrepeatable: bool) -> None:
        self._run_seconds += time.perf_counter() - self._round_started
        if unrepeatable:
            # Cut by the host (an interrupt, free running): no replay can repeat this
            # stretch; checkpoints still can be restored.
            self.live.replayable = False
        self._stable_point()

    def before_step(self, cpu: int, count: int) -> None:
        # Stepping from inside a round: the rest of that round is dropped (the CPU goes on
        # alone), so the log restarts here.
        if self.live.held:
            self.barrier()
        self._settle()
        self.live.ops.append(["step", cpu, count])

    def after_step(self) -> None:
        self._stable_point()

    def _stable_point(self) -> None:
        """Between rounds: take the checkpoints that are due."""
        if self._replaying:
            return
        stage, self._stage_pending = self._stage_pending, None
        if stage is not None and self.automatic:
            self._save_live(stage, "stage")
        elif self.automatic and self._periodic_due():
            self._save_live("periodic", "periodic")
        stops, self._stops = self._stops, []
        for stopped in stops:
            self.lpar.publish_aside(StageStopEvent(t=self.lpar.clock.now, cpu=None, stage=stopped))

    def _periodic_due(self) -> bool:
        # Counted in host time spent running, not wall time: an idle LPAR that the console
        # advances once a second (a replay of it costs next to nothing) needs no checkpoint
        # of its whole storage every second.
        return self._run_seconds >= max(PERIODIC_SECONDS, PERIODIC_COST_FACTOR * self._last_cost)

    def barrier(self) -> None:
        """Before a command that changes the machine: the log of rounds ends here."""
        if self._replaying:
            return
        live = self.live
        self._after_command = True
        if not live.ops and not live.held and live.replayable:
            return  # nothing ran since the base: it is this state already
        self._save_live("barrier", "barrier")

    # -- taking and restoring -------------------------------------------------------------------
    def _take(self, name: str, kind: str, *, held: bool, ops: list[list[Any]],
              parent: Checkpoint | None = None) -> Checkpoint:
        started = time.perf_counter()
        lpar = self.lpar
        node = Checkpoint(
            id=next(self._ids), name=name, kind=kind, parent=parent,
            pages={} if self._fresh else self.storage.take(),
            blocks={devno: history.take() for devno, history in self.devices.items()},
            cpus=tuple(_save_cpu(cpu) for cpu in lpar.cpus), host=_save_host(lpar),
            teaching=self._teaching(), files=self._dump_files(), ops=ops, held=held)
        node.seconds = time.perf_counter() - started
        self._fresh = False
        self.shadow_of = node
        self._last_cost = node.seconds
        self._run_seconds = 0.0
        self.nodes.append(node)
        return node

    def _save_live(self, name: str, kind: str, *, keep_line: bool = False) -> Checkpoint:
        """A checkpoint of the machine as it is. Inside a round (after an exact stop) it
        is `held`: restoring it and running on finishes the round by a replay from its
        parent. keep_line: the live line stays as it is (a user's checkpoint inside a round)."""
        live = self.live
        ops = [list(op) for op in live.ops] if live.replayable else [["unrepeatable"]]
        node = self._take(name, kind, held=live.held, ops=ops, parent=live.base)
        if not (keep_line and live.held):
            self.live = _Live(node)
        self._prune()
        return node

    def save(self, name: str) -> Checkpoint:
        """`checkpoint save NAME`."""
        self._settle()
        if any(n.name == name and n.kind == "user" for n in self.nodes):
            self.nodes = [n for n in self.nodes if not (n.name == name and n.kind == "user")]
        node = self._save_live(name, "user", keep_line=True)
        self.lpar.publish_aside(CheckpointEvent(t=node.t, cpu=None, name=name,
                                                action="saved", events=node.events))
        return node

    def listed(self) -> list[Checkpoint]:
        """The checkpoints an operator can name: their own and the stage ones."""
        return [n for n in self.nodes if n.kind in ("user", "stage", "activation")]

    def find(self, name: str) -> Checkpoint:
        for node in reversed(self.nodes):
            if node.kind == "user" and node.name == name:
                return node
        raise CheckpointError(f"no checkpoint named '{name}' (checkpoint list shows them)")

    def restore(self, node: Checkpoint, reason: str) -> None:
        """Make the machine exactly what it was at node, and tell the consumers."""
        self._restore_node(node)
        if node.held:
            # A point inside a round: it was reached by running from the parent.
            self.live = _Live(node.parent, [list(op) for op in node.ops], held=True)
        self.lpar.publish_aside(RewindEvent(t=node.t, cpu=None, to=reason, events=node.events))

    def _restore_node(self, node: Checkpoint) -> None:
        self._settle()
        self._after_command = False
        lpar = self.lpar
        base = self.shadow_of  # storage differs from the shadow, which holds this checkpoint
        path = set(map(id, node.ancestors()))
        common = next(a for a in base.ancestors() if id(a) in path)
        moved = list(itertools.takewhile(lambda a: a is not common, base.ancestors()))
        moved += itertools.takewhile(lambda a: a is not common, node.ancestors())
        pages = set(self.storage.changed_pages())
        for other in moved:
            pages.update(other.pages)
        chain = node.ancestors()
        for page in pages:
            self.storage.put(page, _content(chain, page, lambda n: n.pages))
        for devno, history in self.devices.items():
            blocks = set(history.dirty)
            for other in moved:
                blocks.update(other.blocks.get(devno, {}))
            for block in blocks:
                data = _content(chain, block, lambda n, d=devno: n.blocks.get(d, {}),
                                default=history.original.get(block))
                history.put(block, data)
            history.dirty.clear()
        for cpu, record in zip(lpar.cpus, node.cpus, strict=True):
            _restore_cpu(cpu, record)
        _restore_host(lpar, node.host)
        self._restore_teaching(node.teaching)
        self._restore_files(node.files)
        lpar._set_exits()  # also forgets every translated block: storage changed under it
        flush_tlb(lpar.uc)
        lpar._aborted = False
        lpar._hold = None
        self.shadow_of = node
        self.live = _Live(node)

    # -- going back ------------------------------------------------------------------------------
    def rewind_to_stage(self, stage: str) -> StageStart:
        """`rewind STAGE`: the machine just after it announced the stage's latest start."""
        starts = [s for s in self.stage_starts if s.stage == stage]
        if not starts:
            known = ", ".join(dict.fromkeys(s.stage for s in self.stage_starts)) or "none yet"
            raise CheckpointError(f"no stage '{stage}' has begun in this machine's history "
                                  f"(stages so far: {known})")
        start = starts[-1]
        self._go_back(lambda node: node.events <= start.event, StopAfterEvent(start.event))
        self.lpar.publish_aside(RewindEvent(t=self.lpar.clock.now, cpu=None, to=f"stage {stage}",
                                            events=self.lpar.events_published))
        return start

    def step_back(self, cpu: int, count: int) -> int:
        """`step back N cpu=C`: the machine when CPU C had executed N fewer instructions."""
        # CPU addresses may have gaps (profile cpu_addresses): checkpoints keep CPUs by position.
        position = next(i for i, c in enumerate(self.lpar.cpus) if c.address == cpu)
        now = self.lpar.cpus[position].instructions
        target = now - count
        if now < 0:
            raise CheckpointError("cannot step back: the machine ran free (not reproducible) "
                                  "since it was last stopped; step back works at the "
                                  "deterministic speeds")
        if target < 0:
            raise CheckpointError(f"cannot step back {count}: CPU {cpu} has executed only "
                                  f"{now} instructions since activation")
        self._go_back(lambda node: 0 <= node.count(position) <= target,
                      StopAtCount(cpu, target))
        self.lpar.publish_aside(RewindEvent(t=self.lpar.clock.now, cpu=cpu,
                                            to=f"step back {count}",
                                            events=self.lpar.events_published))
        return target

    def reverse_continue(self, addresses: frozenset[int]) -> ReverseSearch:
        """`reverse-continue`: the machine at the latest earlier point where a CPU reached
        one of the addresses (it is about to execute that instruction), within the last
        `reverse_search_ns` of virtual time. Without a hit: the beginning of the history if it
        lies in that window, else the machine stays where it is.

        The stretches of the live line are run again, latest first, with the addresses
        watched; the first stretch with a hit holds the latest one, and a second run of that
        stretch stops exactly there. The cost is the replay of the stretches between the hit
        (or the window's start) and now, and never more than the history kept: back to the
        activation, or to the end of a stretch cut short by the host (free running, an
        interrupted command)."""
        self._settle()
        lpar = self.lpar
        present = {cpu.address: cpu.instructions for cpu in lpar.cpus}
        if any(count < 0 for count in present.values()):
            raise CheckpointError("cannot continue back: the machine ran free (not "
                                  "reproducible) since it was last stopped; reverse execution "
                                  "works at the deterministic speeds")
        since = max(0, lpar.clock.now - self.reverse_search_ns) if addresses else 0
        line = self._repeatable_line()
        if not line:
            return ReverseSearch(None, lpar.clock.now, True)  # the history begins now
        complete = line[-1][0].t >= since
        here = None if complete else self._save_live("reverse-continue", "barrier")
        end = [cpu.instructions for cpu in lpar.cpus]  # the counts where a stretch ends
        for node, ops in self._repeatable_line():
            # A stretch in which no CPU executed anything (between two commands) holds no
            # hit: skip its replay, and the restore (a compare of all storage) before it.
            ran = any(last > node.count(p) for p, last in enumerate(end))
            hit = self._scan(node, ops, addresses, present, since) if addresses and ran else None
            if hit is not None:
                self._go_to_hit(node, ops, hit)
                return ReverseSearch(hit, since, complete)
            if node.t <= since and not complete:
                break
            end = [node.count(p) for p in range(len(end))]
        if complete:
            self._enter(line[-1][0])
            where = "beginning of history"
        else:
            self._enter(here)
            where = "end of the reverse search"
        lpar.publish_aside(RewindEvent(t=lpar.clock.now, cpu=None, to=where,
                                       events=lpar.events_published))
        return ReverseSearch(None, since, complete)

    def _repeatable_line(self) -> list[tuple[Checkpoint, list[list[Any]]]]:
        """The live line back to its activation or to a stretch no replay can repeat."""
        return list(itertools.takewhile(lambda entry: entry[1][:1] != [["unrepeatable"]],
                                        self._live_line()))

    def _go_to_hit(self, node: Checkpoint, ops: list[list[Any]], hit: BreakpointHit) -> None:
        self._restore_node(node)
        if not self._replay(ops, StopAtHit(hit.cpu, hit.count)):
            raise CheckpointError("the history did not repeat itself (a replay missed a "
                                  "breakpoint hit it had seen)")
        lpar = self.lpar
        lpar.publish_aside(RewindEvent(t=lpar.clock.now, cpu=hit.cpu,
                                       to=f"breakpoint {hit.address:#x}",
                                       events=lpar.events_published))

    def _scan(self, node: Checkpoint, ops: list[list[Any]], addresses: frozenset[int],
              present: dict[int, int], since: int) -> BreakpointHit | None:
        """Run node's stretch again with the addresses watched: its latest hit before the
        present and not before virtual time `since`, if any."""
        with _HitWatch(self.lpar, addresses, present, since) as watch:
            self._restore_node(node)
            self._replay(ops, None)
        return watch.latest

    def _enter(self, node: Checkpoint) -> None:
        """A checkpoint, entered as `checkpoint restore` would (inside a round, running on
        finishes the round as the first time)."""
        self._restore_node(node)
        if node.held and not (node.ops and node.ops[0] == ["unrepeatable"]):
            self.live = _Live(node.parent, [list(op) for op in node.ops], held=True)

    def _go_back(self, before, stop) -> None:
        """Restore the latest checkpoint on the live line that satisfies `before`, then run
        what ran after it again, without events, until `stop`."""
        self._settle()
        line = self._live_line()
        for index, (node, ops) in enumerate(line):
            if before(node):
                break
        else:
            raise CheckpointError("that point is older than the oldest checkpoint kept")
        if ops and ops[0] == ["unrepeatable"]:
            raise CheckpointError("that point lies in a stretch cut short by the host "
                                  "(free running or an interrupted command): not reproducible")
        self._restore_node(node)
        if stop.reached(self.lpar):
            return
        if not self._replay(ops, stop) and index > 0:
            # The point lies inside a command (its event came from the command, not from a
            # round): the nearest state is just after that command.
            self._restore_node(line[index - 1][0])

    def _live_line(self) -> list[tuple[Checkpoint, list[list[Any]]]]:
        """(checkpoint, what ran after it on the live line), latest first."""
        live = self.live
        line = [(live.base, live.ops if live.replayable else [["unrepeatable"]])]
        child = live.base
        for node in live.base.ancestors()[1:]:
            line.append((node, child.ops))
            child = node
        return line

    def _replay(self, ops: list[list[Any]], stop, mute_below: int | None = None) -> bool:
        """Run ops again from the restored state; True if it ended at `stop`."""
        lpar = self.lpar
        lpar._mute_below = (1 << 62) if mute_below is None else mute_below
        lpar._stop = stop
        self._replaying = True
        try:
            for op in ops:
                if op[0] == "rounds":
                    for _ in range(op[2]):
                        lpar._round(op[1])
                        if lpar._aborted:
                            break
                elif op[0] == "step":
                    self.before_step(op[1], op[2])
                    lpar._aborted = False
                    lpar._dispatch(lpar.cpu_by_address(op[1]), op[2], force=True)
                    lpar._run_deferred()
                if lpar._aborted:
                    break
        finally:
            self._replaying = False
            lpar._stop = None
            lpar._mute_below = None
        if not lpar._aborted:
            return False
        lpar._aborted = False
        self.live.held = bool(self.live.ops) and self.live.ops[-1][0] == "rounds"
        return True

    def _finish_round(self) -> None:
        """Running on from a point inside a round: run from the base to that round's end,
        publishing only the events not published yet."""
        live = self.live
        seen = self.lpar.events_published
        ops = [list(op) for op in live.ops]
        self._restore_node(live.base)
        self._replay(ops, None, mute_below=seen)
        self.live.held = False

    # -- memory ----------------------------------------------------------------------------------
    def _prune(self) -> None:
        periodic = [n for n in self.nodes if n.kind == "periodic"]
        while len(periodic) > MAX_PERIODIC:
            victim = periodic.pop(0)
            children = [n for n in self.nodes if n.parent is victim]
            if (len(children) != 1 or victim is self.live.base or victim is self.shadow_of
                    or children[0].held):
                continue
            child = children[0]
            child.pages = {**victim.pages, **child.pages}
            for devno, blocks in victim.blocks.items():
                child.blocks[devno] = {**blocks, **child.blocks.get(devno, {})}
            unrepeatable = ["unrepeatable"] in victim.ops or ["unrepeatable"] in child.ops
            child.ops = [["unrepeatable"]] if unrepeatable else victim.ops + child.ops
            child.parent = victim.parent
            self.nodes.remove(victim)

    def host_bytes(self) -> int:
        """Host memory the checkpoints hold (not counting the shadow copy of storage)."""
        return sum(n.delta_bytes for n in self.nodes)

    # -- files -------------------------------------------------------------------------------------
    def _dumps_dir(self) -> Path:
        return self.lpar.workdir / "dumps"

    def _dump_files(self) -> frozenset[str]:
        directory = self._dumps_dir()
        if not directory.is_dir():
            return frozenset()
        return frozenset(p.name for p in directory.iterdir() if not p.name.startswith("."))

    def _restore_files(self, files: frozenset[str]) -> None:
        """Dump files written after the checkpoint move to rewound/ (they were not written
        yet); ones it had that an earlier rewind moved away come back."""
        directory, aside = self._dumps_dir(), self.lpar.workdir / REWOUND_DIR
        for name in self._dump_files() - files:
            aside.mkdir(exist_ok=True)
            (directory / name).replace(aside / name)
        for name in files - self._dump_files():
            if (aside / name).exists():
                (aside / name).replace(directory / name)


def _content(chain: list[Checkpoint], key: int, table, default: bytes | None = None):
    for node in chain:
        stored = table(node)
        if key in stored:
            return stored[key]
    return default

