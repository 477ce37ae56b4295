"""Messages between the machine thread and the Textual UI, and between widgets and the app.

The runner (console/control/runner.py) calls plain functions from its own thread; `RunnerBridge`
turns those calls into Textual messages posted to the app (post_message is thread-safe).
Frames replace older queued frames (`can_replace`), so a busy UI only ever draws the newest;
event batches and command outcomes are never dropped.
"""

from __future__ import annotations

from textual.app import App
from textual.message import Message

from console.control.runner import Frame, Outcome
from machine.events import Event


class FrameReady(Message):
    """A new frame from the machine thread; a newer one replaces it in the queue."""

    def __init__(self, frame: Frame) -> None:
        super().__init__()
        self.frame = frame

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, FrameReady)


class EventsArrived(Message):
    """A batch of machine events, in order."""

    def __init__(self, events: tuple[Event, ...]) -> None:
        super().__init__()
        self.events = events


class CommandDone(Message):
    """The outcome of one submitted command line."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__()
        self.outcome = outcome


class Submit(Message):
    """A widget asks the app to run an operator command line (through the command layer)."""

    def __init__(self, line: str, source: str = "operator") -> None:
        super().__init__()
        self.line = line
        self.source = source


class GoToAddress(Message):
    """A widget asks to show an absolute address in the storage view."""

    def __init__(self, address: int) -> None:
        super().__init__()
        self.address = address


class RunnerBridge:
    """The runner's callbacks, posting to an app."""

    def __init__(self, app: App) -> None:
        self.app = app

    def frame(self, frame: Frame) -> None:
        self.app.post_message(FrameReady(frame))

    def events(self, events: tuple[Event, ...]) -> None:
        self.app.post_message(EventsArrived(events))

    def outcome(self, outcome: Outcome) -> None:
        self.app.post_message(CommandDone(outcome))
