"""Recordings of the console itself (console/tui/recording.py, console/training/casts.py):
`dumplab demo NAME --record` films the Textual screen as full-screen ANSI frames on the
demo's clock (played back here with `asciinema cat`), byte-identical on every run; `--gif`
and `dumplab cast2gif` render GIFs with agg; `dumplab --record` records a live console in a
pseudo-terminal with its journal; bad sizes and targets are refused in one line (exit 2).

The overview is filmed twice (about 25 s each); everything else is fast.
"""

from __future__ import annotations

import fcntl
import io
import itertools
import json
import os
import re
import select
import shutil
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
from test_demos import BY_NAME, check_asciicast_v2

from console.cli import main
from console.training import casts
from console.training.casts import AGG_FONT_SIZE, AGG_LINE_HEIGHT, FrameCast, LiveCast
from console.tui.demo import machine_only
from console.tui.recording import record_demo_cast
from console.tui.widgets.hmc.hardware import event_lines
from console.tui.widgets.workflow.model import Timeline, dump_record
from console.tui.widgets.workflow.progress import chart
from console.tui.widgets.workflow.timeline import MARKS
from machine.events import DumpWrittenEvent

ROOT = Path(__file__).resolve().parent.parent
ROW = re.compile(r"\x1b\[(\d+);1H")
ESCAPE = re.compile(r"\x1b\[[0-9;?<>=$]*[A-Za-z]")


def rows_of(stream: str) -> list[tuple[int, str]]:
    """The rows a stream of frames writes, in order: (row number, plain text)."""
    parts = ROW.split(stream)
    return [(int(row), ESCAPE.sub("", text)) for row, text in zip(parts[1::2], parts[2::2],
                                                                    strict=True)]


def asciinema_cat(cast: Path) -> str:
    """`asciinema cat FILE` (PyPI asciinema, the test extra): what a terminal receives."""
    program = shutil.which("asciinema") or str(Path(sys.executable).parent / "asciinema")
    result = subprocess.run([program, "cat", str(cast)], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    status = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(scope="module")
def overview(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The overview filmed through the command line; (the cast, its work directory)."""
    root = tmp_path_factory.mktemp("film")
    cast = root / "overview.cast"
    assert main(["demo", "overview", "--record", str(cast), "--workdir",
                 str(root / "work")]) == 0
    return cast, root / "work"


# --------------------------------------------------------------------------------------------
# The console on film


def test_the_cast_is_asciicast_v2_at_the_demos_size_with_a_marker_per_caption_and_stage(
        overview: tuple[Path, Path]) -> None:
    header, events = check_asciicast_v2(overview[0])
    demo = BY_NAME["overview"]
    assert (header["width"], header["height"]) == (demo.width, demo.height)
    assert header["timestamp"] == 1767225600 and header["title"] == demo.title
    assert 90 <= header["duration"] <= 150  # the demo's pacing: about two minutes
    markers = [data for _, code, data in events if code == "m"]
    steps = [label for label in markers if label.startswith("step ")]
    assert steps == [f"step {n}/{len(demo.steps)}: {step.caption.splitlines()[0]}"
                     for n, step in enumerate(demo.steps, start=1)]
    stages = [label for label in markers if label.startswith("stage ")]
    assert "stage checks: done (kdump can be trusted)" in stages
    assert "stage checks: failed (purgatory checksum failed)" in stages
    assert len(stages) > 40
    frames = [data for _, code, data in events if code == "o"]
    assert frames[0].startswith(casts.CLEAR) and len(frames) > 60
    # Every frame is whole rows of the screen, each after a cursor move to its row.
    for data in frames:
        assert all(1 <= row <= demo.height for row, _ in rows_of(data))


def test_asciinema_cat_shows_the_hmc_the_captions_and_the_timeline_in_order(
        overview: tuple[Path, Path]) -> None:
    cast, _ = overview
    played = asciinema_cat(cast)
    _, events = check_asciicast_v2(cast)
    # What asciinema hands the terminal is the frames, byte for byte.
    assert played == "".join(data for _, code, data in events if code == "o")
    texts = [text for _, text in rows_of(played)]
    assert texts[0].split()[:4] == ["DumpLab", "HMC", "LPAR", "DUMPLAB1"]  # the title line
    position = 0

    def after(needle: str) -> int:
        found = next((index for index in range(position, len(texts))
                      if needle in texts[index]), None)
        assert found is not None, f"{needle!r} not shown after row {position}"
        return found

    status: dict[str, str] = {}
    for index, (_, code, data) in enumerate(events):  # the markers' order is the screen's order
        if code != "m" or _superseded_before_a_frame(events, index):
            continue
        if data.startswith("step "):
            position = after(data.split(": ", 1)[1])  # the caption, in the caption bar
            continue
        stage, state = re.match(r"stage ([\w-]+): (\w+)", data).groups()  # type: ignore[union-attr]
        if stage == "ipl":  # its row depends on the program loaded (Timeline._ipl_stage)
            continue
        title = Timeline().stage(stage).info.title  # its row, through the stage's aliases
        if status.get(title) != state:  # a row is written again only when it changes
            position = after(f"{MARKS[state]} {title}")
            status[title] = state
    assert "finished" in texts[-1] or any("finished" in text for text in texts[-8:])


def _superseded_before_a_frame(events: list, index: int) -> bool:
    """A stage's marker that another marker of the same stage follows before any frame (it
    began and ended in one run slice, as zgetdump's copy does): no frame can show it."""
    stage = events[index][2].split(":", 1)[0]
    for _, code, data in events[index + 1:]:
        if code == "o":
            return False
        if code == "m" and data.split(":", 1)[0] == stage:
            return True
    return False


def test_two_films_of_the_overview_are_the_same_bytes(overview: tuple[Path, Path],
                                                      tmp_path: Path) -> None:
    again = tmp_path / "again.cast"
    out, err = io.StringIO(), io.StringIO()
    assert record_demo_cast(BY_NAME["overview"], again, tmp_path / "other-work", out=out,
                            err=err) == 0, err.getvalue()
    assert again.read_bytes() == overview[0].read_bytes()


def test_the_film_shows_no_host_path_or_host_measure(overview: tuple[Path, Path]) -> None:
    cast, workdir = overview
    text = "".join(text for _, text in rows_of(asciinema_cat(cast)))
    assert str(workdir) not in text and "$WORKDIR/dumps/" in text
    assert "Dumps of this run (size)" in text and "took to write" not in text
    assert list(cast.parent.glob(".*partial")) == []


def test_a_recordings_events_lose_the_host_path_and_the_host_write_time(tmp_path: Path) -> None:
    written = DumpWrittenEvent(t=5, cpu=0, path=str(tmp_path / "dumps" / "vmcore-1"),
                               format="elf", bytes=2 * 2**20, seconds=0.123)
    shown = machine_only(written, tmp_path)
    assert (shown.path, shown.seconds, shown.bytes) == ("$WORKDIR/dumps/vmcore-1", None,
                                                        2 * 2**20)
    assert machine_only(written, tmp_path / "elsewhere").path == written.path
    assert event_lines(shown, None) == [
        ("Dump written: $WORKDIR/dumps/vmcore-1 (elf, 2.0 MiB)", "ok")]
    assert event_lines(written, None)[0][0].endswith("(elf, 2.0 MiB, 0.123 s)")
    untimed = chart([dump_record(shown)]).plain
    assert untimed.startswith("Dumps of this run (size)\n") and " time " not in untimed
    assert " time " in chart([dump_record(written)]).plain


def test_frames_write_only_the_rows_that_changed() -> None:
    film = FrameCast(80, 24, "t")
    screen = [f"row {n}" for n in range(24)]
    film.frame(screen)
    film.advance(1.5)
    film.frame(screen)  # nothing changed: no event
    film.frame(screen[:3] + ["changed"] + screen[4:])
    assert [event[0] for event in film.events] == [0.0, 1.5]
    assert film.events[1][2] == "\x1b[4;1Hchanged" and film.frames == 2


# --------------------------------------------------------------------------------------------
# GIFs


def gif_frames(data: bytes) -> int:
    return data.count(b"\x21\xf9\x04")  # a Graphic Control Extension precedes each frame


def monospace_fonts() -> bool:
    """Whether agg can find a font (it needs a monospace one, e.g. fonts-dejavu-core)."""
    return any(any(Path(folder).rglob("*Mono*.[ot]tf"))
               for folder in ("/usr/share/fonts", "/usr/local/share/fonts") if Path(folder).is_dir())


@pytest.mark.skipif(casts.agg_binary() is None, reason="agg ([media] extra) not installed")
@pytest.mark.skipif(not monospace_fonts(), reason="no monospace font for agg "
                                                  "(apt-get install fonts-dejavu-core)")
def test_cast2gif_renders_the_film(overview: tuple[Path, Path], tmp_path: Path,
                                   capsys) -> None:
    gif = tmp_path / "overview.gif"
    status, out, err = run(capsys, "cast2gif", overview[0], gif)
    assert (status, err) == (0, "") and f"Rendered {gif}" in out
    data = gif.read_bytes()
    assert data[:6] == b"GIF89a" and gif_frames(data) > 20
    width, height = struct.unpack("<HH", data[6:10])
    demo = BY_NAME["overview"]
    cell_height = AGG_FONT_SIZE * AGG_LINE_HEIGHT
    assert demo.width * AGG_FONT_SIZE * 0.5 <= width <= demo.width * AGG_FONT_SIZE
    assert demo.height * cell_height <= height <= demo.height * cell_height + 4 * AGG_FONT_SIZE
    status, _, err = run(capsys, "cast2gif", overview[0], gif)  # exists: not without --force
    assert status == 2 and err == f"dumplab cast2gif: {gif} exists (--force overwrites it)\n"


def test_without_agg_a_gif_is_refused_with_the_extra_to_install(tmp_path: Path, capsys,
                                                                monkeypatch) -> None:
    cast = tmp_path / "a.cast"
    film = FrameCast(80, 24, "t")
    film.frame(["x"] * 24)
    cast.write_text(film.text())
    monkeypatch.setattr(casts, "agg_binary", lambda: None)
    status, out, err = run(capsys, "cast2gif", cast, tmp_path / "a.gif")
    assert status == 1 and out == ""
    assert err == f"dumplab cast2gif: {casts.AGG_MISSING}\n"
    assert "pip install 'dumplab[media]'" in err and not (tmp_path / "a.gif").exists()


# --------------------------------------------------------------------------------------------
# Bad input: one line, exit 2, nothing played


@pytest.mark.parametrize("argv, message", [
    (["demo", "overview", "--record", "{tmp}/a.cast", "--size", "79x24"],
     "dumplab demo: a recording of 79x24 is smaller than the console's minimum 80x24"),
    (["demo", "overview", "--gif", "{tmp}/a.gif", "--size", "120x20"],
     "dumplab demo: a recording of 120x20 is smaller than the console's minimum 80x24"),
    (["demo", "overview", "--record", "{tmp}/exists.cast"],
     "dumplab demo: {tmp}/exists.cast exists (--force overwrites it)"),
    (["demo", "overview", "--headless", "--record", "{tmp}/exists.cast"],
     "dumplab demo: {tmp}/exists.cast exists (--force overwrites it)"),
    (["demo", "overview", "--record", "{tmp}/file/a.cast"],
     "dumplab demo: cannot write {tmp}/file/a.cast: {tmp}/file is not a directory"),
    (["demo", "overview", "--record", "{tmp}"],
     "dumplab demo: cannot write {tmp}: it is a directory"),
    (["--record", "{tmp}/exists.cast"],
     "dumplab (console): error: {tmp}/exists.cast exists (--force overwrites it)"),
    (["--record", "{tmp}/new.cast", "--idle-limit", "0"],
     "dumplab (console): error: --idle-limit must be a positive number of seconds, not 0.0"),
    (["--record", "{tmp}/new.jsonl"],
     ("dumplab (console): error: the recording and the journal would both be "
      "{tmp}/new.jsonl")),
    (["--record", "{tmp}/new.cast", "--journal", "{tmp}/exists.cast"],
     "dumplab (console): error: {tmp}/exists.cast exists (--force overwrites it)"),
    (["cast2gif", "{tmp}/file", "{tmp}/a.gif"],
     ("dumplab cast2gif: {tmp}/file is not an asciicast v2 recording (its first line is not "
      "a version 2 header)")),
])
def test_bad_recording_options_are_refused_in_one_line(tmp_path: Path, capsys, argv: list[str],
                                                       message: str) -> None:
    (tmp_path / "exists.cast").write_text("keep me")
    (tmp_path / "exists.jsonl").write_text("keep me")
    (tmp_path / "file").write_text("not a directory")
    before = sorted(tmp_path.iterdir())
    status, out, err = run(capsys, *(arg.format(tmp=tmp_path) for arg in argv))
    assert (status, out) == (2, "")
    assert err == message.format(tmp=tmp_path) + "\n"
    assert sorted(tmp_path.iterdir()) == before
    assert (tmp_path / "exists.cast").read_text() == "keep me"


# --------------------------------------------------------------------------------------------
# A live console session


def test_idle_gaps_are_capped_at_the_idle_limit() -> None:
    now = [100.0]
    cast = LiveCast(idle_limit=2.0, clock=lambda: now[0])
    for step, data in ((0.0, "a"), (0.5, "b"), (30.0, "c"), (1.25, "d")):
        now[0] += step
        cast.output(data)
    assert [event[0] for event in cast.events] == [0.0, 0.5, 2.5, 3.75]
    header = json.loads(cast.text("t").splitlines()[0])
    assert header["idle_time_limit"] == 2.0 and header["duration"] == 3.75


def drive_in_a_terminal(argv: list[str], keys: list[bytes], size: tuple[int, int],
                        settle: float = 4.0, stderr: Path | None = None) -> int | None:
    """Run `argv` on a pseudo-terminal of `size`, type `keys` a second apart; its status.
    Its standard error goes to the file `stderr` (default: nowhere)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(stderr or os.devnull, "wb") as errors:
        process = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=errors, cwd=ROOT,
                                   env=env, start_new_session=True)
    os.close(slave)

    def drain(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if select.select([master], [], [], 0.1)[0]:
                try:
                    os.read(master, 65536)
                except OSError:
                    return
    try:
        drain(settle)
        for key in keys:
            os.write(master, key)
            drain(1.0)
        return process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)


def test_a_live_session_is_recorded_with_host_times_capped_and_a_journal_that_replays(
        tmp_path: Path, capsys) -> None:
    cast, journal = tmp_path / "live.cast", tmp_path / "live.jsonl"
    argv = [sys.executable, "-m", "console.cli", "--record", str(cast), "--idle-limit", "0.5",
            "--workdir", str(tmp_path / "work")]
    # The focus starts on the log (issue 10): a activates the LPAR; Ctrl+Q quits.
    assert drive_in_a_terminal(argv, [b"a", b"\x11"], (100, 30)) == 0
    header, events = check_asciicast_v2(cast)
    assert (header["width"], header["height"]) == (100, 30)
    assert header["idle_time_limit"] == 0.5
    times = [event[0] for event in events]
    assert all(later - earlier <= 0.5 + 1e-6 for earlier, later in itertools.pairwise(times))
    assert header["duration"] <= 0.5 * len(events)
    shown = ESCAPE.sub("", "".join(data for _, code, data in events if code == "o"))
    assert "DumpLab HMC" in shown and "LPAR DUMPLAB1" in shown
    assert events[0][2] == "\x1b[?1049h"  # a terminal's alternate screen: a real session
    # The session's journal was written beside the recording, and replays.
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    assert [r["command"] for r in records if r.get("kind") == "command"] == ["stage-stop on", "activate"]  # the console turns stage stops on
    status, out, _ = run(capsys, "replay", journal)
    assert status == 0 and out.startswith("replay identical")


# --------------------------------------------------------------------------------------------
# Which recording the options ask for


class FakeConsole:
    """Stands in for the console (cli._DemoInConsole): says what it was asked to do."""

    def __init__(self) -> None:
        self.calls: list[tuple[object, ...]] = []

    def play(self, demo, workdir):  # type: ignore[no-untyped-def]
        self.calls.append(("play", demo.name))
        return 0

    def screenshots(self, demo, directory, workdir):  # type: ignore[no-untyped-def]
        self.calls.append(("screenshots", demo.name))
        return 0

    def record(self, demo, cast, workdir, size, gif):  # type: ignore[no-untyped-def]
        self.calls.append(("record", demo.name, cast and cast.name, size, gif))
        return 0


@pytest.mark.parametrize("options, expected", [
    ([], ("play", "overview")),
    (["--record", "{tmp}/o.cast"], ("record", "overview", "o.cast", (110, 32), None)),
    (["--record", "{tmp}/o.cast", "--size", "80x24", "--gif", "{tmp}/o.gif"],
     ("record", "overview", "o.cast", (80, 24), "{tmp}/o.gif")),
    # --gif alone: the console films to a temporary cast.
    (["--gif", "{tmp}/o.gif"], ("record", "overview", None, (110, 32), "{tmp}/o.gif")),
    (["--record", "{tmp}/exists.cast", "--force"],
     ("record", "overview", "exists.cast", (110, 32), None)),
])
def test_the_options_choose_the_recording(tmp_path: Path, options: list[str],
                                          expected: tuple[object, ...]) -> None:
    from console.cli import build_parser
    from console.training.demos import demo_command

    (tmp_path / "exists.cast").write_text("old")
    args = build_parser().parse_args(["demo", "overview",
                                      *(option.format(tmp=tmp_path) for option in options)])
    console = FakeConsole()
    assert demo_command(args, io.StringIO(), io.StringIO(), console=console) == 0
    gif = expected[-1]
    if expected[0] == "record" and isinstance(gif, str):
        expected = (*expected[:-1], Path(gif.format(tmp=tmp_path)))
    assert console.calls == [expected]


def test_a_live_recording_in_a_terminal_below_the_minimum_is_refused(tmp_path: Path) -> None:
    cast = tmp_path / "small.cast"
    argv = [sys.executable, "-m", "console.cli", "--record", str(cast), "--workdir",
            str(tmp_path / "work")]
    assert drive_in_a_terminal(argv, [], (79, 30), settle=1.0, stderr=tmp_path / "err") == 2
    assert (tmp_path / "err").read_text() == (
        "dumplab (console): error: a recording of 79x30 is smaller than the console's minimum "
        "80x24: make the terminal bigger\n")
    assert not cast.exists() and not cast.with_suffix(".jsonl").exists()
