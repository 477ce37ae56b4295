"""The console's pure parts, without a screen: message stores, history, PSW decoding, go-to,
the workflow timeline and progress, the Load form's checks, the palette, the dump model, and
the rules every binding and help topic follows."""

from __future__ import annotations

import inspect
import os
import re
from pathlib import Path

import pytest
from textual.binding import Binding

import console.tui.screens.load as load_form
from console.control.runner import Device
from console.tui.app import HELP_DIR, DumpLabApp
from console.tui.screens import dialogs
from console.tui.screens.main import MainScreen
from console.tui.screens.palette import needs_arguments
from console.tui.widgets.command_line import CommandHistory
from console.tui.widgets.dump.model import DumpOpenError, compare_cpu, open_dump_file
from console.tui.widgets.inspect import goto
from console.tui.widgets.inspect.psw import Psw, state_flags, wait_code_meaning
from console.tui.widgets.inspect.regions import Region, StorageFacts, os_info_regions
from console.tui.widgets.messages.model import LogStore, severity_of_console
from console.tui.widgets.workflow.model import DumpProgress, Timeline
from console.tui.widgets.workflow.progress import bar, progress_text
from machine.events import (
    CheckEvent,
    DumpProgressEvent,
    DumpWrittenEvent,
    HmcEvent,
    IplEvent,
    StageEvent,
)
from machine.images import load_image
from machine.lpar import CpuSnapshot, Snapshot
from machine.paths import program_path

# ---------------------------------------------------------------------------------------------
# Messages and history


def test_log_store_numbers_filters_and_cleans_lines() -> None:
    store = LogStore(limit=3)
    store.add("boot\x1b[31m done", "info", t=5)
    store.add("disk failed", "error")
    store.add("two\nlines", "warning")
    assert [line.seq for line in store.lines] == [2, 3, 4]  # bounded: the oldest went
    assert store.lines[0].text == "disk failed"
    store.set_filter("LINES")
    assert [line.text for line in store.visible()] == ["lines"]
    store.set_filter("", max_rank=3)
    assert [line.text for line in store.visible()] == ["disk failed"]
    assert LogStore().add("a\x1bb")[0].text == "a\ufffdb"
    assert severity_of_console(0, "os") == "emergency"
    assert severity_of_console(6, "operator") == "operator"


def test_history_walks_back_and_returns_to_the_draft() -> None:
    history = CommandHistory()
    for line in ("status", "echo a", "echo a", "help"):
        history.add(line)
    assert history.lines == ["status", "echo a", "help"]
    assert history.older("draft") == "help"
    assert history.older("help") == "echo a"
    assert history.newer() == "help"
    assert history.newer() == "draft"


# ---------------------------------------------------------------------------------------------
# PSW, CPU states, go-to


def test_psw_decoding() -> None:
    psw = Psw(0x0707C00180000000, 0x1234)
    assert (psw.key, psw.cc, psw.addressing_mode, psw.problem_state) == (0, 0, 64, True)
    assert psw.wait and not psw.disabled_wait and psw.interrupt_masks == ["I/O", "EXT", "MCHK"]
    assert Psw(0x0002000080000000, 0).disabled_wait
    assert Psw(0x0000000080000000, 0).addressing_mode == 31
    assert state_flags("disabled wait", 0x0002000080000000) == "DWAIT S31"
    assert wait_code_meaning(0x4521, "dumper") == "os_info checksum incorrect"
    assert wait_code_meaning(0x11234, "kernel", "stop_run") == "stopped in stop_run"


def cpu(**changes: object) -> CpuSnapshot:
    values: dict = {"address": 0, "state": "stopped", "psw_mask": 0x0000000180000000,
                    "psw_addr": 0x10000, "gprs": tuple(range(16)), "crs": (0,) * 16,
                    "ars": (0,) * 16, "fprs": (0,) * 16, "fpc": 0, "prefix": 0x22000,
                    "cpu_timer": 0, "clock_comparator": 0, "wait_code": None}
    values.update(changes)
    return CpuSnapshot(**values)


def test_go_to_targets() -> None:
    os_info = load_image(program_path("kernel")).symbols["os_info"]  # where the kernel puts it
    regions = [Region("os_info", os_info, 0x1000)]
    resolve = goto.resolve
    assert resolve("10000", None, regions, None) == 0x10000
    assert resolve("0x1200+8", None, regions, None) == 0x1208
    assert resolve("r15", cpu(), regions, None) == 15
    assert resolve("psw", cpu(), regions, None) == 0x10000
    assert resolve("prefix-1000", cpu(), regions, None) == 0x21000
    assert resolve("os_info_ptr", None, regions, None) == 0xE18
    assert resolve("os_info+20", None, regions, None) == os_info + 0x20
    assert resolve("heartbeat", None, regions, "kernel") > 0x10000
    for bad in ("", "r15", "nowhere", "0x10-0x20", "a b"):
        with pytest.raises(goto.GoToError):
            resolve(bad, None, regions, "kernel")


def test_os_info_regions_need_the_magic() -> None:
    head = bytearray(0x124)
    head[:8] = (0x4F53494E464F535A).to_bytes(8, "big")
    head[0x10:0x20] = (0xC000000).to_bytes(8, "big") + (0x4000000).to_bytes(8, "big")
    head[0x20 + 60:0x20 + 76] = (0xC002000).to_bytes(8, "big") + (0x32B0).to_bytes(8, "big")
    facts = StorageFacts(256 << 20, 0x1E000, 0x1D000, bytes(head))
    names = {r.name: (r.start, r.size) for r in os_info_regions(facts)}
    assert names["crashkernel"] == (0xC000000, 0x4000000)
    assert names["purgatory"] == (0xC002000, 0x32B0)
    assert names["vmcoreinfo"][0] == 0x1D000
    broken = StorageFacts(256 << 20, 0x1E000, 0, b"\0" * 0x124)
    assert [r.note for r in os_info_regions(broken)] == ["pointer at 0xE18, bad magic"]


# ---------------------------------------------------------------------------------------------
# The workflow


def test_timeline_follows_stage_and_check_events() -> None:
    timeline = Timeline()
    timeline.feed([
        HmcEvent(t=0, cpu=None, operation="activate", message="LPAR activated"),
        IplEvent(t=0, cpu=0, program="kernel"),
        StageEvent(t=0, cpu=0, stage="ipl", status="done", detail="kernel from 0100 (operator)"),
        StageEvent(t=1, cpu=0, stage="boot", status="running", detail="lowcores set up"),
        CheckEvent(t=2, cpu=0, what="os_info checksum", expected="1", computed="1", ok=True),
        StageEvent(t=3, cpu=0, stage="boot", status="done", detail="kernel up"),
        CheckEvent(t=4, cpu=0, what="os_info checksum", expected="2", computed="2", ok=True),
        StageEvent(t=4, cpu=0, stage="kexec-load", status="done", detail="4 segments"),
        IplEvent(t=5, cpu=0, program="dumper"),
        StageEvent(t=5, cpu=0, stage="ipl", status="done", detail="dumper from 0200 (operator)"),
        StageEvent(t=6, cpu=0, stage="checks", status="running"),
        CheckEvent(t=7, cpu=0, what="purgatory checksum", expected="a", computed="b", ok=False),
        StageEvent(t=8, cpu=0, stage="checks", status="failed", detail="purgatory checksum"),
        StageEvent(t=9, cpu=0, stage="something-new", status="done", detail="at 0x12340"),
    ])
    stages = timeline.stages
    assert stages["activate"].status == "done"
    assert stages["ipl"].detail.startswith("kernel")
    assert stages["dump-load"].detail.startswith("dumper")  # the Load of the dump program
    assert [c.what for c in stages["boot"].checks] == ["os_info checksum"]
    assert [c.expected for c in stages["kdump-load"].checks] == ["2"]  # alias of kexec-load
    assert stages["checks"].status == "failed" and not stages["checks"].checks[0].ok
    assert list(stages)[-1] == "something-new"
    assert stages["something-new"].addresses() == [0x12340]
    assert timeline.latest() == "something-new"


def test_after_kdump_through_the_dumper_no_stage_is_left_running(tmp_path: Path) -> None:
    """The real events of the main flow: every stage it passes ends done. (The dumper's
    `kdump` stage, its hand-over to the purgatory, once lit "kdump loaded" as running.)"""
    from console.control.session import Session
    from machine.events import EventLog

    with Session(tmp_path, overrides={"cpus": 2, "memory": 128 << 20}) as session:
        log = EventLog(session.bus)
        for line in ("activate", "load 0100", "wait-for stage workload-filled", "kdump load",
                     "wait-for event kexec", "fault hang spin", "wait-for event hang",
                     "stop all", "load 0200 store", "wait-for event dump_written timeout=60s"):
            assert session.execute(line).ok, line
    timeline = Timeline()
    timeline.feed(log.events)
    statuses = {name: record.status for name, record in timeline.stages.items()}
    assert "running" not in statuses.values(), statuses
    for name in ("kdump-load", "dumper", "checks", "purgatory-verify", "purgatory-load",
                 "notes", "swap", "kdump-boot", "vmcore"):
        assert statuses[name] == "done", name
    assert statuses["full-dump"] == "pending"


def test_progress_rate_in_virtual_then_host_time() -> None:
    mib = 1 << 20
    progress = DumpProgress()
    progress.feed([DumpProgressEvent(t=0, cpu=0, done=0, total=100 * mib),
                   DumpProgressEvent(t=500_000_000, cpu=0, done=50 * mib, total=100 * mib)])
    state = progress.state
    assert state is not None and state.clock == "virtual"
    assert state.rate == pytest.approx(100 * mib) and state.eta_s == pytest.approx(0.5)
    assert "50.0 of 100.0 MiB" in progress_text(state)
    progress.feed([DumpWrittenEvent(t=1, cpu=0, path="x", format="elf", bytes=1)])
    assert progress.state is None
    ticks = iter([10.0, 12.0])
    host = DumpProgress(clock=lambda: next(ticks))
    host.feed([DumpProgressEvent(t=7, cpu=0, done=0, total=4 * mib),
               DumpProgressEvent(t=7, cpu=0, done=2 * mib, total=4 * mib)])
    assert host.state.clock == "host" and host.state.rate == pytest.approx(mib)
    assert bar(1, 2, width=4) == "██" and bar(0, 0) == ""


# ---------------------------------------------------------------------------------------------
# Forms, palette, help, bindings


def test_load_form_checks() -> None:
    devices = (Device(0x100, "disk", "0100 boot disk"), Device(0x200, "dump", "0200 dump device"))
    assert load_form.check_devno("0.0.0200", devices) == ""
    assert "hex digits" in load_form.check_devno("01x0", devices)
    assert "no device 0300" in load_form.check_devno("300", devices)
    assert load_form.check_parm("") == "" and load_form.check_parm("A.@#$1") == ""
    assert load_form.check_parm("NINECHARS") and load_form.check_parm("a b")
    assert load_form.check_timeout("60") == "" and load_form.check_timeout("601")
    assert load_form.check_timeout("²") and load_form.check_store(True, "clear")
    assert load_form.default_device("dump", devices) == "0200"
    request = load_form.LoadRequest("dump", 0x200, "X1", True, 60)
    assert request.command() == "load 0200 store parm=X1"
    assert load_form.LoadRequest("clear", 0x100, "", False, 60).command() == "load 0100 clear"


def test_palette_knows_which_commands_need_arguments() -> None:
    assert needs_arguments("load DEVNO [clear] [store] [parm=X]")
    assert needs_arguments("reset normal|clear")
    assert not needs_arguments("stop [CPU|all]") and not needs_arguments("status")
    assert dialogs.available_faults()[0][0] == "fault hang spin"


def bindings_of(cls: type) -> list[Binding]:
    """The bindings a console class declares itself (not those it inherits from Textual)."""
    return [b for b in vars(cls).get("BINDINGS", []) if isinstance(b, Binding)]


def console_classes() -> list[type]:
    from console.tui.widgets import command_line
    from console.tui.widgets.dump import viewer
    from console.tui.widgets.inspect import storage
    from console.tui.widgets.messages import log, pane
    modules = (dialogs, load_form, viewer, storage, command_line, log, pane)
    classes = [DumpLabApp, MainScreen]
    for module in modules:
        classes += [c for _, c in inspect.getmembers(module, inspect.isclass)
                    if c.__module__ == module.__name__]
    return classes


def test_every_binding_has_an_id_and_every_help_topic_a_file() -> None:
    ids = []
    for cls in console_classes():
        for binding in bindings_of(cls):
            if binding.id is None:
                pytest.fail(f"{cls.__name__}: binding {binding.key} has no id")
            ids.append(binding.id)
    assert len(ids) == len(set(ids)), "binding ids must be unique"
    topics = {getattr(cls, "HELP_TOPIC", None) for cls in console_classes()} - {None}
    from console.tui import widgets
    for path in Path(widgets.__file__).parent.rglob("*.py"):
        topics |= set(re.findall(r'HELP_TOPIC = "(\w+)"', path.read_text()))
    missing = sorted(t for t in topics if not (HELP_DIR / f"{t}.md").is_file())
    assert missing == []


# ---------------------------------------------------------------------------------------------
# The dump model


def test_bad_dump_files_are_refused_in_one_line(tmp_path: Path) -> None:
    random_file = tmp_path / "random"
    random_file.write_bytes(os.urandom(10_000))
    short = tmp_path / "short"
    short.write_bytes(b"\x7fELF\x02\x02\x01\x00")
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    for path in (random_file, short, empty, tmp_path, tmp_path / "missing"):
        with pytest.raises(DumpOpenError) as refused:
            open_dump_file(path)
        assert "\n" not in str(refused.value) and str(path) in str(refused.value)


def test_registers_in_the_dump_beside_the_snapshot() -> None:
    dumped = {"pid": 1, "prefix": 0x22000, "psw": {"mask": 1, "address": 0x10},
              "gprs": list(range(16)), "crs": [0] * 16, "acrs": [0] * 16, "fpc": 0,
              "cpu_timer": 0}
    snapshot = Snapshot(0, "not operating", (cpu(gprs=(0, 1, 99) + tuple(range(3, 16))),),
                        None, "kernel")
    rows = {row.name: row for row in compare_cpu(dumped, snapshot)}
    assert rows["r2"].differs and not rows["r3"].differs and rows["psw addr"].differs
    assert not any(row.differs for row in compare_cpu(dumped, None))


def test_the_status_line_says_when_gdb_is_attached() -> None:
    from console.control.runner import Frame
    from console.tui.widgets.hmc.status import status_markup

    attached = Frame(seq=1, snapshot=None, running=True, speed="real",
                     gdb="gdb attached from 127.0.0.1:40000")
    assert "gdb attached" in status_markup(attached, "LPAR1", narrow=True).plain
    alone = Frame(seq=1, snapshot=None, running=True, speed="real")
    assert "gdb" not in status_markup(alone, "LPAR1", narrow=True).plain
