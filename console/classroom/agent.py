"""Inside a served console (`dumplab serve` started it): the classroom's side of the console.

A thread that, every half second, writes what the instructor's table shows to the session's
status.json, and carries out the instructor's actions read from instructor.jsonl (a fault
from the catalogue, a message for Hardware Messages). It also records every lab attempt of
this console as one line of the server's results.jsonl (console/classroom/results.py reads
them). See console/classroom/channel.py for the files.

The lab recorder wraps the console's LabDriver (console/tui/widgets/lab/driver.py) in this
process only: the console itself knows nothing of the classroom.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from console.classroom import channel
from console.tui.widgets.lab import driver as lab_driver

log = logging.getLogger("dumplab.console")
POLL_S = 0.5
# status.json is rewritten when what it says changes, and at least this often (its `updated`
# time shows the console is alive): an idle console writes no file twice a second.
STATUS_REFRESH_S = 10.0


def attach(app: Any) -> Agent:
    """Start the agent for a served console's app (before app.run())."""
    agent = Agent(app)
    agent.start()
    return agent


class Agent:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.workdir: Path = Path(app.session.workdir)
        self.trainee = os.environ.get("DUMPLAB_TRAINEE", "") or self.workdir.name
        self.seat = os.environ.get("DUMPLAB_SESSION_ID", "")
        self.dumps = 0
        self.faults: list[str] = []
        self.messages = 0
        self.lab: LabAttempt | None = None
        self._offset = 0
        self._written: tuple[str, float] = ("", 0.0)
        self._thread = threading.Thread(target=self._main, daemon=True,
                                        name="dumplab-classroom")

    def start(self) -> None:
        self.app.session.bus.subscribe(self._event)
        install_lab_recorder(self)
        self._thread.start()

    def _event(self, event: Any) -> None:  # the machine thread
        if event.kind == "dump_written":
            self.dumps += 1

    def _main(self) -> None:
        while True:
            try:
                self._act()
                self._write_status()
            except Exception:  # the classroom must not take the console down
                log.exception("classroom agent")
            time.sleep(POLL_S)

    def _write_status(self) -> None:
        status = self.status()
        # Compared as text: the status holds lists (faults) that change in place.
        content = json.dumps({key: value for key, value in status.items() if key != "updated"},
                             sort_keys=True)
        last, written_at = self._written
        if content == last and time.monotonic() - written_at < STATUS_REFRESH_S:
            return
        channel.write_status(self.workdir, status)
        self._written = (content, time.monotonic())

    def status(self) -> dict[str, Any]:
        lpar = self.app.session.lpar
        state = lpar.status if lpar is not None else "not activated"
        status: dict[str, Any] = {"trainee": self.trainee, "pid": os.getpid(), "state": state,
                                  "dumps": self.dumps, "faults": self.faults,
                                  "messages": self.messages, "updated": time.time()}
        if self.lab is not None:
            status.update(self.lab.progress())
        return status

    def _act(self) -> None:
        actions, self._offset = channel.read_actions(self.workdir, self._offset)
        for action in actions:
            if action.get("action") == "fault" and action.get("fault") in channel.FAULTS:
                self.faults.append(action["fault"])
                self.app.runner.submit(f"fault {action['fault']}", "instructor")
            elif action.get("action") == "message" and isinstance(action.get("text"), str):
                self.messages += 1
                text = action["text"][:channel.MESSAGE_CHARS]
                self.app.call_from_thread(self._show_message, text)

    def _show_message(self, text: str) -> None:  # the app's thread
        from console.tui.widgets.hmc.hardware import HardwareMessages

        screen = self.app.main
        line = f"Message from the instructor: {text}"
        screen.query_one(HardwareMessages).append(screen.hw_store.add(line, "notice"))
        screen.acknowledge(line, "info")
        self.app.notify(text, title="Message from the instructor", timeout=30)


class LabAttempt:
    """One lab, from its first step to its score (or to the console closing it)."""

    def __init__(self, agent: Agent, driver: Any) -> None:
        self.agent, self.driver = agent, driver
        self.started = time.time()
        self.solve_used = False
        self.recorded = False

    def progress(self) -> dict[str, Any]:
        run = self.driver.run
        total = len(run.lab.steps)
        step = f"{min(run.index + 1, total)}/{total}" if not run.finished else "done"
        return {"lab": run.lab.stem, "step": step, "score": run.score().line()}

    def record(self, outcome: str) -> None:
        if self.recorded:
            return
        self.recorded = True
        run = self.driver.run
        score = run.score()
        results = [*run.results]
        record = {
            "trainee": self.agent.trainee, "seat": self.agent.seat,
            "session": self.agent.workdir.name, "lab": run.lab.stem, "title": run.lab.title,
            "outcome": outcome, "started": round(self.started, 3),
            "ended": round(time.time(), 3), "seconds": round(time.time() - self.started, 1),
            "steps": [{"title": r.title, "outcome": r.outcome, "hints_used": r.hints_used}
                      for r in results],
            "passed": score.passed, "failed": score.failed, "skipped": score.skipped,
            "total": score.total, "hints_used": score.hints_used,
            "solve_used": self.solve_used, "score": score.line(),
        }
        try:
            channel.append_result(self.agent.workdir.parent, record)
        except OSError as error:
            log.warning("cannot record the lab result: %s", error)


def install_lab_recorder(agent: Any) -> Callable[[], None]:
    """Wrap LabDriver in this process so that each attempt is followed and recorded for
    `agent`; returns the function that unwraps it."""
    cls = lab_driver.LabDriver
    init, solve, close = cls.__init__, cls.solve, cls.close

    def wrapped_init(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        attempt = LabAttempt(agent, self)
        agent.lab = attempt
        report = self.on_report

        def on_report(step_report: Any) -> None:
            if step_report.kind in ("finished", "broken"):
                attempt.record(step_report.kind)
            report(step_report)

        self.on_report = on_report
        self._classroom_attempt = attempt

    def wrapped_solve(self: Any) -> None:
        attempt = getattr(self, "_classroom_attempt", None)
        if attempt is not None:
            attempt.solve_used = True
        solve(self)

    def wrapped_close(self: Any) -> None:
        attempt = getattr(self, "_classroom_attempt", None)
        if attempt is not None and not attempt.recorded:
            attempt.record("abandoned")
        close(self)

    def uninstall() -> None:
        cls.__init__, cls.solve, cls.close = init, solve, close

    cls.__init__, cls.solve, cls.close = wrapped_init, wrapped_solve, wrapped_close
    return uninstall
