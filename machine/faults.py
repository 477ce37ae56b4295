"""The instructor's fault catalogue: hangs and panics of the production system.

Faults are injected the way a test module in the guest would trigger them: a hidden command
to the production kernel, which then hangs or panics by itself, in real s390x code. A system
that is already dead cannot take new faults, exactly like the real thing. Corruptions flip a
byte in storage; `kdump-save-fails` arms the host's save step (the dump target is full), so
that kdump fails after the swap and a later stand-alone dump holds two systems.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from machine.events import FaultEvent

if TYPE_CHECKING:
    from machine.lpar import Lpar

HANG_KINDS = ("spin", "wait", "deadlock", "loop")
CORRUPT_TARGETS = ("purgatory", "os_info", "segment")
SEGMENT_NAMES = {"kernel": 0, "elfcorehdr": 1, "initrd": 2}
PRODUCTION_PROGRAM = "kernel"
OS_INFO_POINTER = 0xE18
OS_INFO_RESERVED_BYTE = 0x800  # inside os_info's reserved tail: covered by its checksum only


class FaultError(ValueError):
    """A fault that does not exist or is badly written; the message says which."""


def describe() -> list[str]:
    """One line per fault, for help texts."""
    return ([f"hang {kind}" for kind in HANG_KINDS]
            + ["panic [TEXT]", "corrupt purgatory", "corrupt os_info",
               "corrupt segment N|kernel|elfcorehdr|initrd", "unload-kdump",
               "kdump-save-fails"])


FAULT_KINDS = ("hang", "panic", "corrupt", "unload-kdump", "kdump-save-fails")
NO_ARGUMENT_KINDS = ("unload-kdump", "kdump-save-fails")


def _expected(options: tuple[str, ...] | list[str]) -> str:
    return ", ".join(options[:-1]) + " or " + options[-1]


def check_words(words: list[str]) -> None:
    """Raise FaultError unless words name a fault (the command layer's syntax check)."""
    if not words:
        raise FaultError(f"missing fault (expected {_expected(FAULT_KINDS)})")
    kind, args = words[0], words[1:]
    if kind not in FAULT_KINDS:
        raise FaultError(f"unknown fault '{kind}' (expected {_expected(FAULT_KINDS)})")
    if kind == "hang":
        if not args:
            raise FaultError(f"missing hang kind (expected {_expected(HANG_KINDS)})")
        if len(args) > 1 or args[0] not in HANG_KINDS:
            raise FaultError(f"unknown hang '{' '.join(args)}' (expected {_expected(HANG_KINDS)})")
    if kind == "corrupt":
        _corrupt_target(args)
    if kind in NO_ARGUMENT_KINDS and args:
        raise FaultError(f"{kind} takes no arguments")


def _corrupt_target(args: list[str]) -> tuple[str, int]:
    if not args:
        raise FaultError(f"missing corrupt target (expected {_expected(CORRUPT_TARGETS)})")
    if args[0] not in CORRUPT_TARGETS:
        raise FaultError(f"unknown corrupt target '{args[0]}' (expected {_expected(CORRUPT_TARGETS)})")
    if args[0] != "segment":
        if len(args) != 1:
            raise FaultError(f"corrupt {args[0]} takes no more words")
        return args[0], 0
    names = ["0", "1", "2", *SEGMENT_NAMES]
    if len(args) != 2:
        raise FaultError(f"missing segment (expected {_expected(names)})")
    index = SEGMENT_NAMES.get(args[1], int(args[1]) if args[1].isdigit() else -1)
    if index not in SEGMENT_NAMES.values():
        raise FaultError(f"unknown segment '{args[1]}' (expected {_expected(names)})")
    return "segment", index


def inject(lpar: Lpar, words: list[str]) -> str:
    """Inject the fault named by words (e.g. ['hang', 'spin']); returns the acknowledgement."""
    check_words(words)
    kind, args = words[0], words[1:]
    if kind == "corrupt":
        return _corrupt(lpar, *_corrupt_target(args))
    if kind == "kdump-save-fails":
        return _save_fails(lpar)
    if kind == "hang":
        command, detail = f"hang {args[0]}", args[0]
    elif kind == "panic":
        text = " ".join(args) or "panic injected by the instructor"
        command, detail = f"panic {text}", text
    else:
        command, detail = "kdump unload", "kdump unloaded behind the operator's back"
    _require_production_system(lpar)
    lpar.os_command(command, echo=False)
    lpar.publish(FaultEvent(t=lpar.clock.now, cpu=None, fault=kind, detail=detail))
    return f"Fault injected: {kind} {detail}"


def _corrupt(lpar: Lpar, target: str, index: int) -> str:
    """Flip one byte: of a kexec segment, of the purgatory (in data its checksum covers but
    nothing reads), or of os_info (in its reserved tail)."""
    from machine.lpar import HmcError

    if not lpar.activated:
        raise HmcError("cannot inject a fault: the LPAR is not activated")
    if target == "os_info":
        address = lpar.storage.u64(OS_INFO_POINTER)
        if not address or address % 4096 or address + 4096 > lpar.storage.size:
            raise HmcError("cannot corrupt os_info: there is none (absolute 0xE18 points nowhere)")
        return _flip(lpar, address + OS_INFO_RESERVED_BYTE, "os_info")
    image = lpar.kdump.image
    if image is None:
        raise HmcError(f"cannot corrupt the {target}: no kdump kernel is loaded (kdump load first)")
    if target == "purgatory":
        return _flip(lpar, image.unused_purgatory_byte(), "purgatory")
    segment = image.hashed[index]
    return _flip(lpar, segment.mem + segment.memsz // 2, f"segment {index} ({segment.name})")


def _save_fails(lpar: Lpar) -> str:
    """Arm the host's save step: the next VMCORE_SAVE finds the dump target full. Nothing
    in storage changes, so every check before it passes and kdump fails only after the swap."""
    from machine.lpar import HmcError

    if not lpar.activated:
        raise HmcError("cannot inject a fault: the LPAR is not activated")
    if lpar.kdump.image is None:
        raise HmcError("cannot make the vmcore save fail: no kdump kernel is loaded "
                       "(kdump load first)")
    lpar.kdump.fail_next_save = True
    detail = "the next vmcore save will fail: No space left on device"
    lpar.publish(FaultEvent(t=lpar.clock.now, cpu=None, fault="kdump-save-fails", detail=detail))
    return f"Fault injected: kdump-save-fails: {detail}"


def _flip(lpar: Lpar, address: int, what: str) -> str:
    old = lpar.storage.read(address, 1)[0]
    lpar.storage.write(address, bytes([old ^ 0xFF]))
    detail = f"{what}: byte at {address:#x} {old:02x} -> {old ^ 0xFF:02x}"
    lpar.publish(FaultEvent(t=lpar.clock.now, cpu=None, fault="corrupt", detail=detail))
    return f"Fault injected: corrupt {detail}"


def _require_production_system(lpar: Lpar) -> None:
    from machine.lpar import HmcError

    if not lpar.activated:
        raise HmcError("cannot inject a fault: the LPAR is not activated")
    if lpar.program is None or lpar.program.name != PRODUCTION_PROGRAM:
        raise HmcError("cannot inject a fault: the production kernel is not loaded (load 0100 first)")
    if lpar.status != "operating":
        raise HmcError(f"cannot inject a fault: the production system is not running (LPAR status: {lpar.status})")
