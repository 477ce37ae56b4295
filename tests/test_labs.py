"""Labs: every shipped lab is solvable headless, its checks are not passed before the step is
done, broken lab files are named with their line, and the text mode grades a trainee."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from console.cli import main
from console.training import labtools
from console.training.checks import (
    AnswerCheck,
    CheckContext,
    CheckError,
    answer_matches,
    compile_check,
)
from console.training.lab_headless import TextLab
from console.training.labs import LabRun, lab_session, load_lab, load_labs
from machine.events import DumpWrittenEvent, HangEvent, StageEvent
from machine.images import load_image
from machine.paths import program_path

SHIPPED = load_labs()
ISSUE_LABS = ["hung-system", "corrupted-purgatory", "psw-restart", "panic-no-kdump",
              "classic-mistakes", "reading-a-vmcore", "two-stand-alone-paths"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_the_shipped_labs_all_load() -> None:
    assert SHIPPED.errors == ()
    assert [lab.name for lab in SHIPPED.labs] == ISSUE_LABS
    assert [lab.number for lab in SHIPPED.labs] == [1, 2, 3, 4, 5, 6, 7]
    for lab in SHIPPED.labs:
        assert lab.profile["memory"] == "128M", "labs stay small: CI runs every one"
        for step in lab.steps:
            assert step.text.strip() and step.explanation.strip() and step.hints, step.title


@pytest.mark.parametrize("lab", SHIPPED.labs, ids=lambda lab: lab.name)
def test_every_solve_script_passes_and_no_check_passes_before_its_step(lab,
                                                                       tmp_path: Path) -> None:
    with lab_session(lab, tmp_path) as session:
        run_ = LabRun(lab, session, solving=True)
        while not run_.finished:
            step = run_.step
            run_.start_step()
            verdict = run_.check()
            assert not verdict.ok, f"{step.title}: passes before the trainee acts ({verdict})"
            for line in step.solve:
                result = run_.execute(line)
                assert result.ok, f"{step.title}: '{line}': {result.message}"
            verdict = run_.check()
            assert verdict.ok, f"{step.title}: {verdict.detail}"
            if step.question is not None and lab.name == "reading-a-vmcore":
                _both_readings_name_the_lock_holder(run_)
            run_.finish_step("passed")
        run_.close()
        assert run_.score().passed == len(lab.steps)


def _both_readings_name_the_lock_holder(run_: LabRun) -> None:
    """The lock word and the PSWs in the vmcore name the CPU the hang event reported, and it
    is not CPU 0 (a blind guess of the first CPU must not pass)."""
    truth = run_.truth()
    context = run_.tool_context()
    assert truth == 2
    assert labtools.derive(["lock-owner", "workload_lock"], context) == str(truth)
    assert labtools.derive(["psw-in", "hang"], context) == str(truth)


def test_dumplab_lab_solve_prints_each_step_and_the_score(tmp_path: Path, capsys) -> None:
    status, out, err = run(capsys, "lab", "hung-system", "--headless", "--solve",
                           "--workdir", tmp_path)
    assert (status, err) == (0, "")
    lab = SHIPPED.find("hung-system")
    assert lab is not None
    for number, step in enumerate(lab.steps, start=1):
        assert f"Step {number}/{len(lab.steps)}: {step.title} ... passed" in out
    assert out.rstrip().endswith("Score: 5/5 steps passed, 0 hints used")
    assert list((tmp_path / "dumps").glob("vmcore-*"))


def test_lab_list_is_one_lab_a_line(capsys) -> None:
    status, out, err = run(capsys, "lab", "list")
    assert (status, err) == (0, "")
    rows = out.splitlines()
    assert len(rows) == len(ISSUE_LABS)
    for row, lab in zip(rows, SHIPPED.labs, strict=True):
        name, title = row.split(maxsplit=1)
        assert (name, title) == (lab.name, lab.title)


def test_labs_are_found_by_name_stem_or_number() -> None:
    for key in ("psw-restart", "03-psw-restart", "3", "03"):
        lab = SHIPPED.find(key)
        assert lab is not None and lab.name == "psw-restart"
    assert SHIPPED.find("nope") is None


def test_an_unknown_lab_is_a_usage_error(capsys) -> None:
    status, _, err = run(capsys, "lab", "nope", "--headless")
    assert status == 2 and "unknown lab 'nope'" in err and "hung-system" in err


# --------------------------------------------------------------------------------------------
# The text mode


def _play(lab_name: str, workdir: Path, lines: list[str]) -> tuple[bool, str]:
    lab = SHIPPED.find(lab_name)
    assert lab is not None
    out = io.StringIO()
    passed = TextLab(lab, workdir, io.StringIO("".join(f"{line}\n" for line in lines)),
                     out).play()
    return passed, out.getvalue()


def test_the_text_mode_grades_a_trainee_with_hints(tmp_path: Path) -> None:
    passed, out = _play("psw-restart", tmp_path, [
        "check",            # not yet: the explanation
        "hint",
        "kdump load", "wait-for event kexec",
        "hint", "hint",     # step 2 has two hints; a third would say so
        "hint",
        "stop all", "restart 0",
        "wait-for event dump_written timeout=60s",
    ])
    assert passed, out
    assert "Not yet: no kexec event with loaded = true yet" in out
    assert "Hint 1/1:" in out and "Hint 2/2:" in out and "No more hints" in out
    assert "Step 3 passed" in out
    assert out.rstrip().endswith("Score: 3/3 steps passed, 3 hints used")


def test_a_wrong_answer_fails_the_step_and_derived_answers_are_for_solve_scripts(
        tmp_path: Path) -> None:
    passed, out = _play("reading-a-vmcore", tmp_path, [
        "skip",
        "answer lock-owner workload_lock",   # refused: it would hand over the answer
        "rd workload_lock",
        "answer 0",
    ])
    assert not passed
    assert "refused: answer: read the dump and answer with the value itself" in out
    lock = load_image(program_path("kernel")).symbols["workload_lock"]
    assert f"workload_lock = {lock:#x}" in out
    assert "no attempts are left: the answer was 2" in out
    assert out.rstrip().endswith("Score: 0/2 steps passed, 1 failed, 1 skipped, 0 hints used")


def test_quit_and_end_of_input_end_the_lab(tmp_path: Path) -> None:
    passed, out = _play("panic-no-kdump", tmp_path, ["quit"])
    assert not passed and "Score: 0/6 steps passed" in out


# --------------------------------------------------------------------------------------------
# Checks


def test_answers_match_numbers_and_names() -> None:
    assert answer_matches("2", 2) and answer_matches("CPU 2", 2) and answer_matches("0x2", 2)
    assert not answer_matches("3", 2) and not answer_matches("two", 2)
    assert answer_matches("Purgatory  checksum", "purgatory checksum")
    assert answer_matches("purgatory checksum incorrect", "purgatory checksum")
    assert not answer_matches("os_info checksum purgatory checksum", "purgatory checksum")


def test_an_answer_check_counts_attempts() -> None:
    check = compile_check({"answer": {"event": "hang", "value": "cpu"}, "attempts": 1})
    assert isinstance(check, AnswerCheck)
    events = [HangEvent(t=1, cpu=3, hang="spin")]
    assert check.evaluate(CheckContext(events, answers=["3"])).ok
    late = check.evaluate(CheckContext(events, answers=["1", "3"]))
    assert not late.ok and "no attempts left: the answer was 3" in late.detail


def test_a_compare_check_reads_two_events() -> None:
    check = compile_check({"greater": {"event": "dump_written", "format": "s390",
                                       "value": "bytes"},
                           "than": {"event": "dump_written", "format": "elf", "value": "bytes"},
                           "times": 10})
    full = DumpWrittenEvent(t=1, cpu=0, format="s390", bytes=1000)
    assert not check.evaluate(CheckContext([full])).ok
    assert check.evaluate(CheckContext([full, DumpWrittenEvent(t=2, cpu=0, format="elf",
                                                               bytes=99)])).ok
    assert not check.evaluate(CheckContext([full, DumpWrittenEvent(t=2, cpu=0, format="elf",
                                                                   bytes=100)])).ok


def test_stage_checks_default_to_done_and_combine() -> None:
    check = compile_check({"all": [{"stage": "checks"},
                                   {"not": {"stage": "checks", "status": "failed"}}]})
    assert check.evaluate(CheckContext([StageEvent(t=1, cpu=0, stage="checks",
                                                   status="done")])).ok
    assert not check.evaluate(CheckContext([StageEvent(t=1, cpu=0, stage="checks",
                                                       status="failed")])).ok


def test_event_checks_look_at_the_current_step_unless_since_lab() -> None:
    hang = HangEvent(t=1, cpu=0, hang="spin")
    step = compile_check({"event": "hang"})
    lab = compile_check({"event": "hang", "since": "lab"})
    earlier = CheckContext([hang], step_event=1)  # the hang happened before this step
    assert not step.evaluate(earlier).ok and lab.evaluate(earlier).ok
    assert step.evaluate(CheckContext([hang])).ok
    with pytest.raises(CheckError, match="'since' belongs to"):
        compile_check({"status": "operating", "since": "lab"})


@pytest.mark.parametrize(("table", "key", "problem"), [
    ({"evnt": "hang"}, "evnt", "unknown check key 'evnt'"),
    ({"event": "hangs"}, "event", "unknown event kind 'hangs'"),
    ({"event": "hang", "locks": 1}, "locks", "hang events have the fields"),
    ({"stage": "checks", "colour": "red"}, "colour", "unknown check key 'colour'"),
    ({"console_contains": "x", "status": "operating"}, "status", "one form"),
    ({"answer": {"event": "hang"}}, "event", "needs 'value"),
    ({"all": []}, "all", "non-empty list"),
    ({"file_glob": "/etc/*"}, "file_glob", "relative"),
    ({"cpu_state": "stopped", "cpu": "0"}, "cpu", "CPU number"),
])
def test_bad_checks_name_the_key(table: dict, key: str, problem: str) -> None:
    with pytest.raises(CheckError) as caught:
        compile_check(table)
    assert caught.value.key == key and problem in str(caught.value)


# --------------------------------------------------------------------------------------------
# Broken lab files


GOOD = '''title = "A good lab"

[profile]
cpus = 2
memory = "128M"

[[steps]]
title = "Boot"
text = "Boot it."
setup = ["activate"]
check = { stage = "workload" }
hints = ["load 0100"]
explanation = "Load it."
solve = ["load 0100", "wait-for stage workload"]
'''


def _lab_dir(tmp_path: Path, files: dict[str, str]) -> Path:
    folder = tmp_path / "labs"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


BROKEN = {
    "invalid TOML": (GOOD.replace('title = "Boot"', 'title = "Boot'), 8, "invalid TOML"),
    "missing field": (GOOD.replace('explanation = "Load it."\n', ""), 7,
                      "step 1: missing 'explanation'"),
    "unknown solve command": (GOOD.replace('"load 0100", "wait', '"lod 0100", "wait'), 14,
                              "'lod 0100': unknown command 'lod' (did you mean 'load'?)"),
    "unknown setup command": (GOOD.replace('setup = ["activate"]', 'setup = ["activat"]'), 10,
                              "setup: 'activat': unknown command"),
    "bad command arguments": (GOOD.replace('"load 0100", "wait', '"load 0100 fast", "wait'), 14,
                              "unknown option 'fast'"),
    "unknown check key": (GOOD.replace('{ stage = "workload" }', '{ stag = "workload" }'), 11,
                          "check: unknown check key 'stag'"),
    "unknown event field": (GOOD.replace('{ stage = "workload" }',
                                         '{ event = "dump_written", size = 1 }'), 11,
                            "dump_written events have the fields"),
    "unknown step key": (GOOD.replace('hints = ["load 0100"]', 'hint = ["load 0100"]'), 12,
                         "step 1: unknown key 'hint'"),
    "unknown lab key": (GOOD.replace('title = "A good lab"', 'title = "A good lab"\nlevel = 2'),
                        2, "lab: unknown key 'level'"),
    "bad profile": (GOOD.replace("cpus = 2", "cpus = 99"), 4, "cpus = 99: must be 1 to 64"),
    "answer in setup": (GOOD.replace('setup = ["activate"]', 'setup = ["answer 1"]'), 10,
                        "'answer' belongs in a solve script"),
    "hints not a list": (GOOD.replace('hints = ["load 0100"]', 'hints = "load 0100"'), 12,
                         "'hints' must be a list of strings"),
}


@pytest.mark.parametrize("case", list(BROKEN), ids=list(BROKEN))
def test_a_broken_lab_is_named_with_its_line_and_the_others_still_load(tmp_path: Path,
                                                                       case: str) -> None:
    text, line, problem = BROKEN[case]
    folder = _lab_dir(tmp_path, {"01-good.toml": GOOD, "02-broken.toml": text,
                                 "03-good-too.toml": GOOD})
    catalogue = load_labs(folder)
    assert [lab.name for lab in catalogue.labs] == ["good", "good-too"]
    assert len(catalogue.errors) == 1
    error = catalogue.errors[0]
    assert error.startswith(f"{folder / '02-broken.toml'}:{line}: "), error
    assert problem in error, error


def test_a_lab_file_name_must_be_numbered(tmp_path: Path) -> None:
    folder = _lab_dir(tmp_path, {"good.toml": GOOD})
    expected = (f"{folder / 'good.toml'}:1: a lab file is named NN-name.toml "
                "(e.g. 01-hung-system.toml)")
    assert load_labs(folder).errors == (expected,)


def test_lab_list_reports_broken_files_on_stderr(tmp_path: Path, capsys,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _lab_dir(tmp_path, {"01-good.toml": GOOD, "02-bad.toml": "title = ["})
    monkeypatch.setattr("console.training.labs.labs_dir", lambda: folder)
    status, out, err = run(capsys, "lab", "list")
    assert status == 1
    assert out == "good  A good lab\n"
    assert err.startswith(f"dumplab lab: {folder / '02-bad.toml'}:1: invalid TOML")


def test_a_good_lab_from_a_file_runs(tmp_path: Path) -> None:
    lab = load_lab(_lab_dir(tmp_path, {"01-good.toml": GOOD}) / "01-good.toml")
    assert lab.steps[0].solve == ("load 0100", "wait-for stage workload")
