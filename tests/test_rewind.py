"""Checkpoints, rewind and step back are exact: the machine after going back equals what it
was the first time, and running on from there repeats the first run byte for byte."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from console.control.journal import normalise
from console.control.session import Session
from machine.cpu import CRS, GPRS
from machine.events import EventLog

KDUMP_STAGES = ("purgatory-verify", "crash-kexec", "purgatory-load", "notes", "swap",
                "kdump-boot", "vmcore")


def _session(tmp_path: Path, cpus: int) -> tuple[Session, EventLog]:
    session = Session(tmp_path / "work", "production", {"cpus": cpus})
    return session, EventLog(session.bus)


def _ok(session: Session, *lines: str) -> None:
    for line in lines:
        result = session.execute(line)
        assert result.ok, f"{line}: {result.message}"


def _machine(session: Session) -> tuple:
    """What must be equal: storage, every CPU's registers and PSW, the clock."""
    lpar = session.lpar
    cpus = tuple((tuple(c.regs(GPRS)), tuple(c.regs(CRS)), c.psw, str(c.state), c.instructions)
                 for c in lpar.cpus)
    return lpar.storage_hash(), cpus, lpar.clock.now


def _events(log: EventLog, since: int) -> list[dict]:
    return [normalise(e.to_dict(), []) | {"seconds": None} for e in log.events[since:]
            if e.kind not in ("rewind", "checkpoint")]


def _dump_digest(log: EventLog) -> str:
    path = [e for e in log.events if e.kind == "dump_written"][-1].path
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def kdump_run(tmp_path_factory):
    """A production system that took its kdump once, with what it published."""
    session, log = _session(tmp_path_factory.mktemp("kdump"), 4)
    _ok(session, "activate", "load 0100", "wait-for event kexec timeout=30s",
        "checkpoint save before")
    start = len(log.events)
    _ok(session, "stop all", "restart 0", "wait-for event dump_written timeout=30s")
    yield session, log, start, _events(log, start), _dump_digest(log), _machine(session)
    session.close()


def test_restore_and_run_again_gives_the_same_events_storage_and_dump(kdump_run) -> None:
    session, log, _, events, digest, machine = kdump_run
    _ok(session, "checkpoint restore before")
    assert [e.kind for e in log.events[-1:]] == ["rewind"]
    again = len(log.events)
    _ok(session, "stop all", "restart 0", "wait-for event dump_written timeout=30s")
    assert _events(log, again) == events
    assert _dump_digest(log) == digest
    assert _machine(session) == machine
    assert (session.workdir / "rewound").is_dir()  # the first vmcore, moved aside


@pytest.mark.parametrize("stage", KDUMP_STAGES)
def test_rewind_to_each_stage_then_forward_repeats_the_run(kdump_run, stage: str) -> None:
    session, log, _, events, digest, machine = kdump_run
    _ok(session, "checkpoint restore before", "stop all", "restart 0",
        "wait-for event dump_written timeout=30s")
    began = [s for s in session.lpar.checkpoints.stage_starts if s.stage == stage][-1]
    _ok(session, f"rewind {stage}")
    lpar = session.lpar
    assert lpar.clock.now == began.t
    # Just after the emulated instruction that announced the stage (and did what it does:
    # VMCORE_SAVE writes the whole vmcore), at the same virtual time.
    assert lpar.events_published > began.event
    rewound = log.events[-1]
    assert (rewound.kind, rewound.events) == ("rewind", lpar.events_published)
    after, index = len(log.events), lpar.events_published
    if stage == "vmcore":  # one emulated instruction wrote the vmcore: it is there again
        path = [e for e in log.events if e.kind == "dump_written"][-1].path
        assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == digest
        return
    _ok(session, "wait-for event dump_written timeout=30s")
    assert _events(log, after) == events[index - _first_index(kdump_run):]
    assert _dump_digest(log) == digest
    assert _machine(session) == machine


def _first_index(kdump_run) -> int:
    """The machine's event index of the first event after the `before` checkpoint."""
    session, _, _, _, _, _ = kdump_run
    return session.lpar.checkpoints.find("before").events


@pytest.mark.parametrize("cpus", [1, 4])
def test_step_back_lands_on_the_states_recorded_forward(tmp_path: Path, cpus: int) -> None:
    session, _ = _session(tmp_path, cpus)
    _ok(session, "activate", "load 0100", "run 2ms")
    cpu = cpus - 1  # the last CPU of a round: its slice ends the round
    count = lambda: session.lpar.cpus[cpu].instructions
    # Whole rounds of every CPU, recorded between rounds.
    rounds = []
    for _ in range(4):
        rounds.append((count(), _machine(session)[:2]))
        _ok(session, "run 20us")
    final = _machine(session)
    target, state = rounds[2]
    _ok(session, f"step back {count() - target} cpu={cpu}")
    assert (count(), _machine(session)[0]) == (target, state[0])
    _ok(session, "run 20us", "run 20us")  # forward again: exactly the first run
    assert _machine(session) == final
    # One CPU alone: 10000 instructions, 100 then 1 at a time, each state recorded.
    _ok(session, "stop all")
    recorded = {}
    start = count()
    for done, size in enumerate([100] * 99 + [1] * 100):
        if done in (0, 99, 198):  # 10000, 100 and 1 instructions before the end
            recorded[count()] = _machine(session)[:2]
        _ok(session, f"step {size} cpu={cpu}")
    end = count()
    recorded[end] = _machine(session)[:2]
    assert sorted(recorded) == [start, end - 100, end - 1, end]
    _ok(session, f"step back 1 cpu={cpu}")
    assert (count(), _machine(session)[:2]) == (end - 1, recorded[end - 1])
    _ok(session, f"step 1 cpu={cpu}")
    assert _machine(session)[:2] == recorded[end]
    _ok(session, f"step back 100 cpu={cpu}")
    assert (count(), _machine(session)[:2]) == (end - 100, recorded[end - 100])
    _ok(session, f"step 100 cpu={cpu}")
    assert _machine(session)[:2] == recorded[end]
    _ok(session, f"step back 10000 cpu={cpu}")
    assert (count(), _machine(session)[:2]) == (end - 10000, recorded[end - 10000])
    session.close()


def test_step_back_one_then_step_returns_to_the_same_state(tmp_path: Path) -> None:
    session, _ = _session(tmp_path, 2)
    _ok(session, "activate", "load 0100", "run 1ms", "stop all", "step 50")
    before = _machine(session)[:2]
    _ok(session, "step back 1")
    assert session.lpar.cpus[0].instructions == before[1][0][4] - 1
    _ok(session, "step 1")
    assert _machine(session)[:2] == before
    session.close()


def test_going_back_too_far_is_refused_in_one_line(tmp_path: Path) -> None:
    session, _ = _session(tmp_path, 1)
    _ok(session, "activate", "load 0100", "run 100us")
    result = session.execute("step back 1000000")
    assert not result.ok and "has executed only" in result.message
    result = session.execute("rewind vmcore")
    assert not result.ok and result.message.startswith("rewind: no stage 'vmcore'")
    result = session.execute("checkpoint restore nothing")
    assert not result.ok and "no checkpoint named 'nothing'" in result.message
    session.close()


def test_rewind_through_a_stand_alone_dump_restores_the_dump_device(tmp_path: Path) -> None:
    """The dumper writes the dump device: a rewind puts its blocks back, and the rerun writes
    the same device image (and so the same dump, which stays on the device)."""
    session = Session(tmp_path / "work", "default", {"cpus": 2, "memory": 128 << 20})
    _ok(session, "activate", "load 0100", "wait-for stage workload-filled",
        "fault hang spin", "wait-for event hang", "stop all", "checkpoint save hung",
        "load 0200 store", "wait-for stage full-dump timeout=60s")
    device = session.workdir / "dev-0200.img"
    first = hashlib.sha256(device.read_bytes()).hexdigest(), _machine(session)
    began = [s.stage for s in session.lpar.checkpoints.stage_starts]
    assert {"dumper", "checks", "full-dump"} <= set(began)
    _ok(session, "checkpoint restore hung")
    assert hashlib.sha256(device.read_bytes()).hexdigest() != first[0]  # not written yet
    _ok(session, "load 0200 store", "wait-for stage full-dump timeout=60s")
    assert (hashlib.sha256(device.read_bytes()).hexdigest(), _machine(session)) == first
    _ok(session, "rewind checks", "wait-for stage full-dump timeout=60s")
    assert (hashlib.sha256(device.read_bytes()).hexdigest(), _machine(session)) == first
    session.close()


def test_reverse_continue_goes_back_to_the_latest_breakpoint_hit_exactly(tmp_path: Path) -> None:
    """Two CPUs stop at a breakpoint and are stepped off it in turn, then run on. Going back
    to the latest hit gives the machine as it was just before the last of them went on
    (storage, every CPU, the clock); running on again repeats the first time; a hit older
    than the search window is not found and the machine stays; without breakpoints the
    machine goes to its activation."""
    session, _ = _session(tmp_path, 2)
    with session:
        _ok(session, "activate", "load 0100", "run 20ms", "break do_ext_interrupt", "run 5ms",
            "stop all")
        lpar = session.lpar
        entry = lpar.code_address("do_ext_interrupt")
        sitting = [c.address for c in lpar.cpus if c.psw[1] == entry]
        assert len(sitting) == 2, "both CPUs reach the timer handler within 5 ms"
        _ok(session, "break clear all", f"step 1 cpu={sitting[0]}")
        last_hit = _machine(session)
        count = lpar.cpus[sitting[1]].instructions
        _ok(session, f"step 1 cpu={sitting[1]}", "start all", "run 1ms", "stop all")
        first_time = _machine(session)
        _ok(session, "break do_ext_interrupt")
        back = session.execute("reverse-continue")
        assert back.ok, back.message
        assert back.data["cpu"] == sitting[1] and back.data["instructions"] == count
        assert back.data["address"] == entry
        assert _machine(session) == last_hit
        assert lpar.breakpoints.addresses == {entry}  # the breakpoints set before stay
        _ok(session, "break clear all", f"step 1 cpu={sitting[1]}", "start all", "run 1ms",
            "stop all")
        assert _machine(session) == first_time
        # The last hit lies 1 ms back: a 0.5 ms search window misses it, and the machine
        # stays where it was.
        lpar.checkpoints.reverse_search_ns = 500_000
        _ok(session, "break do_ext_interrupt")
        missed = session.execute("reverse-continue")
        assert missed.ok and missed.data == {"cpu": None, "t": first_time[2], "complete": False}
        assert _machine(session) == first_time
        _ok(session, "break clear all", "reverse-continue")  # no breakpoints: the beginning
        assert [c.instructions for c in lpar.cpus] == [0, 0] and lpar.clock.now == 0
