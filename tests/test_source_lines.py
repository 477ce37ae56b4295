"""The guest's C source beside its code: the file:line shown for an address equals binutils'
addr2line on the same ELF, and `step line` / `finish` move by source lines and calls."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from console.control.session import Session
from machine.images import built_programs
from machine.paths import program_path

ADDR2LINE = "s390x-linux-gnu-addr2line"


def _addr2line(program: str, address: int) -> str:
    out = subprocess.run([ADDR2LINE, "-e", str(program_path(program)), f"{address:#x}"],
                         capture_output=True, text=True, check=True).stdout.strip()
    return out.removeprefix("./")


@pytest.fixture(scope="module")
def at_purgatory(tmp_path_factory):
    """CPU 0 stopped at the first instruction of the purgatory (the kdump path begins)."""
    session = Session(tmp_path_factory.mktemp("src"), "production", {"cpus": 2})
    for line in ("activate", "load 0100", "wait-for event kexec timeout=30s",
                 "break purgatory:purgatory_main", "stop all", "restart 0",
                 "wait-for event breakpoint"):
        assert session.execute(line).ok, line
    yield session
    session.close()


@pytest.mark.skipif(shutil.which(ADDR2LINE) is None, reason=f"needs {ADDR2LINE}")
@pytest.mark.parametrize(("symbol", "offsets"), [("purgatory_main", (0, 0x18, 0x40)),
                                                 ("sha256_blocks", (0x60, 0x100, 0x200))])
def test_source_lines_equal_addr2line(at_purgatory, symbol: str, offsets) -> None:
    base = at_purgatory.lpar.kdump.image.segment("purgatory").mem
    start = built_programs()["purgatory"].symbols[symbol]
    result = at_purgatory.execute(f"u /s purgatory:{symbol} 200")
    shown = {i["address"]: i["source"] for i in result.data["instructions"]}
    for offset in offsets:
        address = min(a for a in shown if a >= base + start + offset)
        assert shown[address] == _addr2line("purgatory", address - base), hex(address)
    assert "src/common/sha256.c" in result.message or symbol == "purgatory_main"


def test_step_line_and_finish(at_purgatory) -> None:
    session = at_purgatory
    assert session.execute("break purgatory:sha256_blocks").ok
    assert session.execute("start 0").ok
    assert session.execute("wait-for event breakpoint").ok
    stepped = session.execute("step line")
    assert stepped.ok and stepped.data["source"].startswith("src/common/sha256.c:")
    assert stepped.data["source"] != "src/common/sha256.c:71"  # the function's first line
    finished = session.execute("finish")
    assert finished.ok, finished.message
    # Back in the caller: sha256_update, then (finish again) the purgatory's own code.
    assert finished.data["source"].startswith("src/common/sha256.c:")
    assert finished.data["source"] != stepped.data["source"]
    # The purgatory's own code (hash_segment, inlined in purgatory_main): the return lands on
    # the progress report, whose hc_trace (src/common/hypercall.h) is inlined there too.
    back = session.execute("finish").data
    base = session.lpar.kdump.image.segment("purgatory").mem
    assert built_programs()["purgatory"].symbolize(back["psw_addr"] - base).startswith(
        "purgatory_main+")
    assert back["source"].startswith(("src/purgatory/purgatory.c:", "src/common/hypercall.h:"))


def test_no_line_table_is_said_in_one_line(tmp_path: Path) -> None:
    with Session(tmp_path, "default", {"cpus": 1}) as session:
        assert session.execute("activate").ok
        result = session.execute("step line")
        assert not result.ok and result.message.startswith("step line: CPU 0's PSW")


def test_the_code_view_interleaves_the_source(at_purgatory) -> None:
    from console.tui.widgets.inspect.disasm import code_probe, disassemble

    lpar = at_purgatory.lpar
    window = code_probe(0)(lpar, lpar.snapshot())
    lines = [line.plain for line in disassemble(window, set())]
    psw = next(i for i, line in enumerate(lines) if line.startswith("▶"))
    shown = next(line.split()[0] for line in reversed(lines[:psw])
                 if line.startswith("    src/"))
    assert shown == str(at_purgatory.execute(f"u /s {window.psw:#x} 1").data["instructions"][0]
                        ["source"])
    if shutil.which(ADDR2LINE) is not None:
        base = lpar.kdump.image.segment("purgatory").mem
        assert shown == _addr2line("purgatory", window.psw - base)
