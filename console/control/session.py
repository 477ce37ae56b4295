"""A running operator session: the event bus, the LPAR, and the history of commands.

The session is what every front end drives: `dumplab run`, and later the TUI, labs and demos.
It is pure Python; the LPAR is created by the `activate` command.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Self

from console.control.commands import CommandError, CommandResult, execute, is_blank, parse
from machine.events import Event, EventBus
from machine.lpar import HmcError, Lpar
from machine.profile import Profile
from machine.userfiles import printable

# Events not yet consumed by a wait-for are kept for the next one; bound the memory they take.
UNMATCHED_EVENTS_KEPT = 100_000

ResultHook = Callable[["HistoryEntry"], None]


@dataclass(frozen=True)
class HistoryEntry:
    """One command as typed and what came of it."""

    text: str
    result: CommandResult


class Session:
    """An operator session on one LPAR (created on `activate`), with its history.

    `profile` names the profile `activate` uses when given none (a name from assets/profiles/
    or a path); `overrides` (e.g. ``{"cpus": 2, "memory": 1 << 30}``) apply to every profile
    this session activates.
    """

    def __init__(self, workdir: Path, profile: str | Path = "default",
                 overrides: dict[str, Any] | None = None) -> None:
        self.workdir = Path(workdir)
        self.profile = profile
        self.overrides = dict(overrides or {})
        self.bus = EventBus()
        self.lpar: Lpar | None = None
        # The gdb server (console/control/gdbserver.py) while `gdbserver` listens; a runner sets
        # `wake` so that gdb's packets reach the machine's thread; a replay sets `replaying`.
        self.gdb: Any = None
        self.wake: Callable[[], None] | None = None
        self.replaying = False
        self.history: list[HistoryEntry] = []
        self._unmatched: deque[Event] = deque(maxlen=UNMATCHED_EVENTS_KEPT)
        self._unsubscribe = self.bus.subscribe(self._keep)
        self._command_listeners: list[ResultHook] = []
        self._run_listeners: list[Callable[[int, bool], None]] = []
        # Workflow stages at which the machine holds (`stage-stop`); each LPAR gets them.
        self.stage_stops: frozenset[str] = frozenset()

    # -- profiles and the LPAR --------------------------------------------------------------

    def resolve_profile(self, ref: str | Path | None = None) -> Profile:
        """The profile `ref` names (default: the session's), with the overrides applied.

        A bare name is a built-in profile; anything that looks like a path (a separator, or a
        .toml suffix) is a profile file.
        """
        ref = self.profile if ref is None else ref
        if isinstance(ref, Path) or "/" in ref or ref.endswith(".toml"):
            profile = Profile.load(Path(ref))
        else:
            profile = Profile.builtin(ref)
        return profile.replace(**self.overrides) if self.overrides else profile

    def activate(self, ref: str | Path | None = None) -> str:
        """Create and activate the LPAR with a profile; return the machine's acknowledgement.

        HmcError if the LPAR is already activated, ProfileError for a bad profile."""
        if self.lpar is not None and self.lpar.status != "not activated":
            raise HmcError("activate: the LPAR is already activated (deactivate it first)")
        profile = self.resolve_profile(ref)
        if self.lpar is not None:
            self.lpar.close()
            self.lpar = None
        lpar = Lpar(profile, self.workdir, self.bus)
        try:
            acknowledgement = lpar.activate()
        except BaseException:
            lpar.close()
            raise
        self.lpar = lpar
        if lpar.checkpoints is not None:
            lpar.checkpoints.stage_stops = self.stage_stops
        return acknowledgement

    def now(self) -> int:
        """The LPAR's virtual time in ns (0 before activation)."""
        if self.lpar is None or self.lpar.status == "not activated":
            return 0
        return self.lpar.snapshot().t

    # -- waiting for events ------------------------------------------------------------------

    def _keep(self, event: Event) -> None:
        # After a rewind the events not yet waited for did not happen (yet): forget them.
        if event.kind == "rewind":
            self._unmatched.clear()
        self._unmatched.append(event)

    def take_event(self, match: Callable[[Event], bool]) -> Event | None:
        """The first event since the last match that satisfies `match`, consuming it and
        everything before it; None if there is none."""
        while self._unmatched:
            event = self._unmatched.popleft()
            if match(event):
                return event
        return None

    def wait_for(self, match: Callable[[Event], bool], timeout_ns: int) -> Event | None:
        """Run the LPAR until a new event satisfies `match` (None after `timeout_ns` virtual ns).

        Earlier events are dropped (`take_event` is the way to look at them first: the
        `wait-for` command does, unless told `since=now`). Events the run produces up to the
        match are consumed; later ones stay for the next wait.
        """
        if self.lpar is None:
            raise HmcError("the LPAR is not activated")
        self._unmatched.clear()
        event = self.lpar.run_until(match, timeout_ns)
        # Consume what the bus delivered up to and including the match (everything on timeout).
        while self._unmatched and self._unmatched.popleft() is not event:
            pass
        return event

    def advance(self, ns: int) -> None:
        """Let the LPAR run for ns of virtual time between commands, as the console does
        while the operator watches; a journal records it so that a replay runs it too.

        What happens meanwhile stays for the next `wait-for`, as what a command set off does:
        a wait typed after its event (a lab's hint typed late) is answered at once, and a
        journal's replay, which runs the same advances, sees the same. `wait-for ... since=now`
        ignores it.
        """
        if self.lpar is None:
            raise HmcError("the LPAR is not activated")
        self.lpar.run(ns)
        for listener in list(self._run_listeners):
            listener(ns, self.lpar.free_running)

    def subscribe_runs(self, listener: Callable[[int, bool], None]) -> Callable[[], None]:
        """Call `listener(ns, free_running)` after every `advance`; returns the function
        that unregisters it."""
        self._run_listeners.append(listener)
        return lambda: self._run_listeners.remove(listener) if listener in self._run_listeners \
            else None

    # -- commands ------------------------------------------------------------------------------

    def execute(self, line: str) -> CommandResult:
        """Parse and run one command line, recording it in the history."""
        try:
            result = execute(self, parse(line))
        except CommandError as error:
            # One line even for a line with control characters (a journal's command record).
            result = CommandResult(False, printable(str(error)))
        entry = HistoryEntry(line.strip(), result)
        self.history.append(entry)
        # After the command's events: a journal sees each command right after what it caused.
        for listener in list(self._command_listeners):
            listener(entry)
        return result

    def subscribe_commands(self, listener: ResultHook) -> Callable[[], None]:
        """Call `listener` with every executed command (from any front end) once it has
        finished; returns the function that unregisters it."""
        self._command_listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._command_listeners:
                self._command_listeners.remove(listener)

        return unsubscribe

    def run_script(self, lines: Iterable[str], *,
                   on_result: ResultHook | None = None) -> list[CommandResult]:
        """Run command lines in order, skipping blanks and `#` comments; stop at the first
        failed command. Each result carries its 1-based line number; `on_result` sees each
        one as soon as it is known."""
        results = []
        for number, line in enumerate(lines, start=1):
            if is_blank(line):
                continue
            result = replace(self.execute(line), line=number)
            results.append(result)
            if on_result is not None:
                on_result(HistoryEntry(line.strip(), result))
            if not result.ok:
                break
        return results

    # -- life cycle ----------------------------------------------------------------------------

    def close(self) -> None:
        """Release the LPAR and stop listening to the bus."""
        if self.gdb is not None:
            self.gdb.close()
            self.gdb = None
        self._unsubscribe()
        if self.lpar is not None:
            self.lpar.close()
            self.lpar = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
