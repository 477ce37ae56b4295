"""The HMC tasks: one table for the tasks pad, the key bindings and the command palette.

Each task names a screen action (console/tui/screens/main.py); the action sends the matching
operator command through the command layer, after a form or a confirmation where the HMC has
one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from textual import on
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option


@dataclass(frozen=True)
class Task:
    """An operator task: where it is listed, its key and the screen action it runs."""

    id: str
    group: str
    title: str
    key: str
    action: str
    help: str


TASKS: tuple[Task, ...] = (
    Task("activate", "Daily", "Activate", "a", "activate",
         "Activate the LPAR with its activation profile (CPUs, storage, devices)."),
    Task("os-messages", "Daily", "Operating System Messages", "o", "os_messages",
         "Show the operating system's messages and type a command to it."),
    Task("reset-normal", "Daily", "Reset Normal", "n", "reset('normal')",
         "Reset the CPUs, keep storage."),
    Task("deactivate", "Daily", "Deactivate", "D", "deactivate",
         "Deactivate the LPAR (asks first): storage is released."),
    Task("load", "Recovery", "Load…", "l", "load",
         "Load (IPL) from a device: normal, clear, or a dump program with store status."),
    Task("stop-all", "Recovery", "Stop All", "s", "stop_all", "Stop every CPU."),
    Task("start-all", "Recovery", "Start All", "g", "start_all",
         "Start every stopped CPU from its current PSW."),
    Task("psw-restart", "Recovery", "PSW Restart", "p", "psw_restart",
         "Restart interruption on the selected CPU (default 0)."),
    Task("reset-clear", "Recovery", "Reset Clear", "c", "reset('clear')",
         "Reset the CPUs and clear storage (asks first)."),
    Task("store-status", "Recovery", "Store Status", "t", "store_status",
         "Store the status of the selected CPU (it must be stopped) at absolute 0x1200."),
    Task("faults", "Instructor", "Faults…", "f", "faults",
         "Inject a hang or a panic (and the corruptions the machine offers)."),
    Task("run-pause", "Simulation", "Run / Hold", "f5", "app.run_pause",
         "Let the machine run, or hold it (commands still run)."),
    Task("step", "Simulation", "Step instruction", "f6", "app.step",
         "Hold the machine and execute one instruction on the selected CPU."),
    Task("next-stage", "Simulation", "Run to next stage", "f7", "app.next_stage",
         "Hold the machine and run until the next workflow stage event."),
    Task("speed", "Simulation", "Speed", "f8", "app.speed",
         "Cycle the speed: crawl, slow, real time, maximum, free running."),
    Task("breakpoint", "Simulation", "Breakpoint…", "b", "app.command_line('break ')",
         "Stop a CPU when it reaches a symbol or an address (the break command)."),
    Task("command", "Simulation", "Command…", "colon", "app.command_line('')",
         "Type any operator command (docs/COMMANDS.md)."),
    Task("dump-viewer", "Inspect", "Open dump…", "v", "open_dump",
         "Open a vmcore or s390 dump in the dump viewer."),
)
TASK_BY_ID = {task.id: task for task in TASKS}


def key_label(key: str) -> str:
    """How a key is written in the pad and the palette (F5, :, l)."""
    if key == "colon":
        return ":"
    return key.upper() if re.fullmatch(r"f\d+", key) else key


class TasksPad(OptionList):
    """The tasks, grouped as on the HMC's tasks pad, with their keys."""

    HELP_TOPIC = "tasks"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "screen.leave_tasks", "Back to the view", id="tasks.leave"),
    ]

    class Chosen(Message):
        """The operator chose a task in the pad."""

        def __init__(self, task: Task) -> None:
            super().__init__()
            self.task = task

    def on_mount(self) -> None:
        options: list[Option | None] = []
        group = ""
        for task in TASKS:
            if task.group != group:
                group = task.group
                options.append(Option(f"── {group}", disabled=True))
            options.append(Option(f"{task.title:<25} {key_label(task.key):>3}", id=task.id))
        self.set_options(options)  # type: ignore[arg-type]
        self.highlighted = 1

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id in TASK_BY_ID:
            self.post_message(self.Chosen(TASK_BY_ID[event.option.id]))
