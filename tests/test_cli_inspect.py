"""`dumplab inspect` and `dumplab convert`: what they print, JSON, and one-line failures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from dump_samples import (
    PREFIXES,
    ROOT,
    VMCOREINFO_TEXT,
    memory_image,
    page_kinds,
    reader,
    s390_memory,
    statuses,
)

from console.cli import main
from machine.formats import read_s390_dump, read_vmcore, write_s390_dump, write_vmcore
from machine.formats.notes import vmcore_notes
from machine.formats.summary import decode_psw

SIZE = 32 << 20


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(scope="module")
def vmcore(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "vmcore"
    write_vmcore(path, vmcore_notes(statuses(), VMCOREINFO_TEXT), [(0, SIZE)],
                 reader(memory_image(SIZE)))
    return path


@pytest.fixture(scope="module")
def s390(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "dump.s390"
    write_s390_dump(path, reader(s390_memory(SIZE)), SIZE, prefixes=PREFIXES,
                    tod=0xDB1F2E3D4C5B6A79)
    return path


# ---------------------------------------------------------------------------------------------
# PSW decoding


def test_psw_decoding_of_the_real_runs_psws() -> None:
    running = decode_psw(0x0400C00180000000, 0x10E680)  # §6.4: DAT, home, 64-bit
    assert running["dat"] and running["asc"] == "home" and running["addressing"] == 64
    assert not running["io"] and not running["ext"] and running["state"] == "running"
    idle = decode_psw(0x0706C00180000000, 0x3D1326)  # enabled wait in psw_idle
    assert idle["io"] and idle["ext"] and idle["mcheck"] and idle["wait"]
    assert idle["state"] == "enabled wait" and idle["key"] == 0 and idle["cc"] == 0


def test_psw_decoding_of_key_problem_state_cc_and_address_modes() -> None:
    psw = decode_psw(0x0051200000000000, 0x1234)
    assert (psw["key"], psw["problem_state"], psw["cc"], psw["addressing"]) == (5, True, 2, 24)
    assert decode_psw(0x0002000080000000, 0)["state"] == "disabled wait"
    assert decode_psw(0x0000000080000000, 0)["addressing"] == 31
    assert decode_psw(0x0000000100000000, 0)["addressing"] is None


# ---------------------------------------------------------------------------------------------
# inspect


def test_inspect_a_vmcore(capsys, vmcore: Path) -> None:
    status, out, err = run(capsys, "inspect", str(vmcore))
    assert (status, err) == (0, "")
    zero = page_kinds(SIZE // 4096).count("zero")
    assert "ELF vmcore" in out
    assert "0x0000000000000000-0x0000000001ffffff  32 MiB" in out
    assert f"{zero} all-zero pages filtered out" in out
    assert "CPUs      2" in out
    first, second = statuses()
    assert f"PSW   {first.psw_mask:016x} {first.psw_addr:016x}" in out
    assert "key 0, 64-bit, CC 0, I/O enabled, EXT enabled" in out
    assert "machine checks enabled" in out and "; enabled wait" in out
    assert f"; disabled wait, code {second.psw_addr:#x}" in out
    for n, value in enumerate(second.gprs):
        assert f"r{n:<2} {value:016x}" in out
    assert "prefix 0x0106c000" in out and "prefix 0x0106e000" in out
    assert f"CPU timer {first.cpu_timer:016x}" in out
    assert f"clock comparator {first.clock_comparator >> 8:016x} (as stored" in out
    for line in VMCOREINFO_TEXT.splitlines():
        assert f"  {line}" in out


def test_inspect_json_is_one_object_with_the_same_facts(capsys, vmcore: Path) -> None:
    status, out, _ = run(capsys, "inspect", str(vmcore), "--json")
    assert status == 0 and out.count("\n") == 1
    summary = json.loads(out)
    dump = read_vmcore(vmcore)
    assert summary["format"] == "elf"
    assert summary["memory"]["ranges"] == [{"start": 0, "end": SIZE, "size": SIZE}]
    assert summary["memory"]["pages_filtered"] == dump.pages_filtered > 0
    assert summary["vmcoreinfo"] == VMCOREINFO_TEXT
    for cpu, original in zip(summary["cpus"], statuses(), strict=True):
        assert cpu["psw"]["mask"] == original.psw_mask
        assert cpu["psw"]["address"] == original.psw_addr
        assert cpu["gprs"] == list(original.gprs)
        assert cpu["prefix"] == original.prefix
        assert cpu["cpu_timer"] == original.cpu_timer
        assert cpu["clock_comparator"] == original.clock_comparator >> 8
    assert [n["type_name"] for n in summary["elf"]["notes"][:2]] == ["NT_PRPSINFO",
                                                                    "NT_PRSTATUS"]


def test_inspect_an_s390_dump(capsys, s390: Path) -> None:
    status, out, err = run(capsys, "inspect", str(s390))
    assert (status, err) == (0, "")
    assert "s390 dump format, version 5" in out
    assert "tod db1f2e3d4c5b6a79" in out and "end marker DUMP_END" in out
    assert "cpu_cnt 2" in out
    assert f"{statuses()[0].gprs[15]:016x}" in out
    assert "VMCOREINFO (through the lowcore pointer 0xe0c" in out
    status, out, _ = run(capsys, "inspect", "--json", str(s390))
    summary = json.loads(out)
    assert summary["s390"]["lc_vec"] == list(PREFIXES)
    assert [c["psw"]["mask"] for c in summary["cpus"]] == [s.psw_mask for s in statuses()]


# ---------------------------------------------------------------------------------------------
# convert


def test_convert_both_ways(capsys, tmp_path: Path, s390: Path) -> None:
    status, out, err = run(capsys, "convert", str(s390), str(tmp_path / "vmcore"))
    assert (status, err) == (0, "")
    assert "(s390) ->" in out and "(elf)" in out
    assert read_vmcore(tmp_path / "vmcore").read(0, SIZE) == read_s390_dump(s390).read(0, SIZE)
    status, out, _ = run(capsys, "convert", str(tmp_path / "vmcore"), str(tmp_path / "back"))
    assert status == 0 and "(elf) ->" in out
    assert (tmp_path / "back").read_bytes() == s390.read_bytes()[:8] + \
        (tmp_path / "back").read_bytes()[8:]
    status, _, _ = run(capsys, "convert", "--format", "elf", str(s390), str(tmp_path / "e2"))
    assert status == 0 and read_vmcore(tmp_path / "e2").pages_filtered == 0


# ---------------------------------------------------------------------------------------------
# Bad files: one line, exit 1


def bad_files(folder: Path, vmcore: Path, s390: Path) -> dict[str, Path]:
    files = {
        "missing": folder / "missing",
        "empty": folder / "empty",
        "random": folder / "random",
        "truncated vmcore": folder / "truncated.vmcore",
        "truncated s390": folder / "truncated.s390",
        "directory": folder,
    }
    files["empty"].write_bytes(b"")
    files["random"].write_bytes(bytes((i * 37 + 11) % 256 for i in range(5000)))
    files["truncated vmcore"].write_bytes(vmcore.read_bytes()[:0x2345])
    files["truncated s390"].write_bytes(s390.read_bytes()[:SIZE // 2])
    return files


@pytest.mark.parametrize("command", ["inspect", "convert"])
def test_bad_files_give_one_line_naming_the_file_and_exit_1(capsys, tmp_path: Path,
                                                            vmcore: Path, s390: Path,
                                                            command: str) -> None:
    for name, path in bad_files(tmp_path, vmcore, s390).items():
        argv = [command, str(path)] + ([str(tmp_path / "out")] if command == "convert" else [])
        status, out, err = run(capsys, *argv)
        assert status == 1, name
        assert out == "", name
        assert err.count("\n") == 1 and err.startswith(f"dumplab {command}: "), (name, err)
        assert str(path) in err, (name, err)
        assert "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_truncated_s390_dump_says_incomplete(capsys, tmp_path: Path, s390: Path) -> None:
    path = tmp_path / "cut"
    path.write_bytes(s390.read_bytes()[:-16])
    status, _, err = run(capsys, "inspect", str(path))
    assert status == 1
    assert err == f"dumplab inspect: {path}: incomplete dump: no DUMP_END marker (file has " \
                  f"{0x1000 + SIZE:#x} of {0x1000 + SIZE + 16:#x} bytes)\n"


def test_convert_into_a_missing_directory_is_one_line(capsys, tmp_path: Path,
                                                      s390: Path) -> None:
    target = tmp_path / "no" / "out"
    status, _, err = run(capsys, "convert", str(s390), str(target))
    assert status == 1
    assert err == f"dumplab convert: {target}: No such file or directory\n"


def test_the_installed_command_prints_no_traceback(tmp_path: Path) -> None:
    junk = tmp_path / "junk"
    junk.write_bytes(b"\x7fELF\x02\x02\x01")
    done = subprocess.run([sys.executable, "-m", "console.cli", "inspect", str(junk)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)
    assert done.returncode == 1
    assert done.stderr == f"dumplab inspect: {junk}: truncated ELF header (7 of 64 bytes)\n"
