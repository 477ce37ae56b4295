"""The main HMC screen: status, CPU badges, the tasks pad, the views in tabs, and the line
that acknowledges what the last task did.

The screen holds the models the views are drawn from (message stores, timeline, progress,
dumps); it is fed frames, event batches and command outcomes by the app. Its task actions
only ever produce command lines (console/control/commands.py), after a form or a confirmation.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Static, TabbedContent, TabPane

from console.control.runner import Frame, Outcome, ProbeError
from console.tui.bridge import GoToAddress, Submit
from console.tui.screens.dialogs import ConfirmScreen, FaultsScreen
from console.tui.screens.load import LoadForm, LoadRequest
from console.tui.widgets.dump.viewer import DumpViewer
from console.tui.widgets.footer import SteadyFooter
from console.tui.widgets.hmc.hardware import HardwareMessages, event_lines
from console.tui.widgets.hmc.status import CpuBadges, LparStatus
from console.tui.widgets.hmc.tasks import TASKS, TasksPad
from console.tui.widgets.inspect import goto
from console.tui.widgets.inspect.disasm import DisassemblyView, code_probe
from console.tui.widgets.inspect.follow import NoteFollow
from console.tui.widgets.inspect.regions import (
    Region,
    StorageFacts,
    probe_storage_facts,
    storage_map,
)
from console.tui.widgets.inspect.registers import RegistersView, register_field
from console.tui.widgets.inspect.storage import HexView, StorageView, hex_probe
from console.tui.widgets.messages.model import LogStore, severity_of_console
from console.tui.widgets.messages.pane import OsMessages
from console.tui.widgets.workflow.model import DumpProgress, DumpRecord, Timeline, dump_record
from console.tui.widgets.workflow.pane import WorkflowPane
from machine.events import Event

if TYPE_CHECKING:
    from console.tui.host import ConsoleHost

# While the guest runs, the views of changing values (registers, storage, code) are redrawn
# at most this often: faster than that nobody can read hex, and every redraw takes the GIL
# from the machine thread. A key press, a step or a pause redraws them at once.
DETAIL_REDRAW_S = 0.2
DETAIL_TABS = ("tab-registers", "tab-storage", "tab-code")

TABS = ("tab-messages", "tab-hardware", "tab-workflow", "tab-registers", "tab-storage",
        "tab-code", "tab-dump")


def _task_bindings() -> list[BindingType]:
    """A key for every task that the screen carries out (the app has the simulation keys)."""
    return [Binding(task.key, task.action, task.title, show=False, id=f"task.{task.id}",
                    tooltip=task.help)
            for task in TASKS if not task.action.startswith("app.")]


def _tab_bindings() -> list[BindingType]:
    return [Binding(str(n), f"show_tab('{tab}')", tab.removeprefix("tab-").capitalize(),
                    show=False, id=f"view.{tab.removeprefix('tab-')}")
            for n, tab in enumerate(TABS, start=1)]


# Events about the session, not the machine's history (machine/events.py): not counted.
ASIDE_KINDS = frozenset({"rewind", "checkpoint", "stage_stop"})

class MainScreen(Screen[None]):
    """The HMC: everything the operator sees and does."""

    HELP_TOPIC = "main"
    HORIZONTAL_BREAKPOINTS: ClassVar[list[tuple[int, str]] | None] = [(0, "-narrow"),
                                                                      (110, "-wide")]
    BINDINGS: ClassVar[list[BindingType]] = [
        *_task_bindings(), *_tab_bindings(),
        Binding("left_square_bracket", "cpu(-1)", "CPU -", show=False, id="cpu.previous"),
        Binding("right_square_bracket", "cpu(1)", "CPU +", show=False, id="cpu.next"),
        Binding("f4", "hold", "Hold", id="main.hold",
                tooltip="Hold the Messages display (messages keep arriving)"),
    ]

    def __init__(self, lpar_name: str) -> None:
        super().__init__()
        self.lpar_name = lpar_name
        self.os_store = LogStore()
        self.hw_store = LogStore()
        self.timeline = Timeline()
        self._machine_events: list[Event] = []  # this LPAR's, for a rewind to cut back
        self.progress = DumpProgress()
        self.dumps: list[DumpRecord] = []
        self.frame: Frame | None = None
        self.regions: list[Region] = []
        self.selected_cpu = 0
        self.outcomes_shown = 0
        self._detail_drawn_at = 0.0
        self._detail_timer_pending = False
        self._dump_news: str | None = None
        # Teaching mode's places (issue 13): the code a card named instead of the PSW, and
        # the note being filled, which the Storage view can follow.
        self.code_at: str | None = None
        self.notes = NoteFollow()
        self.following_notes = False
        self._notes_baseline: tuple[int, int] | None = None  # the window the baseline is of

    @property
    def dumplab(self) -> ConsoleHost:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield LparStatus(self.lpar_name, id="lpar-status")
        yield CpuBadges(id="cpu-badges")
        with Horizontal(id="body"):
            yield TasksPad(id="tasks")
            with TabbedContent(id="views", initial="tab-messages"):
                with TabPane("1 Messages", id="tab-messages"):
                    yield OsMessages(self.os_store, id="os-messages")
                with TabPane("2 Hardware", id="tab-hardware"):
                    yield HardwareMessages(self.hw_store, id="hw-log")
                with TabPane("3 Workflow", id="tab-workflow"):
                    yield WorkflowPane(self.timeline, self.progress, self.dumps, id="workflow")
                with TabPane("4 Registers", id="tab-registers"):
                    yield RegistersView(id="registers")
                with TabPane("5 Storage", id="tab-storage"):
                    yield StorageView(id="storage")
                with TabPane("6 Code", id="tab-code"):
                    yield DisassemblyView(id="code")
                with TabPane("7 Dump", id="tab-dump"):
                    yield DumpViewer(id="dump-viewer")
        yield Static("", id="ack")
        yield SteadyFooter(compact=True)

    def on_mount(self) -> None:
        # The keys of the welcome line must work at once: the focus starts on the log, not
        # in the OS command line (where `a` would be typed). `o` goes to the command line.
        self.query_one("#os-log").focus()
        self.acknowledge("Welcome. Press a to Activate, then l to Load. F5 holds or runs the "
                         "machine, F6 steps, F7 runs to the next stage; o: OS command line, "
                         "F2: tasks, F1: help, Ctrl+P: every command.", "info")

    # -- what the machine says -------------------------------------------------------------

    def show_frame(self, frame: Frame, *, now: bool = False) -> None:
        """Draw a frame: the status always, the other views when they are visible (views of
        fast-changing values at a readable rate unless `now`)."""
        self.frame = frame
        self.query_one(LparStatus).show(frame)
        self.query_one(CpuBadges).show(frame)
        facts = frame.probes.get("facts")
        self.regions = storage_map(frame.snapshot, facts if isinstance(facts, StorageFacts) else None)
        self._take_notes_baseline(frame.probes.get("notes-base"))
        active = self.active_tab
        if active in DETAIL_TABS and not (now or self._detail_due(frame)):
            self._redraw_details_later()
            return
        if active == "tab-registers":
            self.query_one(RegistersView).show(frame.snapshot, self.selected_cpu)
        elif active == "tab-storage":
            self.query_one("#storage-map").show(self.regions)  # type: ignore[attr-defined]
            self.query_one("#hex-view", HexView).show(frame.probes.get("hex"))
        elif active == "tab-code":
            self.query_one(DisassemblyView).show(frame.probes.get("code"))
        elif active == "tab-workflow":
            self.query_one(WorkflowPane).set_regions(
                self.regions, facts.memory if isinstance(facts, StorageFacts) else None)

    def _detail_due(self, frame: Frame) -> bool:
        moment = time.monotonic()
        if frame.running and moment - self._detail_drawn_at < DETAIL_REDRAW_S:
            return False
        self._detail_drawn_at = moment
        return True

    def _redraw_details_later(self) -> None:
        """The frame skipped may be the last one for a while (the guest stopped): draw the
        newest frame once the interval is over."""
        if self._detail_timer_pending:
            return
        self._detail_timer_pending = True

        def redraw() -> None:
            self._detail_timer_pending = False
            if self.frame is not None:
                self.show_frame(self.frame)
        self.set_timer(DETAIL_REDRAW_S, redraw)

    def _remember(self, events: tuple[Event, ...]) -> bool:
        """Keep the machine's own events of this LPAR; after a `rewind` event only the ones
        that still stand. True if the batch had a rewind (the timeline is rebuilt)."""
        rewound = False
        for event in events:
            if event.kind == "rewind":
                del self._machine_events[event.events:]  # type: ignore[attr-defined]
                rewound = True
            elif event.kind not in ASIDE_KINDS:
                if event.kind == "hmc" and event.operation == "activate":  # type: ignore[attr-defined]
                    self._machine_events = []
                self._machine_events.append(event)
        return rewound

    def feed_events(self, events: tuple[Event, ...]) -> None:
        """Take a batch of events into the logs, the timeline, progress and the dumps."""
        rewound = self._remember(events)
        program = self.frame.snapshot.program if self.frame and self.frame.snapshot else None
        os_lines, hw_lines = [], []
        for event in events:
            if event.kind == "console":
                os_lines += self.os_store.add(
                    event.text, severity_of_console(event.level, event.source),  # type: ignore[attr-defined]
                    t=event.t, priority=event.priority, cpu=event.cpu)  # type: ignore[attr-defined]
            elif event.kind == "dump_written":
                self.dumps.append(dump_record(event))
                self._announce_dump(self.dumps[-1])
            for text, severity in event_lines(event, program):
                hw_lines += self.hw_store.add(text, severity, t=event.t, cpu=event.cpu)
        if os_lines:
            self.query_one(OsMessages).append(os_lines)
        if hw_lines:
            self.query_one(HardwareMessages).append(hw_lines)
        if rewound:  # the machine went back: the timeline shows what still stands
            self.timeline.reset()
            self.timeline.feed(self._machine_events)
            self.notes.reset()
            self.notes.feed(self._machine_events)
            changed = moved = True
        else:
            changed = self.timeline.feed(events)
            moved = self.notes.feed(events)
        changed |= self.progress.feed(events)
        if changed or any(e.kind == "dump_written" for e in events):
            self.query_one(WorkflowPane).refresh_all()
        if moved:
            self._notes_moved()

    def _announce_dump(self, dump: DumpRecord) -> None:
        """The result of the whole workflow: say where it is and how to look at it. Written
        during a command (a wait-for), it leads that command's acknowledgement."""
        news = (f"{dump.label} written: {Path(dump.path).name} "
                f"({dump.bytes / 2**20:.1f} MiB). Press v to open it")
        if self.frame is not None and self.frame.busy:
            self._dump_news = news
        self.acknowledge(news + ".", "ok")

    def show_outcome(self, outcome: Outcome) -> None:
        """Acknowledge a command plainly, and log it with any output it has."""
        self.outcomes_shown += 1
        result = outcome.result
        first, _, rest = result.message.partition("\n")
        severity = "ok" if result.ok else "refused"
        lines = self.hw_store.add(f"{outcome.line}: {first}", severity)
        if rest:
            lines += self.hw_store.add(rest, "output")
        self.query_one(HardwareMessages).append(lines)
        text = f"{outcome.line}: {first}" + (" (more in 2 Hardware)" if rest else "")
        if self._dump_news:
            text, self._dump_news = f"{self._dump_news} · {text}", None
        self.acknowledge(text, severity)
        if rest and outcome.source == "prompt":
            self.show_tab("tab-hardware")

    def report_internal_error(self, text: str) -> None:
        """One line in hardware messages and on the acknowledgement line (crash containment,
        console/tui/crash.py)."""
        self.query_one(HardwareMessages).append(self.hw_store.add(text, "error"))
        self.acknowledge(text, "refused")

    def acknowledge(self, text: str, severity: str) -> None:
        style = {"ok": "bold $success", "refused": "bold $error", "info": "$foreground"}[severity]
        mark = {"ok": "✔", "refused": "✘", "info": "›"}[severity]
        self.query_one("#ack", Static).update(
            Content.from_markup(f"[{style}]$mark[/] $text", mark=mark, text=text))

    # -- views ---------------------------------------------------------------------------

    @property
    def active_tab(self) -> str:
        return self.query_one("#views", TabbedContent).active

    def action_show_tab(self, tab: str) -> None:
        self.show_tab(tab)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """F4 Hold acts on the Messages view only; elsewhere it stays in the key bar, dimmed
        (a key bar that keeps its keys is not rebuilt on a view switch)."""
        if action == "hold" and self.is_mounted and self.active_tab != "tab-messages":
            return None
        return True

    def action_hold(self) -> None:
        self.query_one(OsMessages).action_hold()

    def show_tab(self, tab: str) -> None:
        self.query_one("#views", TabbedContent).active = tab
        self._focus_tab(tab)

    def action_leave_tasks(self) -> None:
        self._focus_tab(self.active_tab)

    @on(events.DescendantFocus)
    def _hide_tasks_pad(self, event: events.DescendantFocus) -> None:
        # On a narrow screen the pad covers the views: it goes once focus leaves it.
        if self.has_class("-show-tasks") and not isinstance(event.widget, TasksPad):
            self.remove_class("-show-tasks")

    def _focus_tab(self, tab: str) -> None:
        targets = {"tab-messages": "#os-log", "tab-hardware": "#hw-log",
                   "tab-workflow": "#stage-list", "tab-registers": "#registers",
                   "tab-storage": "#hex-view", "tab-code": "#code",
                   "tab-dump": "#dump-tabs ContentTabs"}
        # Focus must move into the new tab: a focused widget left in a hidden tab would
        # switch the tabs back.
        self.query_one(targets[tab]).focus()

    @on(TabbedContent.TabActivated, "#views")
    def _tab_changed(self) -> None:
        self.update_probes()
        if self.active_tab == "tab-workflow":
            self.query_one(WorkflowPane).follow()
        if self.frame is not None:
            self.show_frame(self.frame, now=True)

    def update_probes(self) -> None:
        """Ask the machine thread for what the visible view needs, and nothing more."""
        runner = self.dumplab.runner
        active = self.active_tab
        runner.set_probe("facts", probe_storage_facts)
        hex_view = self.query_one("#hex-view", HexView)
        runner.set_probe("hex", hex_probe(*hex_view.window) if active == "tab-storage" else None)
        runner.set_probe("code", code_probe(self.selected_cpu, self.code_at)
                         if active == "tab-code" else None)

    @on(HexView.WindowChanged, "#hex-view")
    def _hex_window(self, event: HexView.WindowChanged) -> None:
        self.update_probes()

    def action_cpu(self, delta: int) -> None:
        count = len(self.frame.snapshot.cpus) if self.frame and self.frame.snapshot else 1
        self.selected_cpu = (self.selected_cpu + delta) % max(1, count)
        self.acknowledge(f"CPU {self.selected_cpu} selected (registers, code, step, "
                         "PSW Restart, Store Status)", "info")
        self.update_probes()
        if self.frame is not None:
            self.show_frame(self.frame, now=True)

    # -- teaching mode: the places a stage card's "Show me" names ------------------------

    @property
    def cpu_count(self) -> int:
        return len(self.frame.snapshot.cpus) if self.frame and self.frame.snapshot else 1

    def show_code_at(self, where: str) -> None:
        """The Code view at a code symbol or address instead of the PSW (Home: back)."""
        self.code_at = where
        self.show_tab("tab-code")
        self.update_probes()
        self.acknowledge(f"Code view at {where} (Home: back to the PSW)", "info")

    @on(DisassemblyView.FollowPsw)
    def _follow_psw(self) -> None:
        self.code_at = None
        self.update_probes()
        self.acknowledge(f"Code view follows the PSW of CPU {self.selected_cpu}", "info")

    def show_registers(self, cpu: int, register: str = "") -> None:
        """The Registers view on a CPU, with the register a card named marked."""
        self.selected_cpu = min(cpu, self.cpu_count - 1)
        view = self.query_one(RegistersView)
        view.focus_field = register_field(register) if register else None
        self.show_tab("tab-registers")
        self.update_probes()
        what = f" {register}" if view.focus_field else ""
        self.acknowledge(f"Registers of CPU {self.selected_cpu}{what}", "info")

    @on(StorageView.FollowToggled)
    def _toggle_follow(self) -> None:
        self.follow_notes(not self.following_notes)

    def follow_notes(self, on: bool) -> None:
        """The Storage view follows the ELF note being filled (from `notes_saved` events),
        bytes changed since the notes stage began marked."""
        self.following_notes = on
        if not on:
            self.query_one(StorageView).say("Not following the notes any more.")
            return
        self.show_tab("tab-storage")
        self._notes_moved()

    def _notes_moved(self) -> None:
        """A notes event came: read the header as verified (once), move the followed view."""
        window = self.notes.baseline_window()
        hex_view = self.query_one(HexView)
        if window is not None and window != self._notes_baseline:
            self._notes_baseline = window
            hex_view.baseline = None
            self.dumplab.runner.set_probe("notes-base", hex_probe(*window))
        elif window is None and self.notes.header is None:  # rewound to before any: forget
            self._notes_baseline, hex_view.baseline = None, None
        if not self.following_notes:
            return
        target = self.notes.target(self.cpu_count)
        storage = self.query_one(StorageView)
        if target is None:
            storage.say("Following the notes: no note written yet (they come in the notes "
                        "stage, after the purgatory's load mode checks)")
        else:
            storage.go(target[0], target[1])

    def _take_notes_baseline(self, result: object) -> None:
        """The header as the purgatory verified it, the notes stage's starting point: kept
        if no note was written before it was read (events come before their frame)."""
        if result is None or self._notes_baseline is None:
            return
        self.dumplab.runner.set_probe("notes-base", None)
        if isinstance(result, tuple) and result[0] == self._notes_baseline[0] \
                and self.notes.header_as_verified:
            self.query_one(HexView).baseline = result  # type: ignore[assignment]

    # -- go-to ---------------------------------------------------------------------------

    @on(StorageView.GoToRequested)
    def _goto(self, event: StorageView.GoToRequested) -> None:
        snapshot = self.frame.snapshot if self.frame else None
        cpu = snapshot.cpus[min(self.selected_cpu, len(snapshot.cpus) - 1)] if snapshot and snapshot.cpus else None
        storage = self.query_one(StorageView)
        try:
            address = goto.resolve(event.text, cpu, self.regions,
                                   snapshot.program if snapshot else None)
        except goto.GoToError as error:
            storage.say(str(error), error=True)
            return
        storage.go(address, event.text.strip())

    @on(GoToAddress)
    def _go_to_address(self, event: GoToAddress) -> None:
        self.following_notes = False  # the operator chose another place
        self.show_tab("tab-storage")
        self.query_one(StorageView).go(event.address)

    # -- tasks ---------------------------------------------------------------------------

    @on(TasksPad.Chosen)
    async def _task(self, event: TasksPad.Chosen) -> None:
        if self.has_class("-show-tasks"):  # on a narrow screen the pad goes away again
            self.remove_class("-show-tasks")
            self._focus_tab(self.active_tab)
        action = event.task.action
        await self.app.run_action(action if action.startswith("app.") else f"screen.{action}")

    @on(Submit)
    def _submit(self, event: Submit) -> None:
        event.stop()
        self.dumplab.submit(event.line, event.source)

    def _send(self, line: str) -> None:
        self.dumplab.submit(line)

    def action_activate(self) -> None:
        self._send("activate")

    def action_deactivate(self) -> None:
        self._confirm("Deactivate the LPAR?", "Every CPU stops and storage is released.",
                      "deactivate")

    def action_os_messages(self) -> None:
        self.show_tab("tab-messages")
        self.query_one(OsMessages).focus_command_line()

    def action_reset(self, kind: str) -> None:
        if kind == "clear":
            self._confirm("Reset Clear?", "The CPUs are reset and all storage is cleared: "
                          "anything a dump should have shown is lost.", "reset clear")
        else:
            self._send("reset normal")

    def action_load(self, load_type: str = "normal") -> None:
        devices = self.frame.devices if self.frame else ()
        self.app.push_screen(LoadForm(devices, load_type), self._loaded)

    def _loaded(self, request: LoadRequest | None) -> None:
        if request is None:
            self.acknowledge("Load cancelled.", "info")
        elif request.clear:
            self._confirm(f"Load clear from {request.devno:04x}?",
                          "A clear load clears all storage first.", request.command())
        else:
            self._send(request.command())

    def action_stop_all(self) -> None:
        self._send("stop all")

    def action_start_all(self) -> None:
        self._send("start all")

    def action_psw_restart(self) -> None:
        self._send(f"restart {self.selected_cpu}")

    def action_store_status(self) -> None:
        self._send(f"store {self.selected_cpu}")

    def action_faults(self) -> None:
        self.app.push_screen(FaultsScreen(), lambda line: self._send(line) if line else None)

    def action_open_dump(self) -> None:
        self.dumplab.action_open_dump()

    def _confirm(self, question: str, detail: str, line: str) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                self._send(line)
            else:
                self.acknowledge(f"{question.rstrip('?')}: cancelled, nothing done.", "info")
        self.app.push_screen(ConfirmScreen(question, detail), answered)

    def probe_error(self, name: str) -> str | None:
        """The error of a probe in the current frame, if it failed (tests, help)."""
        value = self.frame.probes.get(name) if self.frame else None
        return value.message if isinstance(value, ProbeError) else None
