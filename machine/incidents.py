"""Incidents: one system's life from activation or IPL until after its dump.

Each IPL after a dump, or after a dump was attempted (kdump started, the dumper ran), begins a
new incident, so that a fallback stand-alone dump after a failed kdump, or the production
system re-IPLed after its vmcore was saved, is not mistaken for the run before it. An incident
keeps its dumps and the outcome of its workflow stages. A full dump stays on the dump device
until the operator copies it off with zgetdump after the re-IPL, in a later incident: the file
is the dump incident's.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from machine.events import IncidentEvent

if TYPE_CHECKING:
    from machine.events import Event
    from machine.lpar import Lpar

# Stages that mean a dump was taken or attempted.
DUMP_STAGES = frozenset({"crash-kexec", "purgatory-verify", "purgatory-load", "notes", "swap",
                         "kdump-boot", "vmcore", "dumper", "cpu-status", "checks", "kdump",
                         "full-dump", "oldmem-copy"})


@dataclass
class Incident:
    number: int
    t: int
    cause: str
    programs: list[str] = field(default_factory=list)
    dumps: list[str] = field(default_factory=list)
    stages: dict[str, str] = field(default_factory=dict)  # stage -> last status (detail)
    dump_attempted: bool = False

    @property
    def outcome(self) -> str:
        failed = [s for s, status in self.stages.items() if status.startswith("failed")]
        if self.dumps:
            return "dump written: " + ", ".join(self.dumps)
        if self.stages.get("full-dump", "").startswith("done"):  # the checks failed before it
            return "full dump on the dump device (zgetdump copies it off)"
        if failed:
            return f"{failed[-1]} failed"
        if self.dump_attempted:
            return "dump in progress"
        return "no dump"

    def to_dict(self) -> dict:
        return {"number": self.number, "t": self.t, "cause": self.cause,
                "programs": list(self.programs), "dumps": list(self.dumps),
                "stages": dict(self.stages), "outcome": self.outcome}


class Incidents:
    """The incidents of one LPAR, fed with every event it publishes."""

    def __init__(self, lpar: Lpar) -> None:
        self.lpar = lpar
        self.items: list[Incident] = [Incident(1, lpar.clock.now, "activate")]
        self._copying_off = False  # zgetdump runs: its file is the latest full dump's

    @property
    def current(self) -> Incident:
        return self.items[-1]

    def observe(self, event: Event) -> None:
        kind = event.kind
        if kind == "ipl":
            self._ipl(event)
        elif kind == "stage":
            status = event.status + (f" ({event.detail})" if event.detail else "")
            self.current.stages[event.stage] = status
            if event.stage in DUMP_STAGES:
                self.current.dump_attempted = True
            if event.stage == "zgetdump":
                self._copying_off = event.status == "running"
        elif kind == "dump_written":
            self._owner().dumps.append(event.path)

    def _owner(self) -> Incident:
        """The incident a dump file belongs to: the current one, or for zgetdump's copy the
        latest incident whose full dump reached the device."""
        if self._copying_off:
            for incident in reversed(self.items):
                if incident.stages.get("full-dump", "").startswith("done"):
                    return incident
        return self.current

    def _ipl(self, event: Event) -> None:
        current = self.current
        if current.dump_attempted or current.dumps:
            cause = f"IPL of {event.program} from {event.devno:04x}"
            self.items.append(Incident(current.number + 1, event.t, cause, [event.program]))
            self.lpar.publish(IncidentEvent(t=event.t, cpu=None, number=current.number + 1,
                                            cause=cause))
        else:
            current.programs.append(event.program)

    def save(self) -> list[Incident]:
        return copy.deepcopy(self.items)

    def restore(self, saved: list[Incident]) -> None:
        self.items = copy.deepcopy(saved)
