"""The operator command language: parsing every command, and running it on the real LPAR."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

import machine.lpar
from console.control.commands import (
    COMMANDS,
    WORKFLOW_STAGES,
    CommandError,
    format_duration,
    help_text,
    hex_dump,
    parse,
    parse_duration,
    reference_markdown,
)
from console.control.session import Session

ROOT = Path(__file__).resolve().parent.parent
COMMANDS_DOC = ROOT / "docs" / "COMMANDS.md"
DOC_BEGIN, DOC_END = "<!-- BEGIN GENERATED", "<!-- END GENERATED -->"

needs_lpar = pytest.mark.skipif(not hasattr(machine.lpar, "Lpar"),
                                reason="machine/lpar.py has no class Lpar yet")

# ---------------------------------------------------------------------------------------------
# Parsing: every command, with its arguments


GOOD_LINES = [
    ("activate", "activate", {"profile": None}),
    ("activate small", "activate", {"profile": "small"}),
    ("activate ./lab/p.toml", "activate", {"profile": "./lab/p.toml"}),
    ("deactivate", "deactivate", {}),
    ("load 0100", "load", {"devno": 0x100, "clear": False, "store_status": False, "parm": ""}),
    ("load 200 store", "load", {"devno": 0x200, "clear": False, "store_status": True, "parm": ""}),
    ("load 0x0200 clear parm=A1", "load",
     {"devno": 0x200, "clear": True, "store_status": False, "parm": "A1"}),
    ("load 0.0.fffe store parm=X.1", "load",
     {"devno": 0xFFFE, "clear": False, "store_status": True, "parm": "X.1"}),
    ("LOAD 1 CLEAR", "load", {"devno": 1, "clear": True, "store_status": False, "parm": ""}),
    ("stop", "stop", {"cpu": None}),
    ("stop all", "stop", {"cpu": None}),
    ("stop 3", "stop", {"cpu": 3}),
    ("start", "start", {"cpu": None}),
    ("start 63", "start", {"cpu": 63}),
    ("restart", "restart", {"cpu": 0}),
    ("restart 2", "restart", {"cpu": 2}),
    ("reset normal", "reset", {"clear": False}),
    ("reset clear", "reset", {"clear": True}),
    ("store", "store", {"cpu": 0}),
    ("store 1", "store", {"cpu": 1}),
    ("oscmd kexec -p", "oscmd", {"text": "kexec -p", "priority": False}),
    ("oscmd --priority echo  c > /proc/sysrq-trigger", "oscmd",
     {"text": "echo  c > /proc/sysrq-trigger", "priority": True}),
    ("oscmd 'it''s'", "oscmd", {"text": "it''s", "priority": False}),
    ("fault hang spin", "fault", {"words": ["hang", "spin"]}),
    ("fault hang DEADLOCK", "fault", {"words": ["hang", "deadlock"]}),
    ("fault panic", "fault", {"words": ["panic"]}),
    ("fault corrupt segment initrd", "fault", {"words": ["corrupt", "segment", "initrd"]}),
    ("fault unload-kdump", "fault", {"words": ["unload-kdump"]}),
    ("fault kdump-save-fails", "fault", {"words": ["kdump-save-fails"]}),
    ("kdump load", "kdump", {"action": "load"}),
    ("kdump", "kdump", {"action": "status"}),
    ("fault panic Oops in module x", "fault", {"words": ["panic", "Oops in module x"]}),
    ("run 250us", "run", {"ns": 250_000}),
    ("run 10ms", "run", {"ns": 10_000_000}),
    ("run 2s", "run", {"ns": 2_000_000_000}),
    ("break", "break", {"action": "list", "where": None}),
    ("break list", "break", {"action": "list", "where": None}),
    ("break spin_lock", "break", {"action": "set", "where": "spin_lock"}),
    ("break clear 0x11140", "break", {"action": "clear", "where": "0x11140"}),
    ("break clear", "break", {"action": "clear", "where": "all"}),
    ("step", "step", {"count": 1, "cpu": 0}),
    ("step 10", "step", {"count": 10, "cpu": 0}),
    ("step cpu=3 5", "step", {"count": 5, "cpu": 3}),
    ("step back", "step", {"count": 1, "cpu": 0, "back": True}),
    ("step back 100 cpu=2", "step", {"count": 100, "cpu": 2, "back": True}),
    ("step line cpu=1", "step", {"count": 1, "cpu": 1, "line": True}),
    ("u /s purgatory:purgatory_main 4", "u",
     {"where": "purgatory:purgatory_main", "count": 4, "source": True}),
    ("finish", "finish", {"cpu": 0}),
    ("reverse-continue", "reverse-continue", {}),
    ("finish cpu=2", "finish", {"cpu": 2}),
    ("checkpoint", "checkpoint", {"action": "list", "name": None}),
    ("checkpoint save before-dump", "checkpoint", {"action": "save", "name": "before-dump"}),
    ("checkpoint restore A", "checkpoint", {"action": "restore", "name": "A"}),
    ("rewind Notes", "rewind", {"stage": "notes"}),
    ("stage-stop", "stage-stop", {"stages": None}),
    ("stage-stop off", "stage-stop", {"stages": []}),
    ("stage-stop notes,swap", "stage-stop", {"stages": ["notes", "swap"]}),
    ("incident", "incident", {"number": None}),
    ("incident show 2", "incident", {"number": 2}),
    ("regs", "regs", {"cpu": 0}),
    ("regs 2", "regs", {"cpu": 2}),
    ("r 10000", "r", {"address": 0x10000, "length": 0x40}),
    ("u spin_lock", "u", {"where": "spin_lock", "count": 16}),
    ("u 0x11140 3", "u", {"where": "0x11140", "count": 3}),
    ("r 0x1200.100", "r", {"address": 0x1200, "length": 0x100}),
    ("r 0.1000", "r", {"address": 0, "length": 0x1000}),
    ("status", "status", {}),
    ("wait-for console Kernel panic", "wait-for",
     {"what": "console", "text": "Kernel panic", "timeout": 5_000_000_000}),
    ('wait-for console "two  spaces" timeout=1ms', "wait-for",
     {"what": "console", "text": "two  spaces", "timeout": 1_000_000}),
    ("wait-for stage workload", "wait-for",
     {"what": "stage", "name": "workload", "timeout": 5_000_000_000}),
    ("wait-for event hang timeout=2s", "wait-for",
     {"what": "event", "name": "hang", "timeout": 2_000_000_000}),
    ("wait-for wait", "wait-for", {"what": "wait", "cpu": None, "timeout": 5_000_000_000}),
    ("wait-for wait 1 timeout=20ms", "wait-for", {"what": "wait", "cpu": 1, "timeout": 20_000_000}),
    ("wait-for stopped", "wait-for", {"what": "stopped", "timeout": 5_000_000_000}),
    ("gdbserver", "gdbserver", {"action": "status"}),
    ("gdbserver 1234", "gdbserver",
     {"action": "start", "host": "127.0.0.1", "port": 1234, "wait": False}),
    ("gdbserver 0.0.0.0:1234 wait", "gdbserver",
     {"action": "start", "host": "0.0.0.0", "port": 1234, "wait": True}),
    ("gdbserver stop", "gdbserver", {"action": "stop"}),
    ("gdbserver write-register 1 r15 ff", "gdbserver",
     {"action": "write-register", "cpu": 1, "name": "r15", "value": 0xFF}),
    ("gdbserver write-memory 0 10400 0a0b", "gdbserver",
     {"action": "write-memory", "cpu": 0, "address": 0x10400, "data": b"\x0a\x0b"}),
    ("help", "help", {"topic": None}),
    ("help Load", "help", {"topic": "load"}),
]


@pytest.mark.parametrize(("line", "name", "args"), GOOD_LINES)
def test_parse(line: str, name: str, args: dict) -> None:
    command = parse(line)
    assert (command.name, dict(command.args)) == (name, args)
    assert command.text == line.strip()


# ---------------------------------------------------------------------------------------------
# Parsing: every bad input names the problem in one line

BREAK_USAGE = "break [ADDR|SYMBOL] | break clear ADDR|SYMBOL|all"

BAD_LINES = [
    ("", "empty command"),
    ("   # just a comment", "empty command"),
    ("lod 0100", "unknown command 'lod' (did you mean 'load'?)"),
    ("xyzzy", "unknown command 'xyzzy' (type 'help' for the list)"),
    ("activate a b", "activate: unexpected 'b' (usage: activate [PROFILE])"),
    ("deactivate now", "deactivate: unexpected 'now' (usage: deactivate)"),
    ("load", "load: missing device number (usage: load DEVNO [clear] [store] [parm=X])"),
    ("load zz", "load: bad device number 'zz' (expected hex like 0100)"),
    ("load 12345", "load: bad device number '12345' (expected hex like 0100)"),
    ("load 0100 fast", "load: unknown option 'fast' (expected clear, store or parm=X)"),
    ("load 0100 clear=1", "load: unknown option 'clear=1' (expected clear, store or parm=X)"),
    ("load 0100 parm", "load: unknown option 'parm' (expected clear, store or parm=X)"),
    ("load 0100 store store", "load: 'store' given twice"),
    ("load 0100 clear store", "load: 'store' needs a normal load, not 'clear'"),
    ("load 0100 parm=TOOLONGXX",
     "load: bad load parameter 'TOOLONGXX' (expected 1-8 letters, digits or . @ # $)"),
    ("load 0100 parm=", "load: bad load parameter '' (expected 1-8 letters, digits or . @ # $)"),
    ("stop x", "stop: bad CPU 'x' (expected a CPU number 0-63 or 'all')"),
    ("stop 64", "stop: bad CPU '64' (expected a CPU number 0-63 or 'all')"),
    ("stop -1", "stop: bad CPU '-1' (expected a CPU number 0-63 or 'all')"),
    ("stop ²", "stop: bad CPU '²' (expected a CPU number 0-63 or 'all')"),
    ("start 1 2", "start: unexpected '2' (usage: start [CPU|all])"),
    ("restart all", "restart: bad CPU 'all' (expected a CPU number 0-63)"),
    ("reset", "reset: expected 'normal' or 'clear' (usage: reset normal|clear)"),
    ("reset hard", "reset: expected 'normal' or 'clear' (usage: reset normal|clear)"),
    ("store cpu0", "store: bad CPU 'cpu0' (expected a CPU number 0-63)"),
    ("oscmd", "oscmd: missing TEXT (usage: oscmd [--priority] TEXT...)"),
    ("oscmd --priority", "oscmd: missing TEXT (usage: oscmd [--priority] TEXT...)"),
    ("fault", ("fault: missing fault (expected hang, panic, corrupt, unload-kdump or "
               "kdump-save-fails) (usage: fault hang KIND | panic [TEXT] | corrupt WHAT | "
               "unload-kdump | kdump-save-fails)")),
    ("kdump reload", "kdump: expected one of load, unload or status (usage: kdump [load|unload|status])"),
    ("fault crash", ("fault: unknown fault 'crash' (expected hang, panic, corrupt, "
                     "unload-kdump or kdump-save-fails)")),
    ("fault kdump-save-fails now", "fault: kdump-save-fails takes no arguments"),
    ("fault corrupt", "fault: missing corrupt target (expected purgatory, os_info or segment)"),
    ("fault corrupt segment 7",
     "fault: unknown segment '7' (expected 0, 1, 2, kernel, elfcorehdr or initrd)"),
    ("fault hang", "fault: missing hang kind (expected spin, wait, deadlock or loop)"),
    ("fault hang forever", "fault: unknown hang 'forever' (expected spin, wait, deadlock or loop)"),
    ("run", "run: missing DURATION (usage: run DURATION)"),
    ("run 10", ("run: bad duration '10' (expected a number and a unit: ns, us, ms or s, "
               "like 10ms)")),
    ("run 0ms", ("run: bad duration '0ms' (expected a number and a unit: ns, us, ms or s, "
                "like 10ms)")),
    ("run 5 ms", "run: unexpected 'ms' (usage: run DURATION)"),
    ("break a b", f"break: unexpected 'b' (usage: {BREAK_USAGE})"),
    ("gdbserver 70000", ("gdbserver: bad address '70000' (expected [ADDR:]PORT, like 1234 or "
                         "127.0.0.1:1234, PORT 1-65535)")),
    ("gdbserver host:", ("gdbserver: bad address 'host:' (expected [ADDR:]PORT, like 1234 or "
                         "127.0.0.1:1234, PORT 1-65535)")),
    ("gdbserver write-memory 0 10 abc", (
        "gdbserver: write-memory needs CPU, a hex real address and hex bytes (usage: "
        "gdbserver [ADDR:]PORT [wait] | gdbserver wait | gdbserver stop | gdbserver | "
        "gdbserver write-register CPU NAME HEX | gdbserver write-memory CPU ADDR HEX)")),
    ("break clear a b", f"break: unexpected 'b' (usage: {BREAK_USAGE})"),
    ("u", "u: missing ADDR or SYMBOL (usage: u [/s] ADDR|SYMBOL [N])"),
    ("u spin_lock 0", "u: bad count '0' (expected 1-200)"),
    ("u spin_lock 5 6", "u: unexpected '6' (usage: u [/s] ADDR|SYMBOL [N])"),
    ("step 0", "step: bad count '0' (expected 1-1000000)"),
    ("step many", "step: bad count 'many' (expected 1-1000000)"),
    ("step 1 2", "step: unexpected '2' (usage: step [back|line] [N] [cpu=C])"),
    ("step cpu=x", "step: bad CPU 'x' (expected a CPU number 0-63)"),
    ("step back 0", "step: bad count '0' (expected 1-1000000)"),
    ("checkpoint save", ("checkpoint: save: missing NAME "
                         "(usage: checkpoint save NAME | list | restore NAME)")),
    ("checkpoint drop A", ("checkpoint: expected save, list or restore "
                           "(usage: checkpoint save NAME | list | restore NAME)")),
    ("checkpoint save a/b", "checkpoint: bad name 'a/b' (1-40 letters, digits, - _ .)"),
    ("rewind", "rewind: missing STAGE (usage: rewind STAGE)"),
    ("finish 2", "finish: unexpected '2' (usage: finish [cpu=C])"),
    ("reverse-continue 1", "reverse-continue: unexpected '1' (usage: reverse-continue)"),
    ("step line 5", "step: line takes only cpu=C (usage: step [back|line] [N] [cpu=C])"),
    ("stage-stop lunch", ("stage-stop: unknown stage 'lunch' (expected on, off or stages from: "
                          + ", ".join(WORKFLOW_STAGES + ("ipl", "boot", "workload",
                                                         "workload-filled", "kexec-load"))
                          + ")")),
    ("incident show x", ("incident: expected 'list' or 'show N' "
                         "(usage: incident [list] | incident show N)")),
    ("regs all", "regs: bad CPU 'all' (expected a CPU number 0-63)"),
    ("r", "r: missing ADDR (usage: r ADDR[.LEN])"),
    ("r xyz", "r: bad address 'xyz' (expected hex like 10000)"),
    ("r 100.", "r: bad length '' (expected hex like 40)"),
    ("r 100.0", "r: bad length '0' (expected hex like 40)"),
    ("r 100.1001", "r: length 0x1001 too large (at most 0x1000)"),
    ("r 100 200", "r: unexpected '200' (usage: r ADDR[.LEN])"),
    ("status now", "status: unexpected 'now' (usage: status)"),
    ("wait-for", ("wait-for: missing what to wait for (console, stage, event, wait or stopped) "
                 f"(usage: {COMMANDS['wait-for'].usage})")),
    ("wait-for godot", ("wait-for: cannot wait for 'godot' (expected console, stage, event, "
                       "wait or stopped)")),
    ("wait-for console", f"wait-for: console: missing TEXT (usage: {COMMANDS['wait-for'].usage})"),
    ("wait-for stage", f"wait-for: stage: expected one NAME (usage: {COMMANDS['wait-for'].usage})"),
    ("wait-for event a b", ("wait-for: event: expected one KIND "
                           f"(usage: {COMMANDS['wait-for'].usage})")),
    ("wait-for wait x", "wait-for: bad CPU 'x' (expected a CPU number 0-63)"),
    ("wait-for stopped 1", f"wait-for: unexpected '1' (usage: {COMMANDS['wait-for'].usage})"),
    ("wait-for stage x timeout=soon", ("wait-for: bad timeout 'soon' (expected a number and a "
                                      "unit: ns, us, ms or s, like 10ms)")),
    ("wait-for stage timeout=1s x", ("wait-for: timeout=DURATION must come last "
                                    f"(usage: {COMMANDS['wait-for'].usage})")),
    ('wait-for console "unclosed', "wait-for: unbalanced quotes"),
    ("help lod", "help: unknown command 'lod' (did you mean 'load'?)"),
    ("help load now", "help: unexpected 'now' (usage: help [COMMAND])"),
]


@pytest.mark.parametrize(("line", "message"), BAD_LINES)
def test_parse_refuses_with_one_line(line: str, message: str) -> None:
    with pytest.raises(CommandError) as caught:
        parse(line)
    assert str(caught.value) == message
    assert "\n" not in str(caught.value)


def test_every_command_has_good_and_bad_parse_cases() -> None:
    bad_words = {line.split()[0].lower() for line, _ in BAD_LINES if line.strip()[:1].isalpha()}
    good_words = {name for _, name, _ in GOOD_LINES}
    assert set(COMMANDS) - bad_words == set(), "a command has no bad-input case"
    assert set(COMMANDS) - good_words == set(), "a command has no parse case"


# ---------------------------------------------------------------------------------------------
# Values, help and the documentation


@pytest.mark.parametrize(("text", "ns"), [
    ("1ns", 1), ("250us", 250_000), ("10ms", 10_000_000), ("2s", 2_000_000_000),
    ("0.1s", 100_000_000), ("1.5ms", 1_500_000), ("10MS", 10_000_000),
    ("0s", None), ("10", None), ("ms", None), ("1.s", None), ("-1ms", None), ("1h", None),
])
def test_parse_duration(text: str, ns: int | None) -> None:
    assert parse_duration(text) == ns


@pytest.mark.parametrize(("ns", "text"), [
    (5_000_000_000, "5s"), (20_000_000, "20ms"), (250_000, "250us"), (1_500_000, "1500us"),
    (7, "7ns"),
])
def test_format_duration(ns: int, text: str) -> None:
    assert format_duration(ns) == text


def test_hex_dump_shows_address_words_and_text() -> None:
    lines = hex_dump(0x10000, b"Hello, world!\x00\x01\x02" + b"AB")
    assert lines == [
        "0000000000010000  48656c6c 6f2c2077 6f726c64 21000102  |Hello, world!...|",
        "0000000000010010  4142                                 |AB|",
    ]


def test_help_lists_every_usage_line() -> None:
    listing = help_text()
    for spec in COMMANDS.values():
        assert spec.usage in listing
        assert spec.summary in listing


def test_help_for_one_command() -> None:
    text = help_text("load")
    assert text.startswith("usage: load DEVNO [clear] [store] [parm=X]\n")
    assert "as a stand-alone dump requires" in " ".join(text.split())


def test_commands_doc_matches_the_table() -> None:
    doc = COMMANDS_DOC.read_text(encoding="utf-8")
    head, _, rest = doc.partition(DOC_BEGIN)
    marker_line, _, rest = rest.partition("\n")
    generated, _, tail = rest.partition(DOC_END)
    assert marker_line and tail, "docs/COMMANDS.md lost its generated-section markers"
    if os.environ.get("DUMPLAB_UPDATE_DOCS"):
        COMMANDS_DOC.write_text(
            f"{head}{DOC_BEGIN}{marker_line}\n{reference_markdown()}{DOC_END}{tail}",
            encoding="utf-8")
        generated = reference_markdown()
    assert generated == reference_markdown(), (
        "docs/COMMANDS.md is out of date: rerun this test with DUMPLAB_UPDATE_DOCS=1")
    for spec in COMMANDS.values():
        assert f"### `{spec.name}`" in doc and spec.usage in doc


# ---------------------------------------------------------------------------------------------
# Execution on the real LPAR


@pytest.fixture
def session(tmp_path: Path):
    with Session(tmp_path / "work") as running:
        yield running


@pytest.fixture
def booted_session(session: Session) -> Session:
    for line in ("activate", "load 0100", "wait-for stage workload"):
        result = session.execute(line)
        assert result.ok, f"{line}: {result.message}"
    return session


def assert_refused(session: Session, line: str, *fragments: str) -> str:
    result = session.execute(line)
    assert not result.ok, f"{line!r} was accepted: {result.message}"
    assert result.message and "\n" not in result.message
    assert "Traceback" not in result.message
    for fragment in fragments:
        assert fragment in result.message
    return result.message


def test_status_and_help_need_no_lpar(session: Session) -> None:
    status = session.execute("status")
    assert status.ok and status.message == "LPAR status: not activated"
    assert session.execute("help").ok


@pytest.mark.parametrize("line", [
    "deactivate", "load 0100", "stop", "start", "restart", "reset normal", "store", "oscmd x",
    "fault hang spin", "run 1ms", "step", "regs", "r 0", "wait-for stopped",
])
def test_operations_before_activation_are_refused(session: Session, line: str) -> None:
    assert_refused(session, line, f"{parse(line).name}: the LPAR is not activated")


def test_parse_errors_are_failed_results_in_the_history(session: Session) -> None:
    result = session.execute("lod 0100")
    assert not result.ok
    assert result.message == "unknown command 'lod' (did you mean 'load'?)"
    assert [entry.text for entry in session.history] == ["lod 0100"]


@needs_lpar
def test_activate_acknowledges_the_profile(session: Session) -> None:
    result = session.execute("activate")
    assert result.ok, result.message
    assert result.message.startswith("LPAR activated with profile default")
    assert result.data == {"profile": "default", "cpus": 4, "memory": 256 << 20,
                           "crashkernel": 64 << 20}
    assert session.lpar is not None and session.lpar.status == "not operating"
    assert_refused(session, "activate", "already activated")


@needs_lpar
def test_unknown_profile_is_refused(session: Session) -> None:
    assert_refused(session, "activate nosuchprofile", "unknown profile 'nosuchprofile'",
                   "default")
    assert_refused(session, "activate /nonexistent/p.toml", "/nonexistent/p.toml")
    assert session.lpar is None


@needs_lpar
def test_activate_a_profile_file_with_overrides(tmp_path: Path) -> None:
    profile = tmp_path / "two.toml"
    profile.write_text('cpus = 2\nmemory = "128M"\ncrashkernel = "32M"\n')
    with Session(tmp_path / "work", profile=profile, overrides={"cpus": 3}) as session:
        result = session.execute("activate")
        assert result.ok, result.message
        assert result.data == {"profile": "two", "cpus": 3, "memory": 128 << 20,
                               "crashkernel": 32 << 20}
        assert len(session.lpar.snapshot().cpus) == 3


@needs_lpar
def test_load_writes_the_ipl_psw_and_parm_area(session: Session) -> None:
    assert session.execute("activate").ok
    result = session.execute("load 0.0.0100 parm=LAB1")
    assert result.ok, result.message
    assert result.message.startswith("Load of device 0100 started (normal")
    # GUEST_ABI.md: the ESA IPL PSW for entry 0x10000 at absolute 0, the device number at
    # IPL_DEVICE (0x10400) and `loadparm=X` in COMMAND_LINE (0x10480).
    psw = session.execute("r 0.8")
    assert psw.ok and psw.data["hex"] == "0008000080010000"
    assert session.lpar.read(0x10400, 8) == (0x100).to_bytes(8, "big")
    command_line = session.lpar.read(0x10480, 896).split(b"\0")[0].decode()
    assert "loadparm=LAB1" in command_line.split()


@needs_lpar
def test_boot_reaches_the_workload_on_every_cpu(booted_session: Session) -> None:
    status = booted_session.execute("status")
    assert status.ok
    assert status.data["status"] == "operating"
    assert [cpu["address"] for cpu in status.data["cpus"]] == [0, 1, 2, 3]
    assert status.message.splitlines()[0].startswith("LPAR status: operating")


@needs_lpar
def test_refusals_leave_the_machine_unchanged(booted_session: Session) -> None:
    before = booted_session.lpar.snapshot()
    assert_refused(booted_session, "store")           # CPU 0 is operating: no store status
    assert_refused(booted_session, "load 0999")       # no such device
    assert_refused(booted_session, "stop 9")          # 4 CPUs only
    assert_refused(booted_session, "r fffffff0")      # beyond 256M of storage
    assert_refused(booted_session, "regs 9", "regs: no CPU 9 (this LPAR has CPUs 0-3)")
    after = booted_session.lpar.snapshot()
    assert (after.t, after.status) == (before.t, before.status)
    assert [cpu.state for cpu in after.cpus] == [cpu.state for cpu in before.cpus]


@needs_lpar
def test_stop_step_regs_and_start(booted_session: Session) -> None:
    stop = booted_session.execute("stop all")
    assert stop.ok, stop.message
    stopped = booted_session.execute("wait-for stopped")
    assert stopped.ok and stopped.message.startswith("All CPUs stopped at t=")
    assert {cpu.state for cpu in booted_session.lpar.snapshot().cpus} == {"stopped"}
    step = booted_session.execute("step 3 cpu=1")
    assert step.ok, step.message
    assert step.message.startswith("CPU 1 stepped 3 instructions: PSW ")
    regs = booted_session.execute("regs 1")
    assert regs.ok
    assert regs.data["psw_addr"] == step.data["psw_addr"]
    assert len(regs.data["gprs"]) == 16 and "GR15" in regs.message
    assert f"{step.data['psw_addr']:016x}" in regs.message.splitlines()[1]
    store = booted_session.execute("store 0")
    assert store.ok, store.message
    # Store status (z/Architecture): the save area at absolute 0x1200 holds the PSW at +0x100.
    cpu0 = booted_session.lpar.snapshot().cpus[0]
    assert booted_session.lpar.read(0x1300, 16) == (cpu0.psw_mask.to_bytes(8, "big")
                                            + cpu0.psw_addr.to_bytes(8, "big"))
    start = booted_session.execute("start 2")
    assert start.ok, start.message
    assert booted_session.lpar.snapshot().cpus[2].state != "stopped"


@needs_lpar
def test_run_advances_virtual_time(booted_session: Session) -> None:
    before = booted_session.lpar.snapshot().t
    result = booted_session.execute("run 2ms")
    assert result.ok, result.message
    assert result.data["t"] - before >= 2_000_000
    assert re.fullmatch(r"Ran 2ms of virtual time, now t=\d+\.\d{3}ms", result.message)


@needs_lpar
def test_wait_for_timeout_is_a_failure_in_virtual_time(booted_session: Session) -> None:
    before = booted_session.lpar.snapshot().t
    message = assert_refused(booted_session, "wait-for stage nosuchstage timeout=1ms")
    assert message == "wait-for stage nosuchstage: timed out after 1ms (virtual)"
    assert booted_session.lpar.snapshot().t - before >= 1_000_000


@needs_lpar
def test_hang_spin(booted_session: Session) -> None:
    fault = booted_session.execute("fault hang spin")
    assert fault.ok and fault.message == "Fault injected: hang spin"
    hang = booted_session.execute("wait-for event hang")
    assert hang.ok, hang.message
    assert hang.data["kind"] == "hang"
    assert booted_session.execute("run 20ms").ok


@needs_lpar
def test_wait_for_consumes_events_like_expect(session: Session) -> None:
    for line in ("activate", "load 0100", "run 1ms"):
        assert session.execute(line).ok
    # The ipl event happened before this wait-for: it still counts, once.
    ipl = session.execute("wait-for event ipl")
    assert ipl.ok, ipl.message
    assert ipl.data["kind"] == "ipl" and ipl.data["devno"] == 0x100
    assert_refused(session, "wait-for event ipl timeout=1ms",
                   "wait-for event ipl: timed out after 1ms (virtual)")


@needs_lpar
def test_fault_before_boot_is_refused(session: Session) -> None:
    assert session.execute("activate").ok
    assert_refused(session, "fault hang spin")


@needs_lpar
def test_reset_clear_and_deactivate(booted_session: Session) -> None:
    reset = booted_session.execute("reset clear")
    assert reset.ok, reset.message
    assert {cpu.state for cpu in booted_session.lpar.snapshot().cpus} == {"stopped"}
    assert booted_session.lpar.read(0x10000, 16) == bytes(16)
    deactivate = booted_session.execute("deactivate")
    assert deactivate.ok, deactivate.message
    assert booted_session.execute("status").data["status"] == "not activated"
    assert booted_session.execute("activate").ok  # a deactivated LPAR can be activated again


@needs_lpar
def test_run_script_stops_at_the_first_failure(session: Session) -> None:
    results = session.run_script(["# comment", "", "activate", "load zz", "status"])
    assert [(result.ok, result.line) for result in results] == [(True, 3), (False, 4)]
    assert results[-1].message == "load: bad device number 'zz' (expected hex like 0100)"


@needs_lpar
def test_oscmd_and_wait_for_console(booted_session: Session) -> None:
    sent = booted_session.execute("oscmd echo hello  dumplab")
    assert sent.ok, sent.message
    # The echo of the command itself is on the console too, but does not count.
    seen = booted_session.execute('wait-for console "hello  dumplab" timeout=10ms')
    assert seen.ok, seen.message
    assert seen.data["source"] == "os" and seen.data["text"] == "hello  dumplab"
    assert seen.message.startswith("Console: hello  dumplab at t=")


@needs_lpar
def test_hang_wait_and_wait_for_wait(booted_session: Session) -> None:
    assert booted_session.execute("fault hang wait").ok
    entered = booted_session.execute("wait-for wait")
    assert entered.ok, entered.message
    assert entered.data["kind"] == "wait" and entered.data["enabled"] is False
    cpu = entered.data["cpu"]
    assert booted_session.lpar.snapshot().cpus[cpu].state == "disabled wait"
    # The wait event is consumed, but the CPU is still in disabled wait: that counts.
    again = booted_session.execute(f"wait-for wait {cpu} timeout=1ms")
    assert again.ok and again.message.startswith(f"CPU {cpu} is in disabled wait (code ")
    dead = booted_session.execute("wait-for stopped")
    assert dead.ok, dead.message
    assert dead.message.startswith("No CPU can run (") and "1 disabled wait" in dead.message


@needs_lpar
def test_psw_restart(booted_session: Session) -> None:
    restart = booted_session.execute("restart 1")
    assert restart.ok, restart.message
    delivered = booted_session.execute("wait-for event restart timeout=1ms")
    assert delivered.ok, delivered.message
    assert delivered.data["cpu"] == 1


@needs_lpar
def test_wait_for_keeps_the_events_after_its_match(session: Session) -> None:
    for line in ("activate", "load 0100"):
        assert session.execute(line).ok
    # The kernel reports 'boot done' and 'workload done' at the same instant, in that order:
    # the second wait finds its event without running the machine any further.
    assert session.execute("wait-for stage boot").ok
    before = session.lpar.snapshot().t
    workload = session.execute("wait-for stage workload timeout=1ns")
    assert workload.ok, workload.message
    assert session.lpar.snapshot().t == before


def test_u_disassembles_storage_with_the_loaded_programs_symbols(booted_session: Session) -> None:
    import capstone

    from machine.images import built_programs

    start = built_programs()["kernel"].symbols["spin_lock"]
    result = booted_session.execute("u spin_lock 4")
    assert result.ok, result.message
    listed = result.data["instructions"]
    assert len(listed) == 4 and listed[0]["address"] == start
    code = booted_session.lpar.read(start, 24)
    engine = capstone.Cs(capstone.CS_ARCH_SYSZ, capstone.CS_MODE_BIG_ENDIAN)
    expected = [f"{i.mnemonic} {i.op_str}".strip() for i in engine.disasm(code, start)][:4]
    assert [item["text"] for item in listed] == expected
    assert result.message.splitlines()[0] == "spin_lock:"
    assert f"{start:016x}" in result.message.splitlines()[1]
    assert booted_session.execute(f"u {start:#x} 4").data == result.data
    assert_refused(booted_session, "u nosuch", "u: no symbol 'nosuch'")
