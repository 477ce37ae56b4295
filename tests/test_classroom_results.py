"""Lab results out of a classroom: the record a served console writes per lab attempt, and
`dumplab results DIR` in its four formats."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from xml.etree import ElementTree

from console.classroom.agent import LabAttempt, install_lab_recorder
from console.classroom.channel import RESULTS
from console.control.session import Session
from console.training.labs import LabRun, load_labs
from console.tui.widgets.lab.driver import LabDriver, StepReport

ROOT = Path(__file__).resolve().parent.parent


def results(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "console.cli", "results", *argv], cwd=ROOT,
                          capture_output=True, text=True, timeout=30, check=False)


def attempt_record(tmp_path: Path) -> dict:
    """A trainee's attempt at the first lab: step 1 passed with a hint, step 2 failed, the
    solve key used, then the console closed the lab."""
    lab = load_labs().labs[0]
    workdir = tmp_path / "session-20261207-120000-0badcafe"
    workdir.mkdir()
    run = LabRun(lab, Session(workdir))
    agent = SimpleNamespace(trainee="Ada", seat="0badcafe", workdir=workdir)
    attempt = LabAttempt(agent, SimpleNamespace(run=run))  # type: ignore[arg-type]
    assert run.hint() is not None
    run.finish_step("passed")
    run.finish_step("failed")
    attempt.solve_used = True
    assert attempt.progress()["step"] == f"3/{len(lab.steps)}"
    attempt.record("abandoned")
    attempt.record("abandoned")  # once only
    run.close()
    (line,) = (tmp_path / RESULTS).read_text().splitlines()
    return json.loads(line)


def test_a_lab_attempt_is_one_json_line_in_the_base_directory(tmp_path: Path) -> None:
    record = attempt_record(tmp_path)
    lab = load_labs().labs[0]
    assert record["trainee"] == "Ada" and record["lab"] == lab.stem
    assert record["session"] == "session-20261207-120000-0badcafe"
    assert record["outcome"] == "abandoned" and record["solve_used"] is True
    assert [s["outcome"] for s in record["steps"]] == ["passed", "failed"]
    assert record["steps"][0]["hints_used"] == 1
    assert (record["passed"], record["failed"], record["total"]) == (1, 1, len(lab.steps))
    assert record["seconds"] >= 0 and record["ended"] >= record["started"]


def test_the_console_s_lab_driver_is_recorded(tmp_path: Path) -> None:
    """In a served console the agent wraps the console's own LabDriver: a finished lab and
    an abandoned one are each one record; the console still gets every report."""
    lab = load_labs().labs[0]
    agent = SimpleNamespace(trainee="Bob", seat="", lab=None)
    uninstall = install_lab_recorder(agent)
    try:
        for name, finish in (("a", True), ("b", False)):
            agent.workdir = tmp_path / f"session-{name}"
            agent.workdir.mkdir()
            reports: list[StepReport] = []
            driver = LabDriver(lab, Session(agent.workdir), reports.append, lambda o: None)
            assert agent.lab is not None and agent.lab.driver is driver
            if finish:
                for _ in lab.steps:
                    driver.run.finish_step("passed")
                driver.on_report(StepReport(len(lab.steps) - 1, "finished",
                                            score=driver.run.score()))
                assert [r.kind for r in reports] == ["finished"]
            driver.close()
    finally:
        uninstall()
    assert LabDriver.__init__.__name__ == "__init__"  # unwrapped
    records = [json.loads(line) for line in (tmp_path / RESULTS).read_text().splitlines()]
    assert [(r["session"], r["outcome"], r["passed"]) for r in records] == [
        ("session-a", "finished", len(lab.steps)), ("session-b", "abandoned", 0)]


def test_results_in_every_format(tmp_path: Path) -> None:
    record = attempt_record(tmp_path)
    bob = dict(record, trainee="Bob", outcome="finished", solve_used=False,
               steps=[{"title": s.title, "outcome": "passed", "hints_used": 0}
                      for s in load_labs().labs[0].steps],
               passed=record["total"], failed=0)
    with (tmp_path / RESULTS).open("a") as handle:
        handle.write(json.dumps(bob) + "\n{not json\n")

    text = results(str(tmp_path))
    assert text.returncode == 0
    assert text.stderr.strip() == (f"dumplab results: warning: 1 line(s) of "
                                   f"{tmp_path / RESULTS} are not result records and were "
                                   "skipped")
    assert text.stdout.splitlines()[-1] == ("2 attempt(s) by 2 trainee(s); 1 with every step "
                                            "passed")

    rows = list(csv.DictReader(io.StringIO(results(str(tmp_path), "--format", "csv").stdout)))
    assert [(r["trainee"], r["outcome"], r["passed"]) for r in rows] == [
        ("Ada", "abandoned", "1"), ("Bob", "finished", str(record["total"]))]

    data = json.loads(results(str(tmp_path), "--format", "json").stdout)
    assert [a["trainee"] for a in data["attempts"]] == ["Ada", "Bob"]

    suites = ElementTree.fromstring(results(str(tmp_path), "--format", "junit").stdout)
    ada, bob_suite = suites.findall("testsuite")
    total = record["total"]
    assert ada.get("name") == f"Ada/{record['lab']}" and ada.get("tests") == str(total)
    assert (ada.get("failures"), ada.get("skipped")) == ("1", str(total - 2))
    assert ada.find("testcase/failure") is not None
    assert (bob_suite.get("failures"), bob_suite.get("skipped")) == ("0", "0")


def test_no_results_is_one_line_and_exit_1(tmp_path: Path) -> None:
    done = results(str(tmp_path))
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.splitlines() == [(f"dumplab results: no results in {tmp_path} (no "
                                        f"{RESULTS}: no lab was finished or abandoned there)")]
    assert results(str(tmp_path), "--format", "xml").returncode == 2
