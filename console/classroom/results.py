"""`dumplab results DIR`: a class's lab results, from the JSON lines its consoles wrote.

Each served console appends one record per lab attempt to DIR/results.jsonl
(console/classroom/agent.py): trainee, lab, outcome (finished, broken, abandoned), each step's
outcome and hints, whether the solve key was used, times and score. This command summarizes
them as a table, CSV, JSON, or JUnit XML (one test suite per attempt, one test case per step),
which a CI or a learning-management system can take.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path
from typing import Any, TextIO
from xml.etree import ElementTree

from console.classroom.channel import RESULTS
from console.control.exits import EXIT_FAILED, EXIT_OK

FORMATS = ("text", "csv", "json", "junit")
COLUMNS = ("trainee", "lab", "outcome", "passed", "total", "failed", "skipped", "hints_used",
           "solve_used", "seconds", "started", "session")
MAX_RECORD_BYTES = 1 << 20  # a line longer than this is not one of ours


def add_results_parser(subcommands: Any) -> argparse.ArgumentParser:
    parser = subcommands.add_parser(
        "results", help="summarize a classroom's lab results",
        description="Summarize the lab attempts recorded by `dumplab serve` consoles in "
                    f"DIR/{RESULTS} (DIR is the server's --workdir). See docs/CLASSROOM.md.")
    parser.add_argument("directory", type=Path, metavar="DIR",
                        help="the classroom's base directory")
    parser.add_argument("--format", choices=FORMATS, default="text",
                        help="text (default), csv, json, or junit (JUnit XML)")
    return parser


def load_records(path: Path) -> tuple[list[dict[str, Any]], int]:
    """The well-formed records of a results file, and how many lines were not."""
    records, bad = [], 0
    with path.open("rb") as handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                record = json.loads(line) if len(line) <= MAX_RECORD_BYTES else None
            except ValueError:
                record = None
            if isinstance(record, dict) and isinstance(record.get("lab"), str):
                records.append(record)
            else:
                bad += 1
    records.sort(key=lambda r: (str(r.get("trainee", "")), str(r.get("lab")),
                                _number(r.get("started"))))
    return records, bad


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def _iso(stamp: Any) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(_number(stamp))) if stamp else ""


def row(record: dict[str, Any]) -> dict[str, str]:
    values = {column: record.get(column, "") for column in COLUMNS}
    values["started"] = _iso(record.get("started"))
    return {column: str(value) for column, value in values.items()}


def results_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    path = args.directory / RESULTS
    try:
        records, bad = load_records(path)
    except FileNotFoundError:
        err.write(f"dumplab results: no results in {args.directory} (no {RESULTS}: no lab "
                  "was finished or abandoned there)\n")
        return EXIT_FAILED
    except OSError as error:
        err.write(f"dumplab results: cannot read {path}: {error.strerror or error}\n")
        return EXIT_FAILED
    if bad:
        err.write(f"dumplab results: warning: {bad} line(s) of {path} are not result records "
                  "and were skipped\n")
    WRITERS[args.format](records, out)
    return EXIT_OK


def write_text(records: list[dict[str, Any]], out: TextIO) -> None:
    rows = [row(r) for r in records]
    shown = ("trainee", "lab", "outcome", "passed", "total", "hints_used", "solve_used",
             "seconds")
    widths = {c: max([len(c)] + [len(r[c]) for r in rows]) for c in shown}
    out.write("  ".join(c.ljust(widths[c]) for c in shown).rstrip() + "\n")
    out.writelines("  ".join(r[c].ljust(widths[c]) for c in shown).rstrip() + "\n" for r in rows)
    trainees = {r["trainee"] for r in rows}
    complete = sum(1 for r in records if r.get("outcome") == "finished"
                   and r.get("passed") == r.get("total"))
    out.write(f"{len(records)} attempt(s) by {len(trainees)} trainee(s); {complete} with every "
              "step passed\n")


def write_csv(records: list[dict[str, Any]], out: TextIO) -> None:
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow(row(record))


def write_json(records: list[dict[str, Any]], out: TextIO) -> None:
    json.dump({"attempts": records}, out, indent=1)
    out.write("\n")


def write_junit(records: list[dict[str, Any]], out: TextIO) -> None:
    """One <testsuite> per attempt (named trainee/lab), one <testcase> per step: passed,
    <failure>, or <skipped>; steps the attempt never reached are skipped too."""
    suites = ElementTree.Element("testsuites", name="DumpLab classroom")
    for record in records:
        steps = [s for s in record.get("steps", []) if isinstance(s, dict)]
        total = int(_number(record.get("total")) or len(steps))
        suite = ElementTree.SubElement(
            suites, "testsuite", name=f"{record.get('trainee', '?')}/{record['lab']}",
            timestamp=_iso(record.get("started")), time=str(_number(record.get("seconds"))))
        failures = skipped = 0
        for index in range(total):
            step = steps[index] if index < len(steps) else {"title": "(not reached)",
                                                            "outcome": "not reached"}
            case = ElementTree.SubElement(
                suite, "testcase", classname=str(record["lab"]),
                name=f"step {index + 1}: {step.get('title', '')}")
            outcome = str(step.get("outcome", ""))
            if outcome == "failed":
                failures += 1
                ElementTree.SubElement(case, "failure", message="step failed")
            elif outcome != "passed":
                skipped += 1
                ElementTree.SubElement(case, "skipped", message=outcome)
            hints = step.get("hints_used", 0)
            if hints:
                ElementTree.SubElement(case, "system-out").text = f"hints used: {hints}"
        suite.set("tests", str(total))
        suite.set("failures", str(failures))
        suite.set("skipped", str(skipped))
        suite.set("errors", "0")
        if record.get("solve_used"):
            ElementTree.SubElement(suite, "system-out").text = "the solve key was used"
    ElementTree.indent(suites)
    out.write('<?xml version="1.0" encoding="utf-8"?>\n')
    out.write(ElementTree.tostring(suites, encoding="unicode"))
    out.write("\n")


WRITERS = {"text": write_text, "csv": write_csv, "json": write_json, "junit": write_junit}
