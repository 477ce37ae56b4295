"""Hardware Messages, as the HMC calls them: what the machine and the operator's tasks say.

Every command's acknowledgement or refusal goes here (and to the acknowledgement line), with
what the machine reports by itself: errors, disabled waits, failed checks, dumps written.
"""

from __future__ import annotations

from console.tui.widgets.inspect import symbols
from console.tui.widgets.inspect.psw import wait_code_meaning
from console.tui.widgets.messages.log import MessageLog
from console.tui.widgets.workflow.model import field_of
from machine.events import Event


def event_lines(event: Event, program: str | None) -> list[tuple[str, str]]:
    """(text, severity) lines worth a hardware message for one event (often none)."""
    describe = _DESCRIBERS.get(event.kind)
    return describe(event, program) if describe else []


def _wait(event: Event, program: str | None) -> list[tuple[str, str]]:
    if getattr(event, "enabled", True):
        return []
    code = event.code  # type: ignore[attr-defined]
    meaning = wait_code_meaning(code, program, symbols.symbolize(code, program))
    return [(f"CPU {event.cpu} entered disabled wait, code {code:#x}"
             + (f": {meaning}" if meaning else ""), "warning")]


def _check(event: Event, program: str | None) -> list[tuple[str, str]]:
    if event.ok:  # type: ignore[attr-defined]
        return []
    text = (f"Check failed: {event.what}: expected {event.expected}, "  # type: ignore[attr-defined]
            f"computed {event.computed}")  # type: ignore[attr-defined]
    return [(text, "error")]


def _stage(event: Event, program: str | None) -> list[tuple[str, str]]:
    if event.status != "failed":  # type: ignore[attr-defined]
        return []
    return [(f"Stage {event.stage} failed: {event.detail}", "error")]  # type: ignore[attr-defined]


def _dump_written(event: Event, program: str | None) -> list[tuple[str, str]]:
    size = int(field_of(event, "bytes", default=0))
    seconds = field_of(event, "seconds", default=0.0)
    took = "" if seconds is None else f", {float(seconds):.3f} s"  # None: a recording
    text = (f"Dump written: {field_of(event, 'path', default='?')} "
            f"({field_of(event, 'format', default='?')}, {size / 2**20:.1f} MiB{took})")
    return [(text, "ok")]


def _ipl(event: Event, program: str | None) -> list[tuple[str, str]]:
    return [(f"IPL: {event.program} from device {event.devno:04x}"  # type: ignore[attr-defined]
             + (" (clear)" if event.clear else "")  # type: ignore[attr-defined]
             + (" with store status" if event.store_status else ""), "info")]  # type: ignore[attr-defined]


def _simple(severity: str, template: str):  # type: ignore[no-untyped-def]
    def describe(event: Event, program: str | None) -> list[tuple[str, str]]:
        return [(template.format(**event.to_dict()), severity)]
    return describe


_DESCRIBERS = {
    "wait": _wait, "check": _check, "stage": _stage, "dump_written": _dump_written,
    "ipl": _ipl,
    "error": _simple("error", "{message}"),
    "shutdown_action": _simple("notice", "The kernel runs its on_{trigger} action: {action}"),
    "restart": lambda event, program: (
        _simple("info", "CPU {cpu}: restart interruption ({source})")(event, program)
        if getattr(event, "source", "") == "operator" else []),
    "panic": _simple("error", "Kernel panic on CPU {cpu}: {message}"),
    "hang": _simple("warning", "The kernel reports a hang ({hang}) on CPU {cpu}"),
    "breakpoint": _simple("notice", "CPU {cpu} stopped at breakpoint {label} ({address:#x}): "
                                    "Start or Step goes on"),
}


class HardwareMessages(MessageLog):
    """The log of acknowledgements, refusals and machine reports."""

    HELP_TOPIC = "hardware"
