"""The files through which a served console and the server talk, in the session's work
directory (no socket, no shell): the console writes `status.json` (what the instructor's table
shows), the server appends the instructor's actions to `instructor.jsonl`, which the console
reads. The server validates every action before writing it; the console validates it again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

STATUS = "status.json"
ACTIONS = "instructor.jsonl"
MESSAGE_CHARS = 200
# The catalogue offered to the instructor: `fault` command arguments (docs/COMMANDS.md).
FAULTS = ("hang spin", "hang wait", "hang deadlock", "hang loop", "panic", "unload-kdump",
          "kdump-save-fails", "corrupt purgatory", "corrupt os_info")
RESULTS = "results.jsonl"  # in the base directory: one line per lab attempt


def write_status(workdir: Path, status: dict[str, Any]) -> None:
    """Replace status.json whole (a reader never sees half a file)."""
    temporary = workdir / f".{STATUS}.tmp"
    temporary.write_text(json.dumps(status), encoding="utf-8")
    os.replace(temporary, workdir / STATUS)


def read_status(workdir: Path | None) -> dict[str, Any]:
    if workdir is None:
        return {}
    try:
        status = json.loads((workdir / STATUS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return status if isinstance(status, dict) else {}


def append_action(workdir: Path, action: dict[str, str]) -> None:
    _append_line(workdir / ACTIONS, action)


def read_actions(workdir: Path, offset: int) -> tuple[list[dict[str, Any]], int]:
    """The complete action lines after byte `offset`, and the offset after them."""
    try:
        with (workdir / ACTIONS).open("rb") as handle:
            handle.seek(offset)
            data = handle.read(1 << 16)
    except OSError:
        return [], offset
    complete = data[:data.rfind(b"\n") + 1]
    actions = []
    for line in complete.splitlines():
        try:
            action = json.loads(line)
        except ValueError:
            continue
        if isinstance(action, dict):
            actions.append(action)
    return actions, offset + len(complete)


def append_result(base: Path, record: dict[str, Any]) -> None:
    _append_line(base / RESULTS, record)


def _append_line(path: Path, record: dict[str, Any]) -> None:
    """One JSON line with one write(2) in append mode: lines of concurrent writers (one per
    console) do not interleave."""
    data = (json.dumps(record, separators=(",", ":")) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
