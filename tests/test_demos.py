"""Demos: every demo plays headless, transcript recordings (`--headless --record`) are valid
asciicast v2 (checked against the spec, and by `asciinema cat` where installed) and
reproducible, broken demo files are named with their line. Recordings of the console itself:
tests/test_recording.py."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from console.cli import main
from console.training.demos import load_demos, play
from console.training.labs import load_labs

DEMOS, DEMO_ERRORS = load_demos()
BY_NAME = {demo.name: demo for demo in DEMOS}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_there_is_a_demo_per_lab_and_an_overview() -> None:
    assert DEMO_ERRORS == []
    labs = {lab.name for lab in load_labs().labs}
    assert {demo.lab for demo in DEMOS if demo.lab} == labs
    assert set(BY_NAME) == labs | {"overview"}


@pytest.mark.parametrize("demo", DEMOS, ids=lambda demo: demo.name)
def test_every_demo_plays_headless(demo, tmp_path: Path) -> None:
    out = io.StringIO()
    assert play(demo, tmp_path, out=out) is None
    text = out.getvalue()
    for step in demo.steps:
        assert f"== {step.caption} ==" in text
    assert "refused:" not in text


def test_dumplab_demo_headless_prints_captions_and_os_messages(tmp_path: Path, capsys) -> None:
    status, out, err = run(capsys, "demo", "psw-restart", "--headless", "--workdir", tmp_path)
    assert (status, err) == (0, "")
    assert "== Linux with kdump loaded. ==" in out
    assert "HMC> restart 0" in out
    assert "] kdump: vmcore saved" in out  # an Operating System Message, time-stamped


# --------------------------------------------------------------------------------------------
# asciicast v2


def check_asciicast_v2(path: Path) -> tuple[dict[str, Any], list[list[Any]]]:
    """Check a file against the asciicast v2 format (asciinema's doc/asciicast-v2.md): a
    header object, then one event array per line; return both.

    Header: `version` 2, `width` and `height` positive integers; `timestamp` (Unix seconds),
    `duration`, `title` and `env` (strings) when present. Events: [time, code, data] with
    time a non-negative number, never decreasing; codes here only "o" (output) and "m"
    (marker); data a string."""
    lines = path.read_text(encoding="utf-8").splitlines()
    header = json.loads(lines[0])
    assert isinstance(header, dict)
    assert header["version"] == 2
    for key in ("width", "height"):
        assert isinstance(header[key], int) and not isinstance(header[key], bool)
        assert header[key] > 0
    if "timestamp" in header:
        assert isinstance(header["timestamp"], int)
    if "duration" in header:
        assert isinstance(header["duration"], (int, float)) and header["duration"] >= 0
    if "title" in header:
        assert isinstance(header["title"], str)
    if "env" in header:
        assert all(isinstance(value, str) for value in header["env"].values())
    events, previous = [], 0.0
    for number, line in enumerate(lines[1:], start=2):
        event = json.loads(line)
        assert isinstance(event, list) and len(event) == 3, f"line {number}: {line}"
        time, code, data = event
        assert isinstance(time, (int, float)) and not isinstance(time, bool), number
        assert time >= previous, f"line {number}: time goes back"
        assert code in ("o", "m"), f"line {number}: code {code!r}"
        assert isinstance(data, str), number
        previous = time
        events.append(event)
    if "duration" in header:
        assert header["duration"] >= previous
    return header, events


@pytest.fixture(scope="module")
def overview_cast(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cast")
    # The plain-text transcript (--headless); tests/test_recording.py films the console.
    assert main(["demo", "overview", "--headless", "--record", str(root / "overview.cast"),
                 "--workdir", str(root / "work")]) == 0
    return root / "overview.cast"


def test_a_recording_is_asciicast_v2_with_markers(overview_cast: Path) -> None:
    header, events = check_asciicast_v2(overview_cast)
    demo = BY_NAME["overview"]
    assert (header["width"], header["height"]) == (demo.width, demo.height)
    assert header["timestamp"] == 1767225600  # the LPAR's activation time: fixed
    assert header["title"] == demo.title
    markers = [data for _, code, data in events if code == "m"]
    steps = [label for label in markers if label.startswith("step ")]
    assert len(steps) == len(demo.steps)
    stages = [label for label in markers if label.startswith("stage ")]
    assert "stage checks: done (kdump can be trusted)" in stages
    assert "stage checks: failed (purgatory checksum failed)" in stages
    assert any(label.startswith("stage full-dump: done") for label in stages)
    for _, code, data in events:
        if code == "o":
            assert data.endswith("\r\n") and "\n" not in data.replace("\r\n", "")


def test_the_overview_lasts_about_two_minutes(overview_cast: Path) -> None:
    header, events = check_asciicast_v2(overview_cast)
    assert 90 <= header["duration"] <= 150
    assert events[-1][0] <= header["duration"]


def test_a_recording_is_the_same_on_every_run(overview_cast: Path, tmp_path: Path) -> None:
    again = tmp_path / "again.cast"
    assert play(BY_NAME["overview"], tmp_path / "work", cast=again) is None
    assert again.read_bytes() == overview_cast.read_bytes()


@pytest.mark.skipif(shutil.which("asciinema") is None, reason="asciinema is not installed")
def test_asciinema_cat_plays_the_recording(overview_cast: Path) -> None:
    result = subprocess.run(["asciinema", "cat", str(overview_cast)], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "Activate it and IPL Linux" in result.stdout
    assert "Dump successful" in result.stdout


def test_no_partial_recording_is_left_behind(overview_cast: Path) -> None:
    assert list(overview_cast.parent.glob(".*partial")) == []


def test_demo_list_and_unknown_demos(capsys) -> None:
    status, out, _ = run(capsys, "demo", "list")
    assert status == 0
    assert [row.split(maxsplit=1)[0] for row in out.splitlines()] == sorted(BY_NAME)
    status, _, err = run(capsys, "demo", "nope", "--headless")
    assert status == 2 and "unknown demo 'nope'" in err


# --------------------------------------------------------------------------------------------
# Broken demo files


GOOD = '''title = "A good demo"

[[steps]]
caption = "Boot."
commands = ["activate", "load 0100"]
pause = 1.5
'''

BROKEN = {
    "invalid TOML": (GOOD.replace('"Boot."', '"Boot.'), 4, "invalid TOML"),
    "missing caption": (GOOD.replace('caption = "Boot."\n', ""), 3,
                        "step 1: missing 'caption'"),
    "unknown command": (GOOD.replace('"load 0100"', '"lod 0100"'), 5,
                        "'lod 0100': unknown command 'lod'"),
    "answer in a demo": (GOOD.replace('"load 0100"', '"answer 2"'), 5,
                         "'answer' belongs in a solve script"),
    "unknown key": (GOOD.replace("pause = 1.5", "wait = 1.5"), 6, "step 1: unknown key 'wait'"),
    "negative pause": (GOOD.replace("pause = 1.5", "pause = -1"), 6, "must be 0 to 600 seconds"),
    "bad pacing": (GOOD + "\n[pacing]\nlines = 0.1\n", 9, "pacing: unknown key 'lines'"),
    "no steps": ('title = "x"\n', 1, "demo: missing 'steps'"),
}


@pytest.mark.parametrize("case", list(BROKEN), ids=list(BROKEN))
def test_a_broken_demo_is_named_with_its_line_and_the_others_still_load(tmp_path: Path,
                                                                        case: str) -> None:
    text, line, problem = BROKEN[case]
    (tmp_path / "good.toml").write_text(GOOD)
    (tmp_path / "broken.toml").write_text(text)
    demos, errors = load_demos(tmp_path)
    assert [demo.name for demo in demos] == ["good"]
    assert len(errors) == 1
    assert errors[0].startswith(f"{tmp_path / 'broken.toml'}:{line}: "), errors[0]
    assert problem in errors[0], errors[0]


def test_a_demo_whose_command_fails_says_where(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text(GOOD.replace('"load 0100"', '"load 0300"'))
    demos, _ = load_demos(tmp_path)
    out = io.StringIO()
    failure = play(demos[0], tmp_path / "work", out=out, cast=tmp_path / "bad.cast")
    assert failure is not None and failure.startswith("step 1: 'load 0300'")
    assert "refused:" in out.getvalue()
    check_asciicast_v2(tmp_path / "bad.cast")
