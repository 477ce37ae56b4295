"""What an LPAR costs the class machine (issue 12): its translation buffer is capped, and a
paced LPAR whose CPUs all wait sleeps until its next timer instead of stepping through the
wait."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from conftest import MS, Booted

from console.control.runner import Runner
from console.control.session import Session
from machine.engine import TCG_BUFFER_SIZE, new_engine
from machine.lpar import CpuState


def test_every_engine_has_its_translation_buffer_capped(booted: Booted) -> None:
    # unicorn's default is 1 GiB, committed as it fills: a running LPAR grew ~10 MB/s.
    assert new_engine().ctl_get_tcg_buffer_size() == TCG_BUFFER_SIZE == 32 << 20
    assert booted.lpar.uc.ctl_get_tcg_buffer_size() == TCG_BUFFER_SIZE


def test_an_idle_lpar_says_when_its_next_timer_fires(booted: Booted) -> None:
    lpar = booted.lpar
    lpar.run(50 * MS)  # the workload's memory is filled: the CPUs idle until their heartbeat
    while lpar.ns_until_ready(2000 * MS) == 0:
        lpar.run(20_000)
    assert all(cpu.state == CpuState.WAIT for cpu in lpar.cpus)
    idle = lpar.ns_until_ready(2000 * MS)
    assert 0 < idle <= 1000 * MS  # the next heartbeat (tickless idle), no later
    assert lpar.ns_until_ready(idle // 2) == idle // 2  # capped by the caller's limit
    lpar.run(idle)
    assert lpar.ns_until_ready(2000 * MS) == 0  # the heartbeat is due: a CPU can run


def test_the_paced_runner_does_not_spin_through_an_idle_lpar(tmp_path: Path) -> None:
    """At the default speed (real time), an idle LPAR once cost half a core: the runner
    advanced it in 200 us slices, 5000 a second. It now sleeps in real time until the next
    timer of a CPU and then advances to it in one slice: a few slices a second."""
    session = Session(tmp_path, "default", {"memory": 128 << 20})
    done = threading.Event()
    runner = Runner(session, on_outcome=lambda outcome: done.set())
    runner.start()
    try:
        for line in ("activate", "load 0100"):
            runner.submit(line)
        runner.submit("wait-for stage workload")
        for _ in range(3):
            done.clear()
            assert done.wait(60)
        # The workload fills its pages (slower on a busy host), then idles (tickless).
        deadline = time.monotonic() + 60
        while not all(cpu.state == CpuState.WAIT for cpu in session.lpar.snapshot().cpus):
            assert time.monotonic() < deadline, "the workload did not settle into its idle"
            time.sleep(0.05)
        slices: list[int] = []
        session.subscribe_runs(lambda ns, free: slices.append(ns))
        started, virtual = time.monotonic(), session.lpar.clock.now
        time.sleep(2.0)
        elapsed = time.monotonic() - started
        assert len(slices) / elapsed < 20, f"{len(slices) / elapsed:.0f} slices a second"
        assert max(slices) > 100 * MS  # whole waits, not 200 us steps
        # ... and the machine still moves at its pace: the naps end in real runs.
        assert session.lpar.clock.now - virtual > 500 * MS
    finally:
        runner.stop()


def test_the_classroom_agent_rewrites_status_only_when_it_changes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An idle served console wrote its status.json twice a second; it now writes it when
    what the instructor's table shows changes."""
    from types import SimpleNamespace

    from console.classroom import agent as agent_module
    from console.classroom import channel

    writes: list[dict] = []
    real_write = channel.write_status

    def counted(workdir: Path, status: dict) -> None:
        writes.append(status)
        real_write(workdir, status)

    monkeypatch.setattr(channel, "write_status", counted)
    agent = agent_module.Agent(SimpleNamespace(session=SimpleNamespace(workdir=tmp_path, lpar=None)))
    agent._write_status()
    agent._write_status()
    assert len(writes) == 1  # nothing changed: not written again
    agent.faults.append("hang spin")  # changed in place, as the agent does
    agent._write_status()
    assert len(writes) == 2
    assert channel.read_status(tmp_path)["faults"] == ["hang spin"]
