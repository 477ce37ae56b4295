"""The child process of tests/test_fuzz_readers.py: runs one reader on one input per request,
under an address-space limit, so that a reader that tried to take unbounded memory fails its
case (MemoryError, reported) instead of the test run.

Protocol: one JSON request a line on stdin, one JSON reply a line on stdout.
  {"op": "cli", "argv": [...]}              -> {"status", "out", "err"}   (console.cli.main)
  {"op": "journal"|"lab"|"demo"|"profile", "path": P}
                                            -> {"ok": true} or {"error": one line}
  {"op": "command", "line": L}              -> {"ok", "message"}          (no LPAR)
Anything else escaping a reader is {"crash": traceback}.
"""

from __future__ import annotations

import contextlib
import io
import json
import resource
import sys
import traceback
from pathlib import Path

LIMIT = 3 << 30


def _cli(request: dict) -> dict:
    from console.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(request["argv"])
    return {"status": status, "out": out.getvalue()[-2000:], "err": err.getvalue()}


def _reader(request: dict) -> dict:
    from console.control.journal import JournalError, read_journal
    from console.training.datafiles import DataFileError
    from console.training.demos import load_demo
    from console.training.labs import load_lab
    from machine.profile import Profile, ProfileError

    read, expected = {"journal": (read_journal, JournalError), "lab": (load_lab, DataFileError),
                      "demo": (load_demo, DataFileError),
                      "profile": (Profile.load, ProfileError)}[request["op"]]
    try:
        read(Path(request["path"]))
    except expected as error:
        return {"error": str(error)}
    return {"ok": True}


def _command(request: dict, session: object) -> dict:
    from console.control.commands import CommandError, parse

    try:
        if parse(request["line"]).name == "activate":  # the profile fuzzer covers its files
            return {"ok": True, "message": "(parsed)"}
    except CommandError:
        pass  # the session reports it, as to the operator
    result = session.execute(request["line"])  # type: ignore[attr-defined]
    return {"ok": result.ok, "message": result.message}


def serve() -> None:
    from console.control.session import Session

    resource.setrlimit(resource.RLIMIT_AS, (LIMIT, LIMIT))
    session = Session(Path("/nonexistent-fuzz-workdir"))
    for line in sys.stdin:
        request = json.loads(line)
        try:
            if request["op"] == "cli":
                reply = _cli(request)
            elif request["op"] == "command":
                reply = _command(request, session)
            else:
                reply = _reader(request)
        except BaseException:  # noqa: BLE001 - every escape is what the fuzzer looks for
            reply = {"crash": traceback.format_exc(limit=8)}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    serve()
