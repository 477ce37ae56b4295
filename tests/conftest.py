"""Shared fixtures: an LPAR booted with the production kernel, and its event log."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from machine.events import EventBus, EventLog
from machine.lpar import Lpar
from machine.profile import Profile

MS = 1_000_000


@dataclass
class Booted:
    lpar: Lpar
    log: EventLog

    def console(self) -> list[str]:
        return [e.text for e in self.log.of_kind("console")]

    def os_command(self, text: str, ns: int = 5 * MS) -> None:
        self.lpar.os_command(text)
        self.lpar.run(ns)


def boot_lpar(workdir: Path, cpus: int = 2, **profile: object) -> Booted:
    """Activate, load 0100 and run until the workload runs on every CPU."""
    bus = EventBus()
    log = EventLog(bus)
    lpar = Lpar(Profile(cpus=cpus, **profile), workdir, bus)
    lpar.activate()
    lpar.load(0x0100)
    event = lpar.run_until(lambda e: e.kind == "stage" and e.stage == "workload", 2000 * MS)
    assert event is not None, "the kernel did not reach the workload"
    return Booted(lpar, log)


@pytest.fixture
def booted(tmp_path: Path):
    """A 2-CPU LPAR, booted; closed after the test."""
    b = boot_lpar(tmp_path)
    yield b
    b.lpar.close()
