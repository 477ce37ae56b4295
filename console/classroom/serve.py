"""`dumplab serve`: the console in web browsers, for a classroom (docs/CLASSROOM.md).

textual-serve runs one process per browser connection. That process is the console itself
(`python -m console.cli --workdir-per-session BASE ...`), started with an argument vector
fixed when the server starts, and without a shell: textual-serve 1.1 hands its command string
to `asyncio.create_subprocess_shell`, so the server here replaces that step with
`create_subprocess_exec`. What a browser sends after that (keys, mouse, terminal size) only
reaches the console's standard input, as textual-serve's framed packets.

Each console creates its own work directory under BASE (`session-DATE-TIME-XXXXXXXX`), so
each connection has its own LPAR and its own device and dump files. The server listens on
127.0.0.1 unless --host says otherwise; it refuses websocket connections from another origin
(another web site in the instructor's browser) and, when bound to the loopback address,
requests for a host name that is not a loopback name (DNS rebinding).

aiohttp and textual-serve are imported only by `dumplab serve`, so that the other commands
do not pay for them.
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import os
import re
import secrets
import signal
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from console.classroom import limits
from console.classroom.hosts import is_loopback
from console.control.exits import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from console.control.session import Session
from console.tui.terminal import served_in_browser
from machine.profile import ProfileError, format_size, parse_size

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8000
DEFAULT_BASE = Path("dumplab-classroom")
ORPHAN_GRACE = 5.0   # seconds a console whose server died gets to quit before it is ended
SESSION_ID = re.compile(r"[0-9a-f]{8}")


# --------------------------------------------------------------------------------------------
# The command line


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"not a TCP port: {text!r} (1 to 65535)")
    return port


def _memory(text: str) -> str:
    """A valid --memory, kept as typed: it is passed on to each console."""
    try:
        parse_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"not a positive whole number: {text!r}")
    return value


def _minutes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 7 * 24 * 60:
        raise argparse.ArgumentTypeError(f"not a number of minutes: {text!r} (0 turns the "
                                         "idle timeout off)")
    return value


def add_serve_parser(subcommands: Any) -> argparse.ArgumentParser:
    """The `dumplab serve` subcommand."""
    parser = subcommands.add_parser(
        "serve", help="serve the console to web browsers (a classroom)",
        description="Serve the console (TUI) to web browsers through textual-serve. Each "
                    "browser connection gets its own console process, LPAR and work directory "
                    "(BASE/session-*); no shell is reachable through it. See "
                    "docs/CLASSROOM.md.")
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help=f"the address to listen on (default: {DEFAULT_HOST}, this machine "
                             "only; 0.0.0.0 makes the console reachable from the network)")
    parser.add_argument("--port", type=_port, default=DEFAULT_PORT,
                        help=f"the TCP port (default: {DEFAULT_PORT})")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_BASE, metavar="BASE",
                        help="where each connection's work directory is created "
                             f"(default: ./{DEFAULT_BASE})")
    parser.add_argument("--profile", default="default", metavar="NAME",
                        help="activation profile of every console: a name from "
                             "assets/profiles/ or a .toml file (default: default)")
    parser.add_argument("--cpus", type=int, metavar="N", help="override the profile's CPU count")
    parser.add_argument("--memory", type=_memory, metavar="SIZE",
                        help="override the profile's memory size (e.g. 512M, 1G); each "
                             "console's LPAR gets this size, at most "
                             f"{format_size(limits.MAX_LPAR_MEMORY)}")
    parser.add_argument("--max-sessions", type=_positive_int, metavar="N",
                        help="consoles at once; past that the page says the class is full "
                             "(default: min(cores x 8, available memory / (LPAR memory + "
                             "150 MiB)))")
    parser.add_argument("--idle-timeout", type=_minutes, metavar="MINUTES",
                        default=limits.IDLE_TIMEOUT_MINUTES,
                        help="end a session after this long without input; its files stay "
                             f"(default: {limits.IDLE_TIMEOUT_MINUTES:g}; 0: never)")
    parser.add_argument("--instructor-token", metavar="TOKEN",
                        help="enable the instructor's page /instructor with this token "
                             "(use 'generate' for a random one, printed at start)")
    parser.add_argument("--behind-proxy", action="store_true",
                        help="served through a proxy on this machine (jupyter-server-proxy, "
                             "see docs/CLASSROOM.md): accept the public host name it "
                             "forwards; needs a loopback --host")
    return parser


def _config(args: argparse.Namespace, argv: list[str], lpar_memory: int,
            out: TextIO) -> Any:
    from console.classroom.server import ServeConfig

    token = args.instructor_token
    if token == "generate":
        token = secrets.token_urlsafe(18)
    return ServeConfig(
        argv=tuple(argv), host=args.host, port=args.port, base=args.workdir.resolve(),
        loopback=is_loopback(args.host),
        max_sessions=args.max_sessions or limits.default_max_sessions(lpar_memory),
        idle_timeout=args.idle_timeout * 60 if args.idle_timeout else None,
        address_space=limits.address_space_limit(lpar_memory), instructor_token=token,
        behind_proxy=args.behind_proxy)


def session_argv(base: Path, profile: str, cpus: int | None = None,
                 memory: str | None = None) -> list[str]:
    """The argument vector of one browser's console: this Python, the console, a fresh work
    directory under `base`. Paths are made absolute: the consoles must not depend on the
    directory they start in."""
    if "/" in profile or profile.endswith(".toml"):
        profile = str(Path(profile).resolve())
    argv = [sys.executable, "-m", "console.cli", "--workdir-per-session", str(base.resolve()),
            "--profile", profile]
    if cpus is not None:
        argv += ["--cpus", str(cpus)]
    if memory is not None:
        argv += ["--memory", memory]
    return argv


def _display_url(host: str, port: int) -> str:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return f"http://{host}:{port}/"
    if address.is_unspecified:
        return f"http://{socket.gethostname()}:{port}/"
    return f"http://[{host}]:{port}/" if address.version == 6 else f"http://{host}:{port}/"


def serve_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """`dumplab serve`: serve the console until interrupted (Ctrl+C, SIGTERM)."""
    overrides: dict[str, Any] = {}
    if args.cpus is not None:
        overrides["cpus"] = args.cpus
    if args.memory is not None:
        overrides["memory"] = parse_size(args.memory)
    try:  # a bad profile or override is a usage error now, not in every browser later
        profile = Session(args.workdir, args.profile, overrides).resolve_profile()
    except ProfileError as error:
        err.write(f"dumplab serve: error: {error}\n")
        return EXIT_USAGE
    if args.behind_proxy and not is_loopback(args.host):
        err.write("dumplab serve: error: --behind-proxy needs a loopback --host: only the "
                  "proxy on this machine may reach the console\n")
        return EXIT_USAGE
    if profile.memory > limits.MAX_LPAR_MEMORY:
        err.write(f"dumplab serve: error: {format_size(profile.memory)} of storage per "
                  f"console is more than a classroom allows "
                  f"({format_size(limits.MAX_LPAR_MEMORY)}); choose a smaller --memory\n")
        return EXIT_USAGE
    try:
        args.workdir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        err.write(f"dumplab serve: cannot create {args.workdir}: {error.strerror or error}\n")
        return EXIT_FAILED
    # Every console gets the profile's memory as an override: `activate BIG.toml` in a
    # console then cannot take more storage than the server planned for.
    argv = session_argv(args.workdir, args.profile, args.cpus, args.memory or
                        format_size(profile.memory))
    config = _config(args, argv, profile.memory, out)
    if not is_loopback(args.host):
        err.write(f"dumplab serve: warning: listening on {args.host}: the console is now "
                  "reachable from the network (anyone who reaches this port gets an LPAR)\n")
        err.flush()

    def ready() -> None:
        out.write(f"dumplab serve: the console is at {_display_url(args.host, args.port)} "
                  f"(one LPAR per browser tab, at most {config.max_sessions}; work "
                  f"directories in {args.workdir.resolve()}); Ctrl+C stops\n")
        if config.instructor_token:
            out.write("dumplab serve: the instructor's page is "
                      f"{_display_url(args.host, args.port)}instructor?token="
                      f"{config.instructor_token}\n")
        out.flush()

    from console.classroom.server import ClassroomServer  # aiohttp only for `dumplab serve`

    try:
        ClassroomServer(config).run(ready)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            reason = "the port is in use (choose another with --port)"
        else:
            reason = error.strerror or str(error)
        err.write(f"dumplab serve: cannot listen on {args.host} port {args.port}: {reason}\n")
        return EXIT_FAILED
    return EXIT_OK


# --------------------------------------------------------------------------------------------
# Inside each browser's console process (the hidden console option --workdir-per-session)



def session_workdir(base: Path) -> Path:
    """A fresh work directory under `base` for this console, which also quits if the server
    that started it dies (a console must not run on without its browser)."""
    base.mkdir(parents=True, exist_ok=True)
    prefix = time.strftime("session-%Y%m%d-%H%M%S-")
    seat = os.environ.get("DUMPLAB_SESSION_ID", "")
    if SESSION_ID.fullmatch(seat):  # the server's name for this seat: it finds the directory
        workdir = base / f"{prefix}{seat}"
        workdir.mkdir(mode=0o700)
    else:
        workdir = Path(tempfile.mkdtemp(dir=base, prefix=prefix))
    if served_in_browser():
        threading.Thread(target=_quit_with_parent, args=(os.getppid(),), daemon=True,
                         name="dumplab-serve-parent").start()
    return workdir


def _quit_with_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os.kill(os.getpid(), signal.SIGTERM)  # Textual's web driver makes it a clean exit
    time.sleep(ORPHAN_GRACE)
    os._exit(EXIT_FAILED)


