"""Key press -> screen updated, in a real pseudo-terminal (issue 10). Prints figures; asserts
nothing.

    python bench/bench_tui_pty.py [PRESSES] [--against REV]

The console (`dumplab`) starts in a pty of 120×40 with 4 CPUs; a `hang loop` fault keeps
every CPU busy at the default speed. Keys are written to the pty as a terminal sends them;
the time is measured until the expected text appears in the console's output stream (what a
terminal would draw): `2` and `1` in turn switch between Hardware and Operating System
Messages (see VIEWS). Median and p95 over PRESSES presses (100 by default), next to the
in-process figure of bench/bench_tui.py for a view key (`]`: Textual's headless driver, no
terminal; in a terminal `]` rewrites one digit, which the stream cannot show).

`--against REV` first measures the console of git revision REV (exported with `git archive`
to a temporary folder) the same way, so that a change is judged on one machine in one run:
on a shared host the load changes from minute to minute.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_tui import CPUS, describe, key_latencies

COLUMNS, ROWS = 120, 40
SETUP = ("activate", "load 0100", "wait-for stage workload", "fault hang loop",
         "wait-for event hang")
# Keys, and text that only a full redraw of the new view writes (Textual writes only what
# changed on a line: `]` on the Registers view rewrites a single digit, which cannot be told
# apart in the stream). 2: Hardware Messages, whose lines end with the last wait-for; 1: the
# Operating System Messages, whose bar says Hold (F4).
VIEWS = (("2", r"wait-for event hang: "), ("1", r"Hold \(F4\)"))
PROMPT = r"Enter: run"  # the title of the `:` prompt (console/tui/screens/dialogs.py)
ESCAPES = re.compile(rb"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][A-Za-z0-9]|\x1b[=>]")


class Console:
    """`dumplab` in a pty: write keys, read the output stream."""

    def __init__(self, workdir: Path, root: Path = ROOT) -> None:
        env = dict(os.environ, TERM="xterm-256color", COLUMNS=str(COLUMNS), LINES=str(ROWS),
                   PYTHONPATH=str(root))
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: the console
            os.execve(sys.executable, [sys.executable, "-m", "console.cli", "--workdir",
                                       str(workdir), "--cpus", str(CPUS)], env)
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
        self.output = bytearray()
        self._lock = threading.Lock()
        self._open = True
        # Read all the time, as a terminal does: a full pty buffer would stop the console.
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        while self._open:
            ready, _, _ = select.select([self.fd], [], [], 0.05)
            if not ready:
                continue
            try:
                chunk = os.read(self.fd, 1 << 16)
            except OSError:
                return
            with self._lock:
                self.output += chunk

    def read(self, timeout: float) -> None:
        time.sleep(timeout)

    def text_since(self, offset: int) -> str:
        with self._lock:
            chunk = bytes(self.output[offset:])
        return ESCAPES.sub(b"", chunk).decode("utf-8", "replace")

    @property
    def length(self) -> int:
        with self._lock:
            return len(self.output)

    def wait_for(self, text: str, since: int = 0, timeout: float = 60.0) -> float:
        """Read until `text` (a regular expression) appears after byte `since`; the time it
        appeared."""
        deadline = time.perf_counter() + timeout
        pattern = re.compile(text)
        while not pattern.search(self.text_since(since)):
            if time.perf_counter() > deadline:
                tail = self.text_since(max(0, self.length - 4000))
                raise TimeoutError(f"{text!r} did not appear; the stream ended with:\n{tail}")
            self.read(0.001)
        return time.perf_counter()

    def press(self, keys: str) -> None:
        os.write(self.fd, keys.encode())

    def command(self, line: str) -> None:
        """A command at the `:` prompt (the machine thread runs them in order); typed once
        the prompt shows, as on a loaded host it may take a moment."""
        since = self.length
        self.press(":")
        self.wait_for(PROMPT, since, 30)
        time.sleep(0.2)
        self.press(line + "\r")
        time.sleep(1.0)

    def close(self) -> None:
        self.press("\x11")  # Ctrl+Q
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            self.read(0.1)
            finished, _ = os.waitpid(self.pid, os.WNOHANG)
            if finished:
                self._open = False
                return
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        self._open = False


def pty_latencies(presses: int, root: Path = ROOT) -> list[float]:
    """Key latencies of the console whose code is in root."""
    workdir = Path(tempfile.mkdtemp(prefix="dumplab-bench-"))
    console = Console(workdir, root)
    try:
        console.wait_for("NOT ACTIVATED", timeout=60)
        for line in SETUP:
            console.command(line)
        console.press("\x1b")  # Esc: out of any field
        time.sleep(0.3)
        for key, wanted in VIEWS:  # the last command done, both views drawn once
            since = console.length
            console.press(key)
            console.wait_for(wanted, since, 40)
            time.sleep(0.5)
        samples = []
        for index in range(presses):
            key, wanted = VIEWS[index % 2]
            since = console.length
            pressed = time.perf_counter()
            console.press(key)
            samples.append(console.wait_for(wanted, since, 10) - pressed)
            time.sleep(0.02)
        return samples
    finally:
        console.close()
        shutil.rmtree(workdir, ignore_errors=True)


def exported(revision: str) -> Path:
    """The tree of a git revision of this repository, in a temporary folder."""
    folder = Path(tempfile.mkdtemp(prefix="dumplab-rev-"))
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def main() -> None:
    args = sys.argv[1:]
    against = None
    if "--against" in args:
        at = args.index("--against")
        against = args[at + 1]
        del args[at:at + 2]
    presses = int(args[0]) if args else 100
    print(f"Key press -> screen updated, 4 CPUs busy (hang loop), default speed, {presses} "
          "presses")
    if against is not None:
        folder = exported(against)
        try:
            print(describe(f"pty, revision {against}: 2 / 1", pty_latencies(presses, folder)))
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    print(describe("pty (dumplab in a pseudo-terminal): 2 / 1", pty_latencies(presses)))
    view, _machine = asyncio.run(key_latencies("real"))
    print(describe("in-process (headless driver): ]", view))


if __name__ == "__main__":
    main()
