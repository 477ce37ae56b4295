"""Breakpoints (the HMC's address compare): a CPU stops in front of the instruction, goes on
past it when started or stepped, and the stand-alone dumper's call of the purgatory can be
caught where kexec put it."""

from __future__ import annotations

from pathlib import Path

import capstone
import pytest

from console.control.session import Session
from machine.breakpoints import MAX_BREAKPOINTS
from machine.events import EventLog
from machine.images import built_programs

BOOT = ("activate", "load 0100", "wait-for stage workload")


def booted(tmp_path: Path, cpus: int = 2) -> tuple[Session, EventLog]:
    session = Session(tmp_path, overrides={"cpus": cpus, "memory": 128 << 20})
    log = EventLog(session.bus)
    for line in BOOT:
        assert session.execute(line).ok
    return session, log


def ok(session: Session, line: str) -> str:
    result = session.execute(line)
    assert result.ok, result.message
    return result.message


def instruction_length(session: Session, address: int) -> int:
    code = session.lpar.read(address, 6)
    engine = capstone.Cs(capstone.CS_ARCH_SYSZ, capstone.CS_MODE_BIG_ENDIAN)
    return next(engine.disasm(code, address)).size


def test_a_cpu_stops_in_front_of_the_instruction_and_steps_past_it(tmp_path: Path) -> None:
    session, log = booted(tmp_path)
    with session:
        address = built_programs()["kernel"].symbols["spin_lock"]
        assert f"{address:#x}" in ok(session, "break spin_lock")
        ok(session, "wait-for event breakpoint")
        hit = log.of_kind("breakpoint")[0]
        assert (hit.address, hit.label, hit.symbol) == (address, "spin_lock", "spin_lock")
        cpu = session.lpar.snapshot().cpus[hit.cpu]
        assert cpu.state == "stopped" and cpu.psw_addr == address
        stopped = [e for e in log.of_kind("cpu_state") if e.cpu == hit.cpu][-1]
        assert (stopped.state, stopped.psw_addr) == ("stopped", address)

        # step executes the instruction at the breakpoint, exactly one, and stops again.
        ok(session, f"step cpu={hit.cpu}")
        cpu = session.lpar.snapshot().cpus[hit.cpu]
        assert cpu.psw_addr == address + instruction_length(session, address)
        assert len(log.of_kind("breakpoint")) == 1


def test_start_goes_on_and_the_next_call_stops_again(tmp_path: Path) -> None:
    session, log = booted(tmp_path, cpus=1)
    with session:
        ok(session, "break spin_lock")
        ok(session, "wait-for event breakpoint")
        first = log.of_kind("breakpoint")[0]
        ok(session, "start 0")
        ok(session, "wait-for event breakpoint timeout=1s")
        second = log.of_kind("breakpoint")[1]
        assert second.address == first.address and second.t > first.t

        ok(session, "break clear spin_lock")
        assert ok(session, "break") == "No breakpoints."
        ok(session, "start 0")
        ok(session, "run 2ms")
        assert len(log.of_kind("breakpoint")) == 2
        assert session.lpar.snapshot().cpus[0].state == "operating"


def test_the_same_breakpoint_run_twice_gives_the_same_events(tmp_path: Path) -> None:
    def events(workdir: Path) -> list[dict]:
        session, log = booted(workdir)
        with session:
            for line in ("break spin_unlock", "wait-for event breakpoint", "start all",
                         "run 1ms", "step cpu=1", "break clear all", "start all", "run 1ms"):
                session.execute(line)
        return [event.to_dict() for event in log.events]
    first, second = events(tmp_path / "a"), events(tmp_path / "b")
    assert any(event["kind"] == "breakpoint" for event in first)
    assert first == second


def test_bad_breakpoints_are_refused_in_one_line(tmp_path: Path) -> None:
    session, _ = booted(tmp_path)
    with session:
        def refusal(line: str) -> str:
            result = session.execute(line)
            assert not result.ok and "\n" not in result.message
            return result.message
        assert "no symbol 'nosuch'" in refusal("break nosuch")
        assert "odd address" in refusal("break 0x11141")
        ok(session, "break clear all")
        ok(session, "break spin_lock")
        assert "already set" in refusal("break spin_lock")
        assert "no breakpoint at" in refusal("break clear spin_unlock")
        assert "usage" in refusal("break spin_lock spin_unlock")
        assert "no symbol 'purgatory:purgatory_main'" in refusal("break purgatory:purgatory_main")
        for address in range(0x20000, 0x20000 + 2 * (MAX_BREAKPOINTS - 1), 2):
            ok(session, f"break {address:#x}")
        assert f"at most {MAX_BREAKPOINTS}" in refusal("break 0x30000")
        assert ok(session, "break clear all") == f"Breakpoints cleared: {MAX_BREAKPOINTS}"


@pytest.mark.timeout(120)
def test_catch_the_dumper_calling_the_purgatory_then_let_kdump_finish(tmp_path: Path) -> None:
    """The teaching use: stop where the stand-alone dumper enters the purgatory (relocated
    into the crashkernel region), look, then go on to the vmcore."""
    session, log = booted(tmp_path)
    with session:
        for line in ("kdump load", "wait-for event kexec"):
            ok(session, line)
        crash = session.lpar.kdump.image
        entry = crash.segment("purgatory").mem + crash.purgatory.symbols["purgatory_main"]
        assert f"{entry:#x}" in ok(session, "break purgatory:purgatory_main")
        for line in ("fault hang spin", "wait-for event hang", "stop all", "load 0200 store",
                     "wait-for event breakpoint timeout=10s"):
            ok(session, line)
        hit = log.of_kind("breakpoint")[-1]
        assert hit.address == entry and hit.label == "purgatory:purgatory_main"
        assert session.lpar.snapshot().program == "dumper"
        assert not log.of_kind("purgatory")  # stopped before the purgatory did anything
        # Verify mode first: the dumper calls the purgatory with r2 = 0.
        assert session.lpar.snapshot().cpus[hit.cpu].gprs[2] == 0
        ok(session, "break clear all")
        ok(session, f"start {hit.cpu}")
        ok(session, "wait-for event dump_written timeout=60s")
        assert log.of_kind("dump_written")[-1].format == "elf"
