"""The gdb stub on a real LPAR, driven by the real gdb-multiarch (and by raw sockets for what
gdb does not do: a second client, a client that hangs up mid-packet)."""

from __future__ import annotations

import random
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from console.cli import main
from console.control.commands import CommandResult
from console.control.gdbcodec import Decoder, frame
from console.control.journal import read_journal, recording, replay
from console.control.session import Session
from machine.images import load_image

GDB = shutil.which("gdb-multiarch")
needs_gdb = pytest.mark.skipif(GDB is None, reason="gdb-multiarch is not installed")
BREAK_AT = "do_ext_interrupt"  # the timer interruption's handler: every CPU gets there


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def boot(session: Session) -> Session:
    for line in ("activate", "load 0100", "run 20ms"):
        assert session.execute(line).ok, line
    return session


def booted_session(workdir: Path) -> Session:
    return boot(Session(workdir, overrides={"cpus": 2}))


class Serving:
    """`gdbserver PORT` then `gdbserver wait` in a thread: that thread is the machine's while
    gdb is attached; the test touches the session only after it ends."""

    def __init__(self, session: Session) -> None:
        self.port = free_port()
        started = session.execute(f"gdbserver 127.0.0.1:{self.port}")
        assert started.ok, started.message
        self.result: list[CommandResult] = []
        self.thread = threading.Thread(
            target=lambda: self.result.append(session.execute("gdbserver wait")), daemon=True)
        self.thread.start()

    def join(self) -> CommandResult:
        self.thread.join(30)
        assert not self.thread.is_alive(), "gdbserver wait did not return after the detach"
        return self.result[0]


def run_gdb(port: int, *commands: str) -> str:
    argv = [GDB or "gdb-multiarch", "-nx", "-batch", "-ex", "set architecture s390:64-bit",
            "-ex", f"target remote 127.0.0.1:{port}"]
    for command in commands:
        argv += ["-ex", command]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    return done.stdout + done.stderr


def register(output: str, name: str) -> list[int]:
    return [int(value, 16) for value in re.findall(rf"^{name}\s+(0x[0-9a-f]+)", output, re.MULTILINE)]


@needs_gdb
def test_gdb_sees_threads_registers_and_memory_and_steps(tmp_path: Path) -> None:
    session = Session(tmp_path / "work", overrides={"cpus": 2})
    journal = tmp_path / "gdb.jsonl"
    with session, recording(session, journal):
        boot(session)
        lpar = session.lpar
        assert lpar is not None
        before = lpar.snapshot()
        cpu0 = lpar.cpus[0]
        memory = lpar.read(cpu0.real_to_absolute(0x10400), 32)
        cpu1 = lpar.cpus[1]
        assert cpu1.prefix != 0  # so that real 0xe18 of CPU 1 is its own lowcore
        lowcore1 = lpar.read(cpu1.prefix + 0xE18, 32)
        assert lowcore1 != lpar.read(0xE18, 32)  # absolute 0xe18 is not what CPU 1 sees
        served = Serving(session)
        output = run_gdb(
            served.port, "info threads", "info registers pswa pswm r2 r15", "x/4gx 0x10400",
            "thread 2", "info registers pswa pswm r2 r15", "x/4gx 0xe18", "thread 1",
            f"break {BREAK_AT}", "continue", "info registers pswa", "x/1xb $pc", "stepi",
            "info registers pswa", "detach")
        result = served.join()
        after = lpar.snapshot()
        assert result.ok, result.message
        assert not lpar.all_stopped(), "detach must leave the LPAR running"
    assert "Thread 1 (CPU 0)" in output and "Thread 2 (CPU 1)" in output, output
    for index, cpu in enumerate(before.cpus):
        assert register(output, "pswa")[index] == cpu.psw_addr, output
        assert register(output, "pswm")[index] == cpu.psw_mask
        assert register(output, "r2")[index] == cpu.gprs[2]
        assert register(output, "r15")[index] == cpu.gprs[15]
    rows = re.findall(r"^0x104[01]0[^:\n]*:\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)$", output, re.MULTILINE)
    words = [int(word, 16) for row in rows for word in row]
    assert words == [int.from_bytes(memory[i:i + 8], "big") for i in range(0, 32, 8)]
    rows = re.findall(r"^0x(?:e18|e28)[^:\n]*:\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)$", output,
                      re.MULTILINE)
    words = [int(word, 16) for row in rows for word in row]
    assert words == [int.from_bytes(lowcore1[i:i + 8], "big") for i in range(0, 32, 8)]
    # Without DWARF gdb says "0x... in NAME ()", with it "NAME (args) at file:line".
    assert re.search(rf"hit Breakpoint 1, (?:0x[0-9a-f]+ in )?{BREAK_AT} \(", output), output
    stopped_at, stepped_to = register(output, "pswa")[2:4]
    first_byte = int(re.search(r"<" + BREAK_AT + r"(?:\+\d+)?>:\s+0x([0-9a-f]{2})", output)[1], 16)
    assert stepped_to - stopped_at == {0: 2, 1: 4, 2: 4, 3: 6}[first_byte >> 6]
    assert after.t > before.t  # the continue ran the machine
    # What gdb did is in the journal as commands, and replays without gdb.
    commands = [c.text for c in read_journal(journal).commands]
    assert any(re.fullmatch(r"break 0x[0-9a-f]+", c) for c in commands), commands
    assert any(c.startswith("step 1 cpu=") for c in commands), commands
    outcome = replay(read_journal(journal), tmp_path / "replay")
    assert outcome.identical, outcome


@needs_gdb
def test_gdb_writes_registers_and_memory_as_journalled_commands(tmp_path: Path) -> None:
    session = booted_session(tmp_path / "work")
    with session:
        served = Serving(session)
        output = run_gdb(served.port, "set $r3 = 0x1234", "set *(long *)0x30000 = 0x55aa",
                         "p/x $r3", "detach")
        served.join()
        lpar = session.lpar
        assert lpar is not None
        assert lpar.snapshot().cpus[0].gprs[3] == 0x1234
        stored = lpar.read(lpar.cpus[0].real_to_absolute(0x30000), 8)
    assert stored == (0x55AA).to_bytes(8, "big")
    assert "0x1234" in output, output
    history = [entry.text for entry in session.history]
    assert "gdbserver write-register 0 r3 1234" in history, history
    assert any(h.startswith("gdbserver write-memory 0 30000 ") for h in history), history


def test_second_client_is_refused_and_a_hangup_mid_packet_detaches(tmp_path: Path) -> None:
    session = booted_session(tmp_path / "work")
    with session:
        served = Serving(session)
        first = socket.create_connection(("127.0.0.1", served.port), timeout=5)
        first.sendall(frame(b"qfThreadInfo"))
        assert _reply(first) == b"m1,2"
        with socket.create_connection(("127.0.0.1", served.port), timeout=5) as second:
            second.sendall(frame(b"qSupported"))
            assert _reply(second).startswith(b"E.DumpLab: another gdb is attached")
        first.sendall(frame(b"c"))  # the machine runs until gdb interrupts it
        time.sleep(0.2)
        first.sendall(b"\x03")
        assert _reply(first).startswith(b"T02thread:")
        rng = random.Random(14)  # junk, bad checksums, oversized packets: the stub answers on
        for _ in range(200):
            first.sendall(bytes(rng.randrange(256) for _ in range(rng.randint(1, 64))))
            if rng.random() < 0.1:
                first.sendall(b"$" + b"m" * 0x5000 + b"#00")
        first.sendall(b"#00" + frame(b"qC"))
        assert _reply_matching(first, b"QC")
        first.sendall(b"$m10400,")  # and hang up in the middle of the packet
        first.close()
        result = served.join()
        assert result.ok
        lpar = session.lpar
        assert lpar is not None and not lpar.all_stopped()


def _reply_matching(sock: socket.socket, prefix: bytes) -> bytes:
    """The first reply starting with prefix (replies to the junk before it come first)."""
    decoder = Decoder()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for item in decoder.feed(sock.recv(65536)):
            if item.kind == "packet" and item.data.startswith(prefix):
                return item.data
    raise AssertionError("no reply")


def _reply(sock: socket.socket) -> bytes:
    decoder = Decoder()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for item in decoder.feed(sock.recv(4096)):
            if item.kind == "packet":
                return item.data
    raise AssertionError("no reply")


def test_bad_endpoints_and_a_port_in_use_are_one_line(tmp_path: Path) -> None:
    with Session(tmp_path) as session:
        bad = session.execute("gdbserver 127.0.0.1:99999")
        assert not bad.ok and "bad address" in bad.message and "\n" not in bad.message
        with socket.socket() as holder:
            holder.bind(("127.0.0.1", 0))
            holder.listen(1)
            port = holder.getsockname()[1]
            busy = session.execute(f"gdbserver {port}")
        assert not busy.ok and f"cannot listen on 127.0.0.1:{port}" in busy.message
        assert "\n" not in busy.message
        assert session.execute("gdbserver").message == "gdbserver: not running"
        assert not session.execute("gdbserver stop").ok
        port = free_port()
        assert session.execute(f"gdbserver {port}").ok
        assert session.execute("gdbserver").message == (
            f"gdbserver: listening on 127.0.0.1:{port}, no client attached")
        again = session.execute(f"gdbserver {port}")
        assert not again.ok and "already listening" in again.message
        assert session.execute("gdbserver stop").ok
        assert session.execute("gdbserver").message == "gdbserver: not running"
    assert main(["run", "--gdb", "nowhere:", "-c", "status"]) == 2
    assert main(["--gdb", "1:2:3"]) == 2


def test_the_console_runner_serves_gdb_on_its_machine_thread(tmp_path: Path) -> None:
    """In the console, the runner's worker executes gdb's packets between slices, and a
    `gdb` event says who attached (the hardware messages show it)."""
    from console.control.runner import Runner

    events: list[object] = []
    outcomes: list[CommandResult] = []
    session = Session(tmp_path, overrides={"cpus": 2})
    frames: list[object] = []
    runner = Runner(session, on_events=events.extend, on_frame=frames.append,
                    on_outcome=lambda outcome: outcomes.append(outcome.result), speed="max")
    runner.start()
    try:
        port = free_port()
        for line in ("activate", "load 0100", f"gdbserver 127.0.0.1:{port}"):
            runner.submit(line)
        deadline = time.monotonic() + 30
        while len(outcomes) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert all(result.ok for result in outcomes), outcomes
        with socket.create_connection(("127.0.0.1", port), timeout=10) as gdb:
            gdb.sendall(frame(b"qfThreadInfo"))
            assert _reply(gdb) == b"m1,2"
            gdb.sendall(frame(b"p1"))  # pswa of CPU 0: 8 bytes
            assert len(_reply(gdb)) == 16
            while time.monotonic() < deadline and not any(
                    (getattr(f, "gdb", None) or "").startswith("gdb attached from") for f in frames):
                time.sleep(0.05)  # the frame the status line reads says so
            gdb.sendall(frame(b"c"))
            gdb.sendall(b"\x03")  # interrupt: every CPU stops, the stop reply says SIGINT
            assert _reply(gdb).startswith(b"T02thread:")
            gdb.sendall(frame(b"D"))
            assert _reply(gdb) == b"OK"
        while time.monotonic() < deadline and not any(
                getattr(e, "kind", "") == "gdb" and not e.attached for e in events):
            time.sleep(0.05)
    finally:
        runner.stop()
    gdb_events = [e for e in events if getattr(e, "kind", "") == "gdb"]
    messages = [e.message for e in gdb_events]
    # The console's hardware messages show each of them as a notice.
    from console.tui.widgets.hmc.hardware import event_lines

    assert event_lines(gdb_events[0], None) == [(messages[0], "notice")]
    assert messages[0].startswith("gdb attached from 127.0.0.1:"), messages
    assert "gdb: interrupted by gdb; every CPU is stopped" in messages and messages[-1].startswith("gdb detached")


@needs_gdb
def test_dumplab_run_gdb_serves_after_the_script(tmp_path: Path) -> None:
    """`dumplab run --gdb PORT`: listen before the script, serve gdb after it until the
    client detaches, then exit 0."""
    port = free_port()
    run = subprocess.Popen(
        [sys.executable, "-m", "console.cli", "run", "--gdb", f"127.0.0.1:{port}", "--cpus", "2",
         "--workdir", str(tmp_path), "-c", "activate; load 0100; run 20ms; regs 1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        assert run.stdout is not None
        for line in run.stdout:
            lines.append(line)
            if line.startswith("GR00"):  # regs 1 printed: the script is done
                break
        text = "".join(lines)
        assert f"gdbserver: listening on 127.0.0.1:{port}" in text, text
        output = run_gdb(port, "thread 2", "info registers pswa r15", "detach")
        rest, errors = run.communicate(timeout=60)
    finally:
        run.kill()
    assert run.returncode == 0, errors
    assert "gdbserver: the client detached" in rest
    psw = re.search(r"PSW\s+([0-9a-f]{16}) ([0-9a-f]{16})", text)
    assert psw is not None and register(output, "pswa") == [int(psw[2], 16)], (text, output)


def test_wait_ends_on_ctrl_c_and_is_refused_in_the_console(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from console.control import gdbserver

    def interrupted(self: gdbserver.GdbServer, advance: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(gdbserver.GdbServer, "serve_until_detached", interrupted)
    with Session(tmp_path) as session:
        result = session.execute(f"gdbserver {free_port()} wait")
        assert (result.ok, result.message) == (
            False, "gdbserver: wait interrupted (Ctrl-C); server stopped")
        assert session.gdb is None
        session.wake = lambda: None  # as a console runner sets it
        assert session.execute(f"gdbserver {free_port()}").ok
        refused = session.execute("gdbserver wait")
        assert not refused.ok and "'wait' is for headless runs" in refused.message


@needs_gdb
def test_gdb_breaks_in_the_purgatory_and_watches_r2_decide(tmp_path: Path) -> None:
    """docs/GDB.md's worked example: the purgatory runs twice after the panic, r2 = 0 to
    verify and r2 = 1 to load; reverse-continue goes back to the verify call; after the
    detach kdump still writes the vmcore (from there, running forward again)."""
    session = Session(tmp_path, overrides={"cpus": 2})
    with session:
        for line in ("activate", "load 0100", "wait-for stage workload-filled", "kdump load",
                     "wait-for event kexec", "fault panic"):
            assert session.execute(line).ok, line
        lpar = session.lpar
        assert lpar is not None and lpar.kdump.image is not None
        base = lpar.kdump.image.segment("purgatory").mem
        served = Serving(session)
        purgatory = Path(__file__).resolve().parent.parent / "assets/bin/purgatory.elf"
        output = run_gdb(served.port, f"add-symbol-file {purgatory} -o {base:#x}",
                         "break *purgatory_main", "continue", "info registers r2 pswa",
                         "continue", "info registers r2 pswa", "reverse-continue",
                         "info registers r2 pswa", "detach")
        assert served.join().ok
        dumped = session.execute("wait-for event dump_written timeout=30s")
    assert output.count("hit Breakpoint 1, ") == 3, output
    # reverse-continue: back in the verify call, across the first purgatory run
    assert register(output, "r2") == [0, 1, 0], output
    entry = base + load_image(purgatory).symbols["purgatory_main"]
    assert register(output, "pswa") == [entry, entry, entry], output
    assert dumped.ok, dumped.message


# --------------------------------------------------------------------------------------------
# Reverse execution (bs, bc) on the teaching mode's rewind


def all_registers(output: str, marker: str) -> dict[str, str]:
    """`info all-registers` printed after `echo MARKER\\n`: name -> raw value text."""
    block = output.split(f"{marker}\n", 1)[1]
    values: dict[str, str] = {}
    for line in block.splitlines():
        match = re.match(r"^([a-z]+\d*)\s+(\S+)", line)
        if match is None or match[1] in values:
            break
        values[match[1]] = match[2]
    return values


@needs_gdb
def test_gdb_reverse_stepi_and_reverse_continue(tmp_path: Path) -> None:
    """reverse-stepi: the registers before a stepi again; reverse-continue: the earlier
    breakpoint hit (its thread, PC and registers), then with no breakpoint the beginning of
    the history. The journal holds it as commands and replays."""
    session = Session(tmp_path / "work", overrides={"cpus": 2})
    journal = tmp_path / "gdb.jsonl"
    with session, recording(session, journal):
        boot(session)
        served = Serving(session)
        output = run_gdb(
            served.port, "thread 1", "echo BEFORE\\n", "info all-registers", "stepi",
            "echo STEPPED\\n", "info all-registers", "reverse-stepi", "echo BACK\\n",
            "info all-registers",
            f"break {BREAK_AT}", "continue", "thread", "echo FIRST\\n", "info all-registers",
            "continue", "thread", "reverse-continue", "thread", "echo REVERSED\\n",
            "info all-registers",
            "delete", "reverse-continue", "echo BEGINNING\\n", "info registers pswa", "detach")
        result = served.join()
        assert result.ok, result.message
        lpar = session.lpar
        assert lpar is not None
        cpu_counts = [cpu.instructions for cpu in lpar.cpus]
    before, stepped, back = (all_registers(output, m) for m in ("BEFORE", "STEPPED", "BACK"))
    assert len(before) >= 70, output  # PSW, r0-r15, acr, fpc, f0-f15, cr0-15, prefix, timers
    assert stepped["pswa"] != before["pswa"]
    assert back == before, output
    first, reversed_ = all_registers(output, "FIRST"), all_registers(output, "REVERSED")
    assert first["pswa"].startswith("0x") and reversed_ == first, output
    threads = re.findall(r"\[Current thread is (\d+)", output)
    assert len(threads) == 3 and threads[2] == threads[0], output
    assert re.search(rf"hit Breakpoint 1, (?:0x[0-9a-f]+ in )?{BREAK_AT} \(", output), output
    assert "No more reverse-execution history." in output, output
    beginning = output.split("BEGINNING\n", 1)[1]
    assert register(beginning, "pswa") == [0], output
    assert cpu_counts == [0, 0]  # the activation: nothing executed yet
    commands = [c.text for c in read_journal(journal).commands]
    assert "step back 1 cpu=0" in commands and commands.count("reverse-continue") == 2, commands
    outcome = replay(read_journal(journal), tmp_path / "replay")
    assert outcome.identical, outcome


def _ask(sock: socket.socket, packet: bytes) -> bytes:
    sock.sendall(frame(packet))
    return _reply_matching(sock, b"")


def test_bs_and_bc_packets_on_a_small_lpar(tmp_path: Path) -> None:
    """At the packet level: bs undoes a step of the Hc thread; bc goes back to the earlier of
    two breakpoint hits (the stop reply names its thread, `g` equals what it was) and without
    breakpoints answers replaylog:begin, the machine back at its activation. CPU addresses 0
    and 4 (a gap): thread 5 is CPU 4."""
    session = boot(Session(tmp_path / "work", overrides={"cpus": 2, "memory": 128 << 20,
                                                          "cpu_addresses": (0, 4)}))
    with session:
        lpar = session.lpar
        assert lpar is not None
        entry = lpar.code_address(BREAK_AT)
        assert entry is not None
        served = Serving(session)
        with socket.create_connection(("127.0.0.1", served.port), timeout=10) as gdb:
            gdb.sendall(b"+")
            assert b"ReverseStep+;ReverseContinue+" in _ask(gdb, b"qSupported")
            assert _ask(gdb, b"Hg5") == b"OK"
            before = _ask(gdb, b"g")
            assert _ask(gdb, b"vCont;s:5") == b"T05thread:5;"
            assert _ask(gdb, b"g") != before
            assert _ask(gdb, b"Hg1") == b"OK" and _ask(gdb, b"Hc5") == b"OK"
            assert _ask(gdb, b"bs") == b"T05thread:5;"  # Hc's thread, not Hg's
            assert _ask(gdb, b"g") == before
            assert _ask(gdb, b"Hc0") == b"OK"
            assert _ask(gdb, f"Z0,{entry:x},2".encode()) == b"OK"
            first = _ask(gdb, b"c")
            thread = re.fullmatch(rb"T05thread:(\d+);", first)
            assert thread is not None, first
            at_first = _ask(gdb, b"g")
            assert int(at_first[16:32], 16) == entry  # pswa, the second register
            # As gdb does: step the thread off its breakpoint, then continue to the next hit.
            assert _ask(gdb, b"vCont;s:" + thread[1]) == first
            assert _ask(gdb, b"c").startswith(b"T05thread:")
            assert _ask(gdb, b"bc") == first
            assert _ask(gdb, b"g") == at_first
            assert _ask(gdb, f"z0,{entry:x},2".encode()) == b"OK"
            assert re.fullmatch(rb"T05thread:\d+;replaylog:begin;", _ask(gdb, b"bc"))
            assert _ask(gdb, b"D") == b"OK"
        assert served.join().ok
        assert all(cpu.instructions == 0 for cpu in lpar.cpus)
