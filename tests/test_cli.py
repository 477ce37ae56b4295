"""`dumplab` on the command line: exit statuses, messages, JSON lines, scenarios."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import machine.lpar
from console.cli import known_scenarios, main, split_commands

ROOT = Path(__file__).resolve().parent.parent

needs_lpar = pytest.mark.skipif(not hasattr(machine.lpar, "Lpar"),
                                reason="machine/lpar.py has no class Lpar yet")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def json_lines(out: str) -> list[dict]:
    records = [json.loads(line) for line in out.splitlines()]
    for record in records:
        assert {"kind", "t"} <= set(record), record
    return records


# ---------------------------------------------------------------------------------------------
# Usage


def test_no_subcommand_without_a_terminal_points_to_headless_runs(capsys) -> None:
    """`dumplab` opens the console; without a terminal it says so in one line and exits 2."""
    status, out, err = run(capsys)
    assert (status, out) == (2, "")
    assert err.startswith("dumplab: the console needs a terminal")
    assert "dumplab run --scenario boot" in err


def test_help_exits_zero(capsys) -> None:
    status, out, _ = run(capsys, "run", "--help")
    assert status == 0
    assert "--scenario NAME" in out and "--json" in out


@pytest.mark.parametrize("argv", [
    ["run"],                                    # no commands
    ["run", "-c", "help", "--scenario", "boot"],  # two sources
    ["run", "-c", "help", "--cpus", "two"],
])
def test_usage_errors_exit_2(capsys, argv: list[str]) -> None:
    status, _, err = run(capsys, *argv)
    assert status == 2
    assert "usage: dumplab" in err


def test_bad_memory_size_exits_2(capsys) -> None:
    status, out, err = run(capsys, "run", "--memory", "12Q", "-c", "help")
    assert status == 2 and out == ""
    assert "--memory" in err and "bad size '12Q'" in err


def test_bad_cpu_count_exits_2(capsys) -> None:
    status, out, err = run(capsys, "run", "--cpus", "65", "-c", "help")
    assert (status, out) == (2, "")
    assert err.startswith("dumplab run: error: ") and "cpus" in err
    assert len(err.splitlines()) == 1


def test_unknown_scenario_lists_the_known_ones(capsys) -> None:
    status, out, err = run(capsys, "run", "--scenario", "nosuch")
    assert (status, out) == (2, "")
    assert err == ("dumplab run: error: unknown scenario 'nosuch' "
                   "(known: boot, hang-sadump, hang-sadump-corrupt-purgatory, "
                   "hang-sadump-corrupt-segment, hang-sadump-nokdump, hang-spin, hang-zipl-kdump, "
                   "panic-kdump, panic-nokdump, restart-kdump)\n")


def test_scenario_names_are_the_contract() -> None:
    assert {"boot", "hang-spin", "hang-sadump", "hang-zipl-kdump"} <= set(known_scenarios())


def test_unreadable_file_exits_2(capsys, tmp_path: Path) -> None:
    status, _, err = run(capsys, "run", str(tmp_path / "missing.cmds"))
    assert status == 2
    assert "cannot read" in err and "missing.cmds" in err


# ---------------------------------------------------------------------------------------------
# Failed commands: one line on stderr naming the line, exit 1


def test_unknown_command_is_one_line_and_exit_1(capsys, tmp_path: Path) -> None:
    status, _, err = run(capsys, "run", "--workdir", str(tmp_path), "-c", "help; lod 100")
    assert status == 1
    assert err == "dumplab: line 2 of -c: unknown command 'lod' (did you mean 'load'?)\n"


def test_script_file_errors_name_the_file_line(capsys, tmp_path: Path) -> None:
    script = tmp_path / "lab.cmds"
    script.write_text("# a lab\n\nhelp\nload zz\nhelp\n")
    status, out, err = run(capsys, "run", "--workdir", str(tmp_path), str(script))
    assert status == 1
    assert err == (f"dumplab: line 4 of {script}: load: bad device number 'zz' "
                   "(expected hex like 0100)\n")
    assert out.count("Commands (help COMMAND for details):") == 1  # the last help never ran


def test_process_exit_status_and_no_traceback(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "console.cli", "run", "--workdir", str(tmp_path),
                           "-c", "lod"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 1
    assert done.stderr == "dumplab: line 1 of -c: unknown command 'lod' (did you mean 'load'?)\n"


def test_json_command_results(capsys, tmp_path: Path) -> None:
    status, out, _ = run(capsys, "run", "--json", "--workdir", str(tmp_path), "-c",
                         "help\nhelp load")
    assert status == 0
    records = json_lines(out)
    assert [(r["kind"], r["line"], r["command"], r["ok"]) for r in records] == [
        ("command", 1, "help", True), ("command", 2, "help load", True)]
    assert records[1]["message"].startswith("usage: load DEVNO")


@pytest.mark.parametrize(("text", "lines"), [
    ("a; b", ["a", " b"]),
    ("a\nb;c", ["a", "b", "c"]),
    ('oscmd "x; y"; status', ['oscmd "x; y"', " status"]),
    ("oscmd 'it;s'", ["oscmd 'it;s'"]),
])
def test_split_commands_respects_quotes(text: str, lines: list[str]) -> None:
    assert split_commands(text) == lines


# ---------------------------------------------------------------------------------------------
# Scenarios on the real LPAR


@needs_lpar
def test_boot_scenario_json(capsys, tmp_path: Path) -> None:
    status, out, err = run(capsys, "run", "--scenario", "boot", "--json",
                           "--workdir", str(tmp_path))
    assert status == 0, err
    records = json_lines(out)
    commands = [r for r in records if r["kind"] == "command"]
    assert [c["command"] for c in commands] == ["activate", "load 0100", "wait-for stage workload"]
    assert all(c["ok"] for c in commands)
    assert any(r["kind"] == "stage" and r.get("stage") == "workload" and r.get("status") == "done"
               for r in records)
    assert any(r["kind"] == "console" for r in records)
    times = [r["t"] for r in records]
    assert times == sorted(times), "virtual time went backwards"


@needs_lpar
def test_hang_spin_scenario_with_overrides(capsys, tmp_path: Path) -> None:
    status, out, err = run(capsys, "run", "--scenario", "hang-spin", "--cpus", "2",
                           "--memory", "128M", "--json", "--workdir", str(tmp_path))
    assert status == 0, err
    records = json_lines(out)
    activate = next(r for r in records if r["kind"] == "command")
    assert activate["data"]["cpus"] == 2 and activate["data"]["memory"] == 128 << 20
    assert any(r["kind"] == "hang" for r in records)
    assert [r["command"] for r in records if r["kind"] == "command"][-1] == "run 20ms"


@needs_lpar
def test_scenarios_are_deterministic(capsys, tmp_path: Path) -> None:
    outputs = []
    for attempt in ("a", "b"):
        status, out, err = run(capsys, "run", "--scenario", "hang-spin", "--json",
                               "--workdir", str(tmp_path / attempt))
        assert status == 0, err
        outputs.append(out.replace(str(tmp_path / attempt), "WORKDIR"))
    assert outputs[0] == outputs[1]


@needs_lpar
def test_readable_output(capsys, tmp_path: Path) -> None:
    status, out, err = run(capsys, "run", "--scenario", "boot", "--workdir", str(tmp_path))
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("LPAR activated with profile default")
    assert any(line.startswith("Load of device 0100 started (normal") for line in lines)
    assert any(line.startswith("[") and "] " in line for line in lines), "no console message"
    assert lines[-1].startswith("Stage workload done at t=")
    assert not any(line.startswith("{") for line in lines)


@needs_lpar
def test_timeout_fails_with_the_line(capsys, tmp_path: Path) -> None:
    status, _, err = run(capsys, "run", "--workdir", str(tmp_path), "-c",
                         "activate; wait-for stage nosuch timeout=1ms; status")
    assert status == 1
    assert err == ("dumplab: line 2 of -c: wait-for stage nosuch: timed out after 1ms "
                   "(virtual)\n")
