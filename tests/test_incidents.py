"""Incidents, stage stops, and journals of sessions that went back in time."""

from __future__ import annotations

import hashlib
from pathlib import Path

from console.control.journal import JournalWriter, read_journal, replay
from console.control.session import Session
from machine.events import EventLog

FLOW = ("activate", "load 0100", "wait-for event kexec timeout=30s", "stop all", "restart 0",
        "wait-for event dump_written timeout=30s")


def _ok(session: Session, *lines: str) -> None:
    for line in lines:
        result = session.execute(line)
        assert result.ok, f"{line}: {result.message}"


def test_a_kdump_then_the_re_ipl_are_two_incidents(tmp_path: Path) -> None:
    with Session(tmp_path, "production", {"cpus": 2}) as session:
        log = EventLog(session.bus)
        _ok(session, *FLOW, "wait-for event incident timeout=1s")
        listed = session.execute("incident list")
        first, second = listed.data["incidents"]
        assert first["cause"] == "activate"
        assert first["dumps"] and first["outcome"].startswith("dump written")
        assert first["stages"]["vmcore"].startswith("done")
        assert second["cause"] == "IPL of kernel from 0100"
        assert [e.number for e in log.of_kind("incident")] == [2]
        shown = session.execute("incident show 2")
        assert shown.ok and shown.message.startswith("Incident 2: began")
        assert not session.execute("incident show 3").ok
        # Going back before the re-IPL forgets the second incident.
        _ok(session, "rewind swap")
        assert len(session.execute("incident list").data["incidents"]) == 1


def test_stage_stops_hold_at_each_stage_and_change_nothing(tmp_path: Path) -> None:
    def dump(session: Session, log: EventLog) -> str:
        path = log.of_kind("dump_written")[-1].path
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()

    with Session(tmp_path / "plain", "production", {"cpus": 2}) as session:
        log = EventLog(session.bus)
        _ok(session, *FLOW)
        expected = dump(session, log)
    with Session(tmp_path / "stops", "production", {"cpus": 2}) as session:
        log = EventLog(session.bus)
        _ok(session, "stage-stop on", *FLOW[:5])
        held_up = session.execute("wait-for event dump_written timeout=30s")
        assert held_up.message == ("wait-for event dump_written: held where stage "
                                   "purgatory-verify began (stage stops are on: go on, or "
                                   "stage-stop off)")
        assert not held_up.ok
        held = []
        while not log.of_kind("dump_written"):
            _ok(session, "run 5ms")  # a run ends early at each stop: the operator goes on
            held += [e.stage for e in log.of_kind("stage_stop")[len(held):]]
        assert held == ["purgatory-verify", "crash-kexec", "purgatory-load", "notes", "swap",
                        "kdump-boot", "vmcore"]
        assert dump(session, log) == expected


def test_a_journal_with_checkpoints_and_rewinds_replays_identically(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    with Session(tmp_path / "work", "production", {"cpus": 2}) as session:
        writer = JournalWriter(path, session)
        _ok(session, *FLOW[:3], "checkpoint save k", *FLOW[3:], "rewind notes",
            "step back 500", "run 1ms", "checkpoint restore k", "run 1ms")
        writer.close()
    outcome = replay(read_journal(path), tmp_path / "again")
    assert outcome.identical, outcome
    kinds = [r["kind"] for r in read_journal(path).events]
    assert kinds.count("rewind") == 3 and "checkpoint" in kinds
