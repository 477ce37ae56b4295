"""The work directory: checked before a run starts and locked for as long as it runs.

Device images (dev-NNNN.img) and dumps live in the work directory; two runs sharing one
would write the same device image and corrupt each other's dumps. So every run holds an
exclusive flock on `.dumplab.lock` in it, which holds the owner's PID for the message a
second run gets. The kernel drops the lock when the process ends, however it ends: no stale
locks. Within one process the lock is re-entrant (the command line claims the directory up
front, the LPAR again when it activates).
"""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path
from typing import Self

from machine.userfiles import shown_path

LOCK_NAME = ".dumplab.lock"


class WorkdirError(ValueError):
    """A work directory that cannot be used or is in use; the message is one line."""


_held: dict[str, tuple[int, int]] = {}  # real path -> (lock fd, claims)
_held_lock = threading.Lock()


def check_workdir(path: Path) -> Path:
    """Create `path` (and its parents) if needed and check that it is a writable directory;
    WorkdirError naming it otherwise."""
    shown = shown_path(path)
    if path.exists() and not path.is_dir():
        raise WorkdirError(f"work directory {shown}: not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise WorkdirError(f"work directory {shown}: cannot create it: "
                           f"{error.strerror or error}") from None
    if not path.is_dir():
        raise WorkdirError(f"work directory {shown}: not a directory")
    if not os.access(path, os.W_OK | os.X_OK):
        raise WorkdirError(f"work directory {shown}: not writable")
    return path


class WorkdirClaim:
    """This process's hold on a work directory; release() once when done (or use `with`)."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.released = False

    def release(self) -> None:
        """Drop this claim; the lock goes with the last claim of the process."""
        if self.released:
            return
        self.released = True
        with _held_lock:
            fd, claims = _held[self.key]
            if claims > 1:
                _held[self.key] = (fd, claims - 1)
                return
            del _held[self.key]
        os.close(fd)  # closing the descriptor drops the flock

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def claim_workdir(path: Path) -> WorkdirClaim:
    """Check the work directory and lock it for this process. WorkdirError "work directory
    in use by PID N" if another process holds it."""
    path = check_workdir(Path(path))
    key = os.path.realpath(path)
    with _held_lock:
        if key in _held:
            fd, claims = _held[key]
            _held[key] = (fd, claims + 1)
            return WorkdirClaim(key)
        _held[key] = (_lock(path), 1)
    return WorkdirClaim(key)


def _lock(path: Path) -> int:
    lock_path = path / LOCK_NAME
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as error:
        raise WorkdirError(f"work directory {shown_path(path)}: cannot create its lock file: "
                           f"{error.strerror or error}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        owner = _owner(fd)
        os.close(fd)
        raise WorkdirError(f"work directory {shown_path(path)} in use by PID {owner} (use "
                           "another --workdir)") from None
    except OSError as error:
        os.close(fd)
        raise WorkdirError(f"work directory {shown_path(path)}: cannot lock it: "
                           f"{error.strerror or error}") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _owner(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return "?"
    return text if text.isdigit() else "?"
