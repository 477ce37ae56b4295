"""Issue 11: hostile inputs, files and signals. One named regression test per problem the
fuzzing round found; each failed before the fix (a hang, a traceback, unbounded memory, or a
file the user did not name replaced).

Inputs must be regular files of a sane size (machine/userfiles.py), outputs are written
atomically and never over a symlink, device, FIFO or directory, the work directory is checked
and locked (machine/workdir.py), and every size a file or a command line claims is bounded.
"""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import stat
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dump_samples import PREFIXES, reader, s390_memory

from console.cli import main
from console.training.demos import load_demos
from console.training.labs import load_labs
from machine.formats import S390Header, write_s390_dump
from machine.formats.s390dump import end_marker
from machine.profile import Profile, ProfileError

ROOT = Path(__file__).resolve().parent.parent
GiB = 1 << 30


def dumplab(*argv: str, timeout: float = 60, address_space: int | None = 4 * GiB,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m console.cli ARGV` in a child with a bounded address space and run time, so
    that a regression fails the test instead of eating the host or hanging it."""
    def limit() -> None:
        if address_space is not None:
            resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("DUMPLAB_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "console.cli", *argv], capture_output=True,
                          text=True, timeout=timeout, preexec_fn=limit, env=env, cwd=cwd,
                          check=False)


def one_line(text: str) -> str:
    lines = text.splitlines()
    assert len(lines) == 1, text
    assert "Traceback" not in text and "internal error" not in text, text
    return lines[0]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def specials(tmp_path: Path) -> dict[str, Path]:
    """A FIFO, a character device (a node of /dev/null's numbers), a directory, and a symlink
    to a regular file, each to be refused as an input or an output."""
    found = {"fifo": tmp_path / "fifo", "directory": tmp_path / "dir",
             "symlink": tmp_path / "link"}
    os.mkfifo(found["fifo"])
    found["directory"].mkdir()
    (tmp_path / "precious").write_text("keep me\n")
    found["symlink"].symlink_to(tmp_path / "precious")
    try:
        os.mknod(tmp_path / "chardev", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        found["chardev"] = tmp_path / "chardev"
    except PermissionError:
        pass  # not root: the FIFO and the others still run
    return found


def untouched(specials: dict[str, Path]) -> None:
    assert stat.S_ISFIFO(os.lstat(specials["fifo"]).st_mode)
    assert specials["directory"].is_dir() and not list(specials["directory"].iterdir())
    assert specials["symlink"].is_symlink()
    assert (specials["symlink"].parent / "precious").read_text() == "keep me\n"
    if "chardev" in specials:
        assert stat.S_ISCHR(os.lstat(specials["chardev"]).st_mode)
    parent = specials["fifo"].parent
    assert not list(parent.rglob("*.partial")), list(parent.rglob("*.partial"))


# ---------------------------------------------------------------------------------------------
# 1. Special files are read without limit


def test_activate_dev_zero_fails_at_once_in_little_memory(tmp_path: Path) -> None:
    started = time.monotonic()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result = dumplab("run", "-c", "activate /dev/zero", "--workdir", str(tmp_path / "w"))
    seconds = time.monotonic() - started
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    assert result.returncode == 1
    assert one_line(result.stderr) == ("dumplab: line 1 of -c: /dev/zero: cannot read profile: "
                                       "a character device, not a regular file (a profile "
                                       "must be one)")
    # Measured 0.75 s and 42 MB on the development host; the bound leaves room for a busy CI.
    assert seconds < 10
    assert max(peak_kib, before) < 200 * 1024 or peak_kib == before


@pytest.mark.parametrize("argv", [
    ["run", "{special}", "--workdir", "{tmp}/w"],
    ["replay", "{special}"],
    ["inspect", "{special}"],
    ["convert", "{special}", "{tmp}/out"],
    ["run", "-c", "activate {special}", "--workdir", "{tmp}/w"],
], ids=["run FILE", "replay", "inspect", "convert", "activate FILE"])
@pytest.mark.parametrize("kind", ["fifo", "/dev/zero", "directory"])
def test_a_special_file_as_input_is_refused_in_one_line(tmp_path: Path, specials, argv,
                                                        kind: str) -> None:
    special = kind if kind.startswith("/") else str(specials[kind])
    args = [word.format(special=special, tmp=tmp_path) for word in argv]
    result = dumplab(*args, timeout=30, address_space=2 * GiB)
    assert result.returncode in (1, 2), result.stderr
    line = one_line(result.stderr)
    assert "not a regular file" in line, line
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------
# 2. The atomic writers replace what they should refuse


@pytest.fixture(scope="module")
def small_dump(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dump") / "small.s390"
    write_s390_dump(path, reader(s390_memory(32 << 20)), 32 << 20, prefixes=PREFIXES)
    return path


@pytest.mark.parametrize("kind", ["fifo", "directory", "symlink", "chardev"])
def test_a_special_file_as_journal_is_refused_and_left_alone(tmp_path: Path, specials,
                                                             capsys, kind: str) -> None:
    if kind not in specials:
        pytest.skip("mknod needs root")
    status, _, err = run(capsys, "run", "-c", "help", "--workdir", str(tmp_path / "w"),
                         "--journal", str(specials[kind]))
    assert status == 2
    assert "refusing to replace it" in one_line(err)
    untouched(specials)


@pytest.mark.parametrize("kind", ["fifo", "directory", "symlink", "chardev"])
def test_a_special_file_as_convert_output_is_refused_and_left_alone(
        tmp_path: Path, specials, small_dump: Path, capsys, kind: str) -> None:
    if kind not in specials:
        pytest.skip("mknod needs root")
    status, _, err = run(capsys, "convert", str(small_dump), str(specials[kind]))
    assert status == 1
    line = one_line(err)
    assert line.startswith(f"dumplab convert: {specials[kind]}: ") and "refusing" in line
    assert ".partial" not in line
    untouched(specials)


@pytest.mark.parametrize("kind", ["fifo", "directory", "symlink", "chardev"])
def test_a_special_file_as_demo_recording_is_refused_and_left_alone(
        tmp_path: Path, specials, kind: str) -> None:
    if kind not in specials:
        pytest.skip("mknod needs root")
    result = dumplab("demo", "overview", "--record", str(specials[kind]), timeout=120)
    assert result.returncode == 2  # a bad --record target is a usage error (docs/LABS.md)
    assert re.search("refusing to replace it|it is a directory", one_line(result.stderr))
    untouched(specials)


def test_convert_into_a_missing_directory_names_the_output_not_a_temporary(
        tmp_path: Path, small_dump: Path, capsys) -> None:
    out = tmp_path / "nowhere" / "out.elf"
    status, _, err = run(capsys, "convert", str(small_dump), str(out))
    assert status == 1
    assert one_line(err) == f"dumplab convert: {out}: No such file or directory"


# ---------------------------------------------------------------------------------------------
# 3. Concurrent runs in one work directory


def test_three_stand_alone_dump_runs_on_one_workdir_never_corrupt_a_dump(tmp_path: Path) -> None:
    workdir = tmp_path / "shared"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    children = [subprocess.Popen([sys.executable, "-m", "console.cli", "run", "--scenario",
                                  "hang-sadump-nokdump", "--workdir", str(workdir)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                 env=env) for _ in range(3)]
    outcomes = [(child.wait(timeout=300), child.stderr.read()) for child in children]
    completed = [err for status, err in outcomes if status == 0]
    refused = [err for status, err in outcomes if status != 0]
    assert completed, outcomes
    for err in refused:
        assert "work directory" in err and "in use by PID" in one_line(err), err
    assert [status for status, _ in outcomes if status != 0] == [2] * len(refused)
    dumps = sorted((workdir / "dumps").glob("*.s390"))
    assert len(dumps) == len(completed)
    for dump in dumps:
        # Written sparse: the zero memory of the dump device is not copied (issue 11, item 5).
        assert dump.stat().st_blocks * 512 < dump.stat().st_size // 2
        result = dumplab("inspect", str(dump), "--json")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["format"] == "s390"


HOLDER = """
import sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from machine.workdir import claim_workdir
claim_workdir(Path(sys.argv[2]))
print("held", flush=True)
time.sleep(60)
"""


def test_a_second_run_on_a_locked_workdir_is_refused_at_once(tmp_path: Path, capsys) -> None:
    from machine.workdir import claim_workdir

    workdir = tmp_path / "w"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER,
         str(ROOT), str(workdir)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        status, _, err = run(capsys, "run", "-c", "activate", "--workdir", str(workdir))
        assert status == 2
        assert one_line(err) == (f"dumplab run: error: work directory {workdir} in use by PID "
                                 f"{holder.pid} (use another --workdir)")
    finally:
        holder.kill()
        holder.wait()
    with claim_workdir(workdir):  # free again once the holder is gone
        pass


# ---------------------------------------------------------------------------------------------
# 4. convert trusts the ELF


def elf_core(path: Path, phdrs: list[tuple[int, int, int, int, int]], size: int = 0) -> Path:
    """A minimal ELF64 big-endian s390 core with the given (type, offset, paddr, filesz,
    memsz) program headers, extended (sparse) to `size` bytes."""
    ident = b"\x7fELF" + bytes([2, 2, 1, 0]) + bytes(8)
    header = struct.pack(">16sHHIQQQIHHHHHH", ident, 4, 22, 1, 0, 64, 0, 0, 64, 56, len(phdrs),
                         0, 0, 0)
    table = b"".join(struct.pack(">IIQQQQQQ", kind, 7, offset, paddr, paddr, filesz, memsz,
                                 4096) for kind, offset, paddr, filesz, memsz in phdrs)
    with open(path, "wb") as file:
        file.write(header + table)
        file.truncate(max(size, 4096))
    return path


@pytest.mark.parametrize("phdrs, problem, inspect_refuses", [
    ([(1, 4096, 0, 0, 1 << 63)], "more than the 1 TiB", True),
    ([(1, 4096, (1 << 64) - 4096, 0, 8192)], "past the end of the 64-bit address space", True),
    # Inspect shows one page far up; only the s390 dump of [0, 1 PiB) is impossible.
    ([(1, 4096, 1 << 50, 0, 4096)], "larger than the 1 TiB", False),
    ([(4, 4096, 0, 3 * GiB, 3 * GiB)], "more than the 16 MiB", True),
], ids=["p_memsz 2**63", "p_paddr near 2**64", "PT_LOAD at 1 PiB", "3 GiB PT_NOTE"])
def test_convert_and_inspect_refuse_impossible_program_headers(
        tmp_path: Path, capsys, phdrs, problem: str, inspect_refuses: bool) -> None:
    source = elf_core(tmp_path / "crafted", phdrs, size=4 * GiB if phdrs[0][0] == 4 else 0)
    status, _, err = run(capsys, "convert", str(source), str(tmp_path / "out"))
    assert status == 1 and problem in one_line(err), err
    assert not (tmp_path / "out").exists()
    if inspect_refuses:
        status, _, err = run(capsys, "inspect", str(source))
        assert status == 1 and problem in one_line(err), err


def test_convert_writes_zero_memory_as_holes(tmp_path: Path, capsys) -> None:
    """One PT_LOAD of p_filesz 0 and p_memsz 64 GiB: the s390 dump is 64 GiB long but costs
    (almost) no disk and no time, and so do the conversions back; it used to write 8.4 GB
    of zeros before the disk filled."""
    source = elf_core(tmp_path / "zeros.elf", [(1, 4096, 0, 0, 64 * GiB)])
    started = time.monotonic()
    for name in ("zeros.s390", "zeros-back.elf", "zeros-again.s390"):
        out = tmp_path / name
        status, _, err = run(capsys, "convert", str(source), str(out))
        assert status == 0, err
        assert out.stat().st_size >= 64 * GiB
        assert out.stat().st_blocks * 512 < 1 << 20, name
        source = out
    assert time.monotonic() - started < 60  # measured: about 1 s for all three


# ---------------------------------------------------------------------------------------------
# 5. Bad --workdir


@pytest.fixture
def bad_workdirs(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "file").write_text("a file\n")
    return {"a file": tmp_path / "file", "/dev/null": Path("/dev/null"),
            "FILE/sub": tmp_path / "file" / "sub", "under /proc": Path("/proc/nothing/here")}


@pytest.fixture
def journal_file(tmp_path: Path, capsys) -> Path:
    path = tmp_path / "help.journal"
    assert main(["run", "-c", "help", "--workdir", str(tmp_path / "rec"), "--journal",
                 str(path)]) == 0
    capsys.readouterr()
    return path


@pytest.mark.parametrize("which", ["a file", "/dev/null", "FILE/sub", "under /proc"])
@pytest.mark.parametrize("command", ["run", "replay", "lab --solve", "demo --headless"])
def test_a_bad_workdir_is_a_usage_error_in_one_line(capsys, bad_workdirs, journal_file,
                                                    command: str, which: str) -> None:
    workdir = str(bad_workdirs[which])
    argv = {"run": ["run", "-c", "activate"], "replay": ["replay", str(journal_file)],
            "lab --solve": ["lab", "1", "--headless", "--solve"],
            "demo --headless": ["demo", "overview", "--headless"]}[command]
    status, _, err = run(capsys, *argv, "--workdir", workdir)
    assert status == 2
    assert one_line(err).startswith(f"dumplab {argv[0]}: error: work directory {workdir}")
    assert bad_workdirs["a file"].read_text() == "a file\n"


@pytest.mark.skipif(not Path("/sys/kernel").is_dir(), reason="needs sysfs")
def test_replay_into_a_workdir_it_cannot_write_says_why(tmp_path: Path, capsys) -> None:
    """sysfs takes no new files, like a read-only file system: replay used to report "differs
    at event 0" (the activation failed) instead of the reason."""
    journal = tmp_path / "activate.journal"
    assert main(["run", "-c", "activate", "--workdir", str(tmp_path / "w"), "--journal",
                 str(journal)]) == 0
    capsys.readouterr()
    status, out, err = run(capsys, "replay", str(journal), "--workdir", "/sys/kernel")
    assert (status, out) == (2, "")
    assert one_line(err).startswith("dumplab replay: error: work directory /sys/kernel: ")


# ---------------------------------------------------------------------------------------------
# 6. Memory the host cannot back


def test_memory_the_host_cannot_back_is_refused_in_one_line(tmp_path: Path, capsys) -> None:
    status, _, err = run(capsys, "run", "-c", "activate", "--memory", "1T", "--workdir",
                         str(tmp_path))
    assert status == 1
    assert "cannot activate: 1048576 MiB of storage is more than this host can back" \
        in one_line(err)


def test_memory_beyond_the_address_space_limit_is_refused(tmp_path: Path) -> None:
    result = dumplab("run", "-c", "activate", "--memory", "8G", "--workdir", str(tmp_path),
                     address_space=6 * GiB)
    assert result.returncode == 1
    assert "cannot activate: 8192 MiB of storage is more than" in one_line(result.stderr)


# ---------------------------------------------------------------------------------------------
# 7. Virtual time without bound


@pytest.mark.parametrize("command, problem", [
    ("run 99999999999999999999999s", "run: duration '99999999999999999999999s' too long"),
    ("wait-for stopped timeout=100000s", "timeout '100000s' too long"),
])
def test_virtual_time_is_capped_at_an_hour(tmp_path: Path, capsys, command, problem) -> None:
    status, _, err = run(capsys, "run", "-c", f"activate; {command}", "--workdir",
                         str(tmp_path))
    assert status == 1
    assert problem in one_line(err) and "at most 3600s of virtual time" in err


def test_a_journal_run_record_beyond_an_hour_is_refused(journal_file: Path, capsys) -> None:
    lines = journal_file.read_text().splitlines()
    lines.insert(1, json.dumps({"kind": "run", "t": 0, "ns": 10 ** 18, "times": 1}))
    journal_file.write_text("\n".join(lines) + "\n")
    status, _, err = run(capsys, "replay", str(journal_file))
    assert status == 2
    assert one_line(err) == (f"dumplab replay: {journal_file}:2: a run record covers more than "
                             "3600s of virtual time (ns × times)")


# ---------------------------------------------------------------------------------------------
# 8. RecursionError


def test_a_deeply_nested_journal_line_is_a_journal_error(journal_file: Path, capsys) -> None:
    with journal_file.open("a") as file:
        file.write("[" * 100_000 + "\n")
    status, _, err = run(capsys, "replay", str(journal_file))
    assert status == 2
    assert one_line(err).endswith(":2: JSON nested too deeply") or "nested too deeply" in err


def test_a_deeply_nested_lab_file_is_an_error_and_the_others_still_load(tmp_path: Path) -> None:
    shipped = ROOT / "assets" / "labs" / "01-hung-system.toml"
    (tmp_path / "01-hung-system.toml").write_text(shipped.read_text())
    (tmp_path / "02-deep.toml").write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")
    catalogue = load_labs(tmp_path)
    assert [lab.number for lab in catalogue.labs] == [1]
    assert len(catalogue.errors) == 1 and "nested too deeply" in catalogue.errors[0]


def test_a_deeply_nested_profile_is_a_profile_error(tmp_path: Path) -> None:
    path = tmp_path / "deep.toml"
    path.write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ProfileError, match="nested too deeply"):
        Profile.load(path)


# ---------------------------------------------------------------------------------------------
# 9. Signals, demo numbers, echoed secrets, odd names, odd addresses


@pytest.mark.parametrize("signum, status, message", [
    (signal.SIGINT, 130, "dumplab run: interrupted (Ctrl+C); files being written were removed"),
    (signal.SIGTERM, 143, ("dumplab run: terminated (SIGTERM); files being written were "
                          "removed")),
], ids=["Ctrl+C", "SIGTERM"])
def test_a_signal_during_run_is_one_line_and_leaves_no_partial_file(
        tmp_path: Path, signum: int, status: int, message: str) -> None:
    child = subprocess.Popen(
        [sys.executable, "-m", "console.cli", "run", "-c",
         "activate; load 0100; run 3600s",
         "--workdir", str(tmp_path / "w"), "--journal", str(tmp_path / "j")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.monotonic() + 30
    while not list(tmp_path.glob(".j.*partial")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1)  # into `run 3600s`
    child.send_signal(signum)
    _, err = child.communicate(timeout=60)
    assert child.returncode == status, err
    assert one_line(err) == message
    assert not list(tmp_path.rglob("*partial")) and not (tmp_path / "j").exists()


def sparse_s390_dump(path: Path, size: int) -> Path:
    """An s390 dump of `size` bytes of zero memory, sparse (so 4 GiB cost nothing)."""
    header = S390Header(mem_size=size).pack()
    with open(path, "wb") as file:
        file.write(header)
        file.seek(4096 + size)
        file.write(end_marker(0))
    return path


SLOW_CONVERT = """
import sys, time
sys.path.insert(0, sys.argv[1])
from machine.formats import s390dump
from console.cli import main
fast = s390dump._read_memory
def slow(*args, **kwargs):
    time.sleep(0.05)  # a slow disk: the convert is still writing when the signal comes
    return fast(*args, **kwargs)
s390dump._read_memory = slow
sys.exit(main(["convert", sys.argv[2], sys.argv[3]]))
"""


def test_sigterm_during_convert_leaves_no_partial_file(tmp_path: Path) -> None:
    source = sparse_s390_dump(tmp_path / "big.s390", 1 * GiB)
    out = tmp_path / "big.elf"
    child = subprocess.Popen([sys.executable, "-c", SLOW_CONVERT, str(ROOT), str(source),
                              str(out)], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not list(tmp_path.glob(".big.elf*partial")) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert list(tmp_path.glob(".big.elf*partial")), "the convert never started writing"
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 143, err
    assert one_line(err).startswith("dumplab convert: terminated (SIGTERM)")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["big.s390"]


@pytest.mark.parametrize("change, problem", [
    ("pause = nan", "'pause' must be 0 to 600 seconds"),
    ("pause = inf", "'pause' must be 0 to 600 seconds"),
    ("width = -5", "'width' must be 40 to 500"),
])
def test_demo_numbers_must_be_finite_and_in_range(tmp_path: Path, change: str,
                                                  problem: str) -> None:
    text = ('title = "t"\n' + (change + "\n" if change.startswith("width") else "")
            + '[[steps]]\ncaption = "c"\ncommands = ["activate"]\n'
            + (change + "\n" if change.startswith("pause") else ""))
    (tmp_path / "bad.toml").write_text(text)
    demos, errors = load_demos(tmp_path)
    assert demos == [] and len(errors) == 1 and problem in errors[0], errors


def test_activate_a_foreign_toml_file_does_not_echo_its_values(tmp_path: Path, capsys) -> None:
    secret = tmp_path / "secrets.toml"
    secret.write_text("cpus = 'hunter2-secret'\nmemory = 'also-secret'\n")
    status, _, err = run(capsys, "run", "-c", f"activate {secret}", "--workdir",
                         str(tmp_path / "w"))
    assert status == 1
    assert "secret" not in one_line(err).replace(str(secret), "")


def test_a_file_name_with_a_newline_gives_one_line(tmp_path: Path, capsys) -> None:
    name = tmp_path / "two\nlines.script"
    status, _, err = run(capsys, "run", str(name), "--workdir", str(tmp_path / "w"))
    assert status == 2
    assert "two\\nlines.script" in one_line(err)
    status, _, err = run(capsys, "inspect", str(name))
    assert status == 1 and "two\\nlines.script" in one_line(err)


def test_unassembling_an_address_that_starts_with_a_letter_says_how_to_write_it(
        tmp_path: Path, capsys) -> None:
    status, _, err = run(capsys, "run", "-c", "activate; u ffffffffffffffff 200", "--workdir",
                         str(tmp_path))
    assert status == 1
    assert one_line(err).endswith("u: no symbol 'ffffffffffffffff' (an address that starts "
                                  "with a letter is written 0xffffffffffffffff)")
    status, _, err = run(capsys, "run", "-c", "activate; u 0xffffffffffffffff 200",
                         "--workdir", str(tmp_path))
    assert status == 1 and "beyond the LPAR's storage" in one_line(err)


def test_sizes_take_ascii_digits_only(capsys) -> None:
    status, _, err = run(capsys, "run", "-c", "help", "--memory", "\u0661G")
    assert status == 2 and "bad size" in err


@pytest.mark.parametrize("times", [float("nan"), float("inf"), 1e300])
def test_lab_check_numbers_must_be_finite_and_in_range(times: float) -> None:
    from console.training.checks import CheckError, compile_check

    selector = {"event": "dump_written", "value": "bytes"}
    with pytest.raises(CheckError, match="'times' must be a number from 0 to 1,000,000"):
        compile_check({"greater": selector, "than": selector, "times": times})
