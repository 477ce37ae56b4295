"""The instructor's fault catalogue: hangs and panics of the production system.

Faults are injected the way a test module in the guest would trigger them: a hidden command
to the production kernel, which then hangs or panics by itself, in real s390x code. A system
that is already dead cannot take new faults, exactly like the real thing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from machine.events import FaultEvent

if TYPE_CHECKING:
    from machine.lpar import Lpar

HANG_KINDS = ("spin", "wait", "deadlock", "loop")
PRODUCTION_PROGRAM = "kernel"


class FaultError(ValueError):
    """A fault that does not exist or is badly written; the message says which."""


def describe() -> list[str]:
    """One line per fault, for help texts."""
    return [f"hang {kind}" for kind in HANG_KINDS] + ["panic [TEXT]"]


def inject(lpar: Lpar, words: list[str]) -> str:
    """Inject the fault named by words (e.g. ['hang', 'spin']); returns the acknowledgement."""
    from machine.lpar import HmcError

    if not words:
        raise FaultError("fault: say which fault (" + ", ".join(describe()) + ")")
    kind, args = words[0], words[1:]
    if kind == "hang":
        if len(args) != 1 or args[0] not in HANG_KINDS:
            raise FaultError(f"fault hang: expected one of {', '.join(HANG_KINDS)}")
        command, detail = f"hang {args[0]}", args[0]
    elif kind == "panic":
        text = " ".join(args) or "panic injected by the instructor"
        command, detail = f"panic {text}", text
    else:
        raise FaultError(f"unknown fault '{kind}' (faults: {', '.join(describe())})")
    _require_production_system(lpar, HmcError)
    lpar.os_command(command, echo=False)
    lpar.publish(FaultEvent(t=lpar.clock.now, cpu=None, fault=kind, detail=detail))
    return f"Fault injected: {kind} {detail}"


def _require_production_system(lpar: Lpar, error: type[Exception]) -> None:
    if not lpar.activated:
        raise error("cannot inject a fault: the LPAR is not activated")
    if lpar.program is None or lpar.program.name != PRODUCTION_PROGRAM:
        raise error("cannot inject a fault: the production kernel is not loaded (load 0100 first)")
    if lpar.status != "operating":
        raise error(f"cannot inject a fault: the production system is not running (LPAR status: {lpar.status})")
