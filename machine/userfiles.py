"""Files the user names: opened for reading only if they are regular files of a sane size,
written only atomically and only over nothing or a regular file.

Every reader of a user-named file (profiles, scripts, journals, labs, demos, dumps) opens it
with open_user_file(); every writer of a result (dumps, converted files, journals,
recordings, screenshots) goes through AtomicFile. Errors are UserFileError, an OSError whose
str() is one line naming the user's path, never a temporary name.

Why: a device (/dev/zero) read whole takes all memory, a FIFO blocks for ever, and a rename
over a symlink, a device or a directory damages something the user did not mean to write.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import stat
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

MiB = 1 << 20
# The most a text file of each kind may hold. They are hand-written (profile, script, lab,
# demo) or a record of a session (journal: about 150 bytes an event, so ~100,000 events); a
# dump has no cap, it is read in pieces, never whole.
SIZE_CAPS: dict[str, int | None] = {
    "profile": 1 * MiB, "script": 1 * MiB, "lab": 1 * MiB, "demo": 1 * MiB,
    "journal": 16 * MiB, "dump": None,
}
KIND_NAMES = {"profile": "a profile", "script": "a script", "lab": "a lab file",
              "demo": "a demo file", "journal": "a journal", "dump": "a dump"}


class UserFileError(OSError):
    """A user-named file that cannot be used; str() is one line: 'PATH: problem'."""

    def __init__(self, path: str | os.PathLike[str], problem: str,
                 code: int = errno.EINVAL) -> None:
        super().__init__(code, problem, os.fspath(path))

    def __str__(self) -> str:
        return f"{shown_path(self.filename)}: {self.strerror}"


def shown_path(path: str | os.PathLike[str]) -> str:
    """A path as one line of a message: control characters (a newline in a file name)
    escaped, as `ls -b` does, so an error never spans two lines."""
    return printable(os.fspath(path))


def printable(text: str) -> str:
    """`text` with every non-printable character escaped (\\n, \\x00, \\udcff)."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def file_type(mode: int) -> str:
    """What a non-regular file is, in words."""
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symbolic link")):
        if test(mode):
            return name
    return "not a regular file"


def _oserror(path: str | os.PathLike[str], error: OSError) -> UserFileError:
    """An OSError from an operation on `path` (or a temporary beside it), renamed to `path`."""
    return UserFileError(path, error.strerror or str(error), error.errno or errno.EIO)


# ---------------------------------------------------------------------------------------------
# Reading


def open_user_file(path: str | os.PathLike[str], kind: str) -> BinaryIO:
    """Open a user-named file for reading in binary mode: a regular file (a symlink to one is
    fine), no larger than SIZE_CAPS[kind]. The FIFO test is made before the open (stat) and
    again on the open descriptor (fstat), and the open itself cannot block (O_NONBLOCK)."""
    cap = SIZE_CAPS[kind]
    # A missing file or no permission stays the OSError it is (FileNotFoundError, ...): it
    # names the user's path already.
    _check_regular(path, os.stat(path).st_mode, kind)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    try:
        after = os.fstat(fd)
        _check_regular(path, after.st_mode, kind)
        if cap is not None and after.st_size > cap:
            raise UserFileError(path, f"too large for {KIND_NAMES[kind]} ({after.st_size} "
                                      f"bytes, at most {cap // MiB} MiB)", errno.EFBIG)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _check_regular(path: str | os.PathLike[str], mode: int, kind: str) -> None:
    if not stat.S_ISREG(mode):
        code = errno.EISDIR if stat.S_ISDIR(mode) else errno.EINVAL
        raise UserFileError(path, f"{file_type(mode)}, not a regular file "
                                  f"({KIND_NAMES[kind]} must be one)", code)


def read_user_bytes(path: str | os.PathLike[str], kind: str) -> bytes:
    """The whole of a capped user-named file (kind is not "dump")."""
    cap = SIZE_CAPS[kind]
    assert cap is not None, "dumps are read in pieces, never whole"
    with open_user_file(path, kind) as file:
        try:
            data = file.read(cap + 1)  # the file may have grown since fstat
        except OSError as error:
            raise _oserror(path, error) from None
    if len(data) > cap:
        raise UserFileError(path, f"too large for {KIND_NAMES[kind]} (more than "
                                  f"{cap // MiB} MiB)", errno.EFBIG)
    return data


def read_user_text(path: str | os.PathLike[str], kind: str) -> str:
    """The whole of a capped user-named file as UTF-8 text."""
    try:
        return read_user_bytes(path, kind).decode("utf-8")
    except UnicodeDecodeError:
        raise UserFileError(path, "not UTF-8 text", errno.EILSEQ) from None


# ---------------------------------------------------------------------------------------------
# Writing


class Terminated(BaseException):
    """SIGTERM arrived while a result was being written: unwind (removing the temporary
    file) as Ctrl+C does. A BaseException, so that `except Exception` does not stop it."""


_live_lock = threading.Lock()
_live_writers = 0
_previous_sigterm: object = None


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated("terminated (SIGTERM)")


def _enter_write() -> bool:
    """While any atomic write is open, SIGTERM unwinds instead of killing the process
    outright, so the temporary file is removed (a handler the program installed itself is
    left alone). Only the main thread can set signal handlers: elsewhere (the console's
    machine thread) this does nothing and returns False."""
    global _live_writers, _previous_sigterm
    if threading.current_thread() is not threading.main_thread():
        return False
    with _live_lock:
        if _live_writers == 0:
            current = signal.getsignal(signal.SIGTERM)
            if current in (signal.SIG_DFL, None):
                _previous_sigterm = current
                signal.signal(signal.SIGTERM, _on_sigterm)
            else:
                _previous_sigterm = None
        _live_writers += 1
    return True


def _leave_write() -> None:
    global _live_writers
    with _live_lock:
        _live_writers -= 1
        if _live_writers == 0 and _previous_sigterm is not None and \
                threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _previous_sigterm)  # type: ignore[arg-type]


def check_output_target(path: str | os.PathLike[str]) -> None:
    """Refuse an output path that exists and is not a regular file: a symlink (never
    followed, never replaced), a device, a FIFO, a socket or a directory."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as error:
        raise _oserror(path, error) from None
    if not stat.S_ISREG(mode):
        code = errno.EISDIR if stat.S_ISDIR(mode) else errno.EEXIST
        raise UserFileError(path, f"{file_type(mode)}: refusing to replace it (the output "
                                  "must be a new or a regular file)", code)


class AtomicFile:
    """A result written under a temporary name beside `path` (`.NAME.XXXX.partial`, unique,
    so that two writers never share one) and renamed to `path` by commit() after fsync; the
    directory is fsynced too, so the rename is durable. discard() (and any error, Ctrl+C or
    SIGTERM in `atomic_output`) removes the temporary file and leaves `path` as it was.

    A process killed outright (SIGKILL, power loss) can leave the `.partial` file behind,
    never a partial `path`.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        check_output_target(self.path)
        parent = self.path.parent
        self._entered = _enter_write()
        try:
            fd, name = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".partial",
                                        dir=parent)
        except OSError as error:
            if self._entered:
                _leave_write()
            raise _oserror(self.path, error) from None
        os.fchmod(fd, 0o644 & ~_umask())
        self.fd: int | None = fd
        self.temporary = Path(name)
        self._finished = False

    def commit(self) -> None:
        """fsync, rename into place (re-checking the target), fsync the directory."""
        assert self.fd is not None, "committed or discarded already"
        try:
            os.fsync(self.fd)
            fd, self.fd = self.fd, None  # before the close: a signal may interrupt here
            os.close(fd)
            check_output_target(self.path)
            os.replace(self.temporary, self.path)
        except OSError as error:
            self.discard()
            if isinstance(error, UserFileError):
                raise
            raise _oserror(self.path, error) from None
        except BaseException:
            self.discard()
            raise
        self._done()
        fsync_directory(self.path.parent)

    def discard(self) -> None:
        """Remove the temporary file; `path` stays as it was."""
        fd, self.fd = self.fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.temporary.unlink(missing_ok=True)
        self._done()

    def _done(self) -> None:
        if not self._finished:
            self._finished = True
            if self._entered:
                _leave_write()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[int]:
    """Yield the descriptor of an AtomicFile for `path`: committed on a normal exit, removed
    on any exception (KeyboardInterrupt and SIGTERM too). An OSError while writing is
    reported naming `path`."""
    output = AtomicFile(path)
    try:
        assert output.fd is not None
        yield output.fd
    except OSError as error:
        output.discard()
        if isinstance(error, UserFileError):
            raise
        raise _oserror(path, error) from None
    except BaseException:
        output.discard()
        raise
    output.commit()


def write_atomically(path: str | os.PathLike[str], data: bytes | str) -> None:
    """Write `data` (text as UTF-8) to `path` atomically."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_output(path) as fd:
        view = memoryview(raw)
        while view:
            view = view[os.write(fd, view):]


def fsync_directory(directory: Path) -> None:
    """Make a rename in `directory` durable."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on directories; the data itself is synced
    finally:
        os.close(fd)
