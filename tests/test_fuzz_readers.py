"""Fuzzing every reader of a user-named file (issue 11): dumps (ELF and s390, a two-system
dump with --select, inspect and convert), journals, lab and demo files, profiles and command
lines.

Hypothesis mutates a valid sample of each; a child process (tests/fuzz_worker.py, address
space limited to 3 GiB) runs the reader, each case bounded to 5 s. The properties: a valid
result or one line naming the problem with the documented exit status, never a traceback,
no temporary file left, nothing but the named output written. Seeded (derandomize), no
example database: the same cases on every run. The number of cases run per reader is printed
at the end of the module.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import MS
from dump_samples import PREFIXES, VMCOREINFO_TEXT, reader, s390_memory, statuses
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from console.cli import main
from machine.formats import vmcore_notes, write_s390_dump, write_vmcore

ROOT = Path(__file__).resolve().parent.parent
CASE_SECONDS = 5
COUNTS: Counter[str] = Counter()


def fuzz(examples: int):
    """Seeded, bounded hypothesis settings; time per case is bounded by the worker."""
    return settings(max_examples=examples, derandomize=True, database=None, deadline=None,
                    suppress_health_check=list(HealthCheck), print_blob=False)


class Worker:
    """tests/fuzz_worker.py, restarted if a case kills it."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[str] | None = None

    def ask(self, request: dict) -> dict:
        if self.process is None or self.process.poll() is not None:
            self.process = subprocess.Popen(
                [sys.executable, str(ROOT / "tests" / "fuzz_worker.py")], text=True,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        ready, _, _ = select.select([self.process.stdout], [], [], CASE_SECONDS)
        if not ready:
            self.close()
            pytest.fail(f"a case took more than {CASE_SECONDS} s: {request}")
        line = self.process.stdout.readline()
        if not line:
            code = self.process.wait()
            self.process = None
            pytest.fail(f"the reader killed its process (status {code}): {request}")
        reply = json.loads(line)
        assert "crash" not in reply, f"{request}\n{reply['crash']}"
        return reply

    def close(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@pytest.fixture(scope="module")
def worker(request: pytest.FixtureRequest) -> Iterator[Worker]:
    child = Worker()
    yield child
    child.close()
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line("\nfuzz cases run: " + ", ".join(
                f"{name} {count}" for name, count in sorted(COUNTS.items())))


def one_line(text: str) -> str:
    assert "Traceback" not in text and "internal error" not in text, text
    lines = text.splitlines()
    assert len(lines) == 1, text
    return lines[0]


def leftovers(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir() if ".partial" in path.name)


# ---------------------------------------------------------------------------------------------
# Dumps

SIZE = 8 << 20


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("samples")
    image = s390_memory(SIZE)
    write_s390_dump(folder / "s390", reader(image), SIZE, prefixes=PREFIXES)
    write_vmcore(folder / "elf", vmcore_notes(statuses(), VMCOREINFO_TEXT), [(0, SIZE)],
                 reader(image))
    return {name: (folder / name).read_bytes() for name in ("s390", "elf")}


# Values a crafted header field would hold: zero, one, page and size edges, the top bits.
EDGES = [0, 1, 0xFFF, 0x1000, SIZE, (1 << 31) - 1, 1 << 32, (1 << 40) + 1, 1 << 63,
         (1 << 64) - 1, (1 << 64) - 0x1000]


@st.composite
def mutations(draw: st.DrawFn, length: int) -> list[tuple[int, bytes]]:
    """Byte patches, most of them in the headers (the first 8 KiB) where parsing happens."""
    patches = []
    for _ in range(draw(st.integers(1, 6))):
        where = draw(st.one_of(st.integers(0, 0x2000), st.integers(0, length - 1)))
        if draw(st.booleans()):
            width = draw(st.sampled_from([2, 4, 8]))
            value = draw(st.sampled_from(EDGES)) & ((1 << (8 * width)) - 1)
            patches.append((where - where % width, value.to_bytes(width, "big")))
        else:
            patches.append((where, draw(st.binary(min_size=1, max_size=16))))
    return patches


def mutated(sample: bytes, patches: list[tuple[int, bytes]], cut: int | None) -> bytes:
    data = bytearray(sample)
    for where, raw in patches:
        data[where:where + len(raw)] = raw
    return bytes(data[:cut]) if cut is not None else bytes(data)


def check_dump_command(worker: Worker, folder: Path, argv: list[str], name: str) -> None:
    before = {path.name: path.stat().st_mtime_ns for path in folder.iterdir()}
    reply = worker.ask({"op": "cli", "argv": argv})
    assert reply["status"] in (0, 1), reply
    if reply["status"] == 1:
        line = one_line(reply["err"])
        assert line.startswith(f"dumplab {argv[0]}: "), line
    assert leftovers(folder) == []
    after = {path.name: path.stat().st_mtime_ns for path in folder.iterdir()}
    output = {"out"} if argv[0] == "convert" and reply["status"] == 0 else set()
    assert set(after) == set(before) | output
    assert all(after[key] == before[key] for key in before)  # the input untouched
    COUNTS[name] += 1


@pytest.mark.parametrize("kind", ["elf", "s390"])
def test_fuzz_inspect_and_convert(worker: Worker, samples: dict[str, bytes],
                                  tmp_path_factory: pytest.TempPathFactory, kind: str) -> None:
    sample = samples[kind]

    @fuzz(150)
    @given(patches=mutations(len(sample)),
           cut=st.one_of(st.none(), st.integers(0, len(sample))),
           convert=st.booleans(), to=st.sampled_from([None, "elf", "s390"]))
    def case(patches, cut, convert, to) -> None:
        folder = tmp_path_factory.mktemp("case")
        source = folder / "in"
        source.write_bytes(mutated(sample, patches, cut))
        if convert:
            argv = ["convert", str(source), str(folder / "out")] + (["--format", to] if to
                                                                    else [])
            check_dump_command(worker, folder, argv, f"convert {kind}")
        else:
            check_dump_command(worker, folder, ["inspect", str(source)], f"inspect {kind}")
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()

    case()


@pytest.fixture(scope="module")
def two_system_dump(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The stand-alone dump of a system whose kdump failed after its swap (two systems in
    one dump), as tests/test_two_systems.py makes it."""
    from full_dumps import wait_for_full_dump
    from test_two_systems import booted_with_kdump

    from machine.faults import inject

    lpar, _ = booted_with_kdump(tmp_path_factory.mktemp("two"), kdump_failure="halt")
    inject(lpar, ["kdump-save-fails"])
    inject(lpar, ["panic", "test crash"])
    assert lpar.run_until(lambda e: e.kind == "wait", 3000 * MS) is not None
    lpar.stop()
    lpar.load(0x200, store_status=True)
    written = wait_for_full_dump(lpar)  # the dump stays on the device: copied off here
    lpar.close()
    return Path(written.path)


def test_fuzz_select_on_a_two_system_dump(worker: Worker, two_system_dump: Path) -> None:
    """Patches where --select looks (the lowcore, the kdump kernel's page at 0x10000, the
    header), made in place and undone after each case: the dump is 128 MiB."""
    size = two_system_dump.stat().st_size

    @fuzz(100)
    @given(patches=st.lists(st.tuples(st.one_of(st.integers(0, 0x2000),
                                                st.integers(0x1000 + 0x10000, 0x1000 + 0x12000),
                                                st.integers(0, size - 1)),
                                      st.one_of(st.binary(min_size=1, max_size=8),
                                                st.sampled_from(EDGES).map(
                                                    lambda v: v.to_bytes(8, "big")))),
                            min_size=1, max_size=4),
           select_=st.sampled_from(["prod", "kdump", "all"]))
    def case(patches, select_) -> None:
        originals = []
        with open(two_system_dump, "r+b") as file:
            for where, raw in patches:
                file.seek(where)
                originals.append((where, file.read(len(raw))))
                file.seek(where)
                file.write(raw)
        try:
            reply = worker.ask({"op": "cli", "argv": ["inspect", str(two_system_dump),
                                                      "--select", select_]})
            assert reply["status"] in (0, 1), reply
            if reply["status"] == 1:
                assert one_line(reply["err"]).startswith("dumplab inspect: ")
            COUNTS["inspect --select (two systems)"] += 1
        finally:
            with open(two_system_dump, "r+b") as file:
                for where, raw in reversed(originals):
                    file.seek(where)
                    file.write(raw)

    case()


# ---------------------------------------------------------------------------------------------
# Text files: journals, labs, demos, profiles

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(1 << 70), 1 << 70) | st.floats()
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=12)


@pytest.fixture(scope="module")
def journal_sample(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("journal") / "j"
    assert main(["run", "-c", "help; status", "--workdir", str(path.parent / "w"),
                 "--journal", str(path)]) == 0
    return path.read_text()


@st.composite
def journal_lines(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["run", "command", "stage", "console", None]))
    record = draw(st.dictionaries(st.sampled_from(["ns", "times", "t", "command", "ok",
                                                   "message", "kind", "free_running"]),
                                  JSON_VALUES, max_size=5))
    if kind is not None:
        record["kind"] = kind
    text = json.dumps(record)
    return draw(st.sampled_from([text, text[:draw(st.integers(0, len(text)))],
                                 "[" * draw(st.integers(1, 200_000)), "\x00\xff"]))


def check_text_reader(worker: Worker, path: Path, op: str) -> None:
    reply = worker.ask({"op": op, "path": str(path)})
    if "error" in reply:
        assert "\n" not in reply["error"], reply
        assert reply["error"].startswith(str(path)), reply
    COUNTS[op] += 1


def text_mutation(sample: str) -> st.SearchStrategy[str]:
    """The sample with lines replaced, inserted or cut, by generated TOML-ish or random
    text."""
    lines = sample.splitlines()
    toml_values = st.one_of(
        st.integers(-(1 << 80), 1 << 80).map(str), st.sampled_from(
            ["nan", "inf", "-inf", "-5", "1e400", '"\u0661G"', '"64G"', '"1T"', "0",
             "[" * 5000 + "]" * 5000, "{a = {b = {c = 1}}}", '"x"', "true"]),
        st.text(max_size=30).map(json.dumps))
    keys = st.sampled_from(["pause", "width", "height", "memory", "cpus", "crashkernel",
                            "title", "steps", "commands", "caption", "check", "timeout",
                            "workload", "dump_size", "boot_devno", "x"])
    new_line = st.one_of(st.tuples(keys, toml_values).map(lambda kv: f"{kv[0]} = {kv[1]}"),
                         st.text(max_size=40), st.just("[[steps]]"), st.just("[profile]"))
    return st.lists(st.tuples(st.integers(0, max(len(lines) - 1, 0)),
                              st.sampled_from(["replace", "insert", "cut"]), new_line),
                    min_size=1, max_size=5).map(lambda edits: _apply(lines, edits))


def _apply(lines: list[str], edits: list[tuple[int, str, str]]) -> str:
    result = list(lines)
    for index, action, text in edits:
        index = min(index, len(result))
        if action == "replace" and index < len(result):
            result[index] = text
        elif action == "insert":
            result.insert(index, text)
        else:
            result = result[:index]
    return "\n".join(result) + "\n"


def test_fuzz_journals(worker: Worker, journal_sample: str,
                       tmp_path_factory: pytest.TempPathFactory) -> None:
    lines = journal_sample.splitlines()
    folder = tmp_path_factory.mktemp("journals")

    @fuzz(200)
    @given(edits=st.lists(st.tuples(st.integers(0, len(lines)), st.booleans(), journal_lines()),
                          min_size=1, max_size=3))
    def case(edits) -> None:
        result = list(lines)
        for index, replace, text in edits:
            if replace and index < len(result):
                result[index] = text
            else:
                result.insert(index, text)
        path = folder / "fuzz.journal"
        path.write_text("\n".join(result) + "\n", errors="surrogatepass")
        check_text_reader(worker, path, "journal")

    case()


@pytest.mark.parametrize("op, sample", [
    ("lab", "assets/labs/01-hung-system.toml"),
    ("demo", "assets/demos/overview.toml"),
    ("profile", "assets/profiles/default.toml"),
])
def test_fuzz_data_files(worker: Worker, tmp_path_factory: pytest.TempPathFactory, op: str,
                         sample: str) -> None:
    text = (ROOT / sample).read_text()
    folder = tmp_path_factory.mktemp(op)
    path = folder / ("01-fuzz.toml" if op == "lab" else "fuzz.toml")

    @fuzz(150)
    @given(content=text_mutation(text))
    def case(content: str) -> None:
        path.write_text(content, errors="surrogatepass")
        check_text_reader(worker, path, op)

    case()


# ---------------------------------------------------------------------------------------------
# Command lines

WORDS = st.sampled_from(["run", "wait-for", "u", "read", "step", "load", "store", "break",
                         "fault", "regs", "status", "help", "kdump", "oscmd", "stop", "start",
                         "reset", "timeout=", "cpu=", "all", "0x", "ffffffffffffffff",
                         "99999999999999999999s", "1e9s", "\u0661", "'", '"', ";", "200",
                         "0.5ms", "-1"])


def test_fuzz_command_lines(worker: Worker) -> None:
    @fuzz(400)
    @given(line=st.one_of(st.lists(st.one_of(WORDS, st.text(max_size=12)), min_size=1,
                                   max_size=6).map(" ".join), st.text(max_size=80)))
    def case(line: str) -> None:
        reply = worker.ask({"op": "command", "line": line})
        if not reply["ok"]:
            assert "\n" not in reply["message"], reply
        COUNTS["command"] += 1

    case()
