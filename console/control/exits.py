"""Exit statuses of every `dumplab` command, and the error that means "bad command line".

0: everything succeeded. 1: a command or check failed, or an input file was refused.
2: a bad command line (an unknown name, a bad option value, an unusable --workdir).
70: an internal error (EX_SOFTWARE from sysexits.h): one line, the traceback with
    DUMPLAB_DEBUG=1.
130: interrupted by Ctrl+C (SIGINT), 143: terminated (SIGTERM), as a shell reports a process
    killed by those signals (128 + the signal number); what was being written is removed.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_SOFTWARE = 70
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


class UsageError(Exception):
    """A bad command line: reported in one line with exit status 2."""
