"""The session journal and `dumplab replay`: determinism made visible (docs/JOURNAL.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from console.cli import main
from console.control.journal import JOURNAL_VERSION, normalise, read_journal

SMALL = ["--cpus", "2", "--memory", "128M"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def write_records(path: Path, lines: list[dict]) -> None:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A journal of the hang-sadump scenario (kdump through the stand-alone dumper), and the
    work directory it was recorded in."""
    root = tmp_path_factory.mktemp("journal")
    journal, workdir = root / "hang-sadump.jsonl", root / "work"
    status = main(["run", "--scenario", "hang-sadump", *SMALL, "--workdir", str(workdir),
                   "--journal", str(journal)])
    assert status == 0
    return journal, workdir


# --------------------------------------------------------------------------------------------
# Writing


def test_the_journal_has_a_header_then_events_and_commands_in_order(recorded) -> None:
    journal, workdir = recorded
    lines = records(journal)
    header = lines[0]
    assert header["journal"] == "dumplab" and header["version"] == JOURNAL_VERSION
    assert header["profile"] == "default"
    assert header["overrides"] == {"cpus": 2, "memory": 128 << 20}
    assert header["created_by"].startswith("dumplab")
    assert header["workdir_absolute"] == str(workdir.absolute())
    # A command's line follows the events it caused: activate's hmc event, then activate.
    assert lines[1]["kind"] == "hmc" and lines[1]["operation"] == "activate"
    assert lines[2] == {"kind": "command", "t": 0, "command": "activate", "ok": True,
                        "message": lines[1]["message"]}
    commands = [line["command"] for line in lines[1:] if line["kind"] == "command"]
    assert commands[-1] == "wait-for event dump_written timeout=60s"
    kinds = {line["kind"] for line in lines[1:]}
    assert {"stage", "check", "dump_written", "console"} <= kinds


def test_no_partial_file_is_left_behind(recorded) -> None:
    journal, _ = recorded
    assert [path.name for path in journal.parent.glob(".*partial")] == []


def test_a_failed_run_still_leaves_a_complete_journal(tmp_path: Path, capsys) -> None:
    journal = tmp_path / "failed.jsonl"
    status, _, err = run(capsys, "run", "-c", "activate; load 0999", *SMALL,
                         "--workdir", tmp_path / "w", "--journal", journal)
    assert status == 1 and "line 2" in err
    lines = records(journal)
    assert [line["ok"] for line in lines[1:] if line["kind"] == "command"] == [True, False]
    status, out, _ = run(capsys, "replay", journal)
    assert status == 0, out


def test_an_unwritable_journal_is_a_usage_error(tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    status, _, err = run(capsys, "run", "-c", "help", "--journal", blocker / "j.jsonl")
    assert status == 2
    assert "cannot write the journal" in err and len(err.splitlines()) == 1


# --------------------------------------------------------------------------------------------
# Replay


def test_replay_of_a_scenario_is_identical(recorded, capsys) -> None:
    journal, _ = recorded
    events = sum(1 for line in records(journal)[1:] if line["kind"] != "command")
    status, out, err = run(capsys, "replay", journal)
    assert (status, err) == (0, "")
    assert out == f"replay identical: {events} events\n"


def test_replay_in_the_recording_work_dir_is_identical_too(recorded, capsys) -> None:
    # The earlier run's files are still there: the new vmcore is named ...-2, and the
    # comparison ignores that suffix.
    journal, workdir = recorded
    status, out, _ = run(capsys, "replay", journal, "--workdir", workdir)
    assert status == 0, out
    assert sorted(path.name for path in (workdir / "dumps").iterdir()) == [
        "vmcore-20260101-000000", "vmcore-20260101-000000-2"]


def test_a_tampered_journal_is_reported_at_the_first_differing_event(recorded, tmp_path: Path,
                                                                    capsys) -> None:
    journal, _ = recorded
    lines = records(journal)
    events = [line for line in lines[1:] if line["kind"] != "command"]
    index = next(i for i, event in enumerate(events) if event["kind"] == "hang")
    events[index]["lock"] += 8  # as if the guest had hung on another lock
    write_records(tmp_path / "tampered.jsonl", lines)
    status, out, _ = run(capsys, "replay", tmp_path / "tampered.jsonl")
    assert status == 1
    first, expected, got = out.splitlines()
    assert first == f"replay differs at event {index} (during 'wait-for event hang')"
    assert json.loads(expected.split(":", 1)[1])["lock"] == events[index]["lock"]
    assert json.loads(got.split(":", 1)[1])["lock"] == events[index]["lock"] - 8


def test_a_journal_missing_its_last_events_is_reported(recorded, tmp_path: Path,
                                                        capsys) -> None:
    journal, _ = recorded
    lines = records(journal)
    last_event = max(i for i, line in enumerate(lines) if i and line["kind"] != "command")
    del lines[last_event]
    write_records(tmp_path / "short.jsonl", lines)
    status, out, _ = run(capsys, "replay", tmp_path / "short.jsonl")
    assert status == 1
    assert "expected: (no more events)" in out


def test_normalise_removes_host_measurements_and_the_work_directory() -> None:
    event = {"kind": "dump_written", "t": 5, "cpu": 0, "seconds": 0.123,
             "path": "/tmp/run1/dumps/vmcore-20260101-000000-3", "format": "elf"}
    assert normalise(event, ["/tmp/run1", "run1"]) == {
        "kind": "dump_written", "t": 5, "cpu": 0, "path": "$WORKDIR/dumps/vmcore-20260101-000000",
        "format": "elf"}
    stage = {"kind": "stage", "detail": "dump-20260101-000000-2.s390: 4096 bytes"}
    assert normalise(stage, [])["detail"] == "dump-20260101-000000.s390: 4096 bytes"
    # Other kinds keep a field named seconds, and text that merely contains the name.
    assert normalise({"kind": "x", "seconds": 1, "text": "run1 is up"}, ["run1"]) == {
        "kind": "x", "seconds": 1, "text": "run1 is up"}


# --------------------------------------------------------------------------------------------
# Journals that cannot be read: one line naming the file and the line, exit 2


def _header(**changes: object) -> dict:
    return {"journal": "dumplab", "version": 1, "profile": "default", "overrides": {},
            "created_by": "test", **changes}


@pytest.mark.parametrize(("lines", "line", "problem"), [
    ([_header(version=JOURNAL_VERSION + 1)], 1, "is newer than this dumplab reads"),
    ([{"kind": "hmc"}], 1, "not a dumplab journal"),
    ([_header(version="1")], 1, "bad journal version"),
    ([_header(profile="no-such-profile")], 1, "unknown profile 'no-such-profile'"),
    ([_header(), {"kind": "command", "command": "activate", "ok": True}, "{broken"], 3,
     "not valid JSON"),
    ([_header(), {"t": 0}], 2, "expected a JSON object with a 'kind'"),
    ([_header(), {"kind": "command", "ok": True}], 2, "needs 'command'"),
])
def test_a_broken_journal_is_one_line_naming_file_and_line(tmp_path: Path, capsys, lines,
                                                           line: int, problem: str) -> None:
    path = tmp_path / "broken.jsonl"
    path.write_text("".join((text if isinstance(text, str) else json.dumps(text)) + "\n"
                            for text in lines))
    status, out, err = run(capsys, "replay", path)
    assert (status, out) == (2, "")
    assert err.startswith(f"dumplab replay: {path}:{line}: ") and problem in err
    assert len(err.splitlines()) == 1


def test_an_empty_or_missing_journal_is_refused(tmp_path: Path, capsys) -> None:
    (tmp_path / "empty.jsonl").write_text("")
    status, _, err = run(capsys, "replay", tmp_path / "empty.jsonl")
    assert status == 2 and f"{tmp_path / 'empty.jsonl'}:1: empty file" in err
    status, _, err = run(capsys, "replay", tmp_path / "missing.jsonl")
    assert status == 2 and "cannot read the journal" in err


def test_read_journal_keeps_commands_with_their_place(recorded) -> None:
    journal = read_journal(recorded[0])
    assert journal.commands[0].text == "activate" and journal.commands[0].events_before == 1
    assert all(a.events_before <= b.events_before
               for a, b in zip(journal.commands, journal.commands[1:], strict=False))


def test_the_journal_labs_and_demos_do_not_load_textual() -> None:
    code = ("import sys, console.control.journal, console.training.labs, console.training.lab_headless, console.training.demos; "
            "print('textual' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, cwd=Path(__file__).resolve().parent.parent)
    assert result.stdout.strip() == "False"
