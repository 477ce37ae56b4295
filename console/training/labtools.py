"""Lab commands that read the dumps a session wrote, as a trainee would with crash or zgetdump.

They are not operator commands (an HMC cannot read a dump file): labs and demos offer them
beside the command language.

    dumps                   the dumps this session wrote: format, size, time taken
    vmcore [FILE]           the newest vmcore: each CPU's PSW from the notes, VMCOREINFO
    rd SYMBOL|ADDR[.LEN]    old memory from the newest vmcore (SYMBOL from VMCOREINFO or the
                            kernel's symbol table)

`derive` computes the answers that lab solve scripts give from a vmcore (`lock-owner SYMBOL`,
`psw-in FUNCTION`): the same reading a trainee does, so a passing solve script proves the
answer can be found in the dump.
"""

from __future__ import annotations

import functools
import re
import shlex
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from console.control.commands import CommandResult, hex_dump
from machine.events import Event
from machine.formats.common import AddressNotDumped, DumpFormatError
from machine.formats.elfcore import Vmcore, read_vmcore
from machine.images import Image, ImageError, load_image
from machine.paths import program_path

DEFAULT_READ_LENGTH = 0x10
MAX_READ_LENGTH = 0x1000
# The kernel's per-CPU lowcore pointers (VMCOREINFO SYMBOL(lowcore_ptr)): 8 bytes each.
LOWCORE_PTR = "lowcore_ptr"


class ToolError(ValueError):
    """A lab command that cannot run; the message is one line."""


@dataclass(frozen=True)
class ToolContext:
    """What the dump commands read: the session's work directory and its events (the
    dump_written events say which files this session wrote)."""

    workdir: Path
    events: Sequence[Event]
    # Show how long each dump took on this host. Demos leave it out: their recordings must
    # not depend on the host's speed.
    host_times: bool = True


# --------------------------------------------------------------------------------------------
# Finding and reading the dumps


def written_dumps(events: Sequence[Event]) -> list[Event]:
    """The dump_written events, oldest first."""
    return [event for event in events if event.kind == "dump_written"]


def _display(path: Path, workdir: Path) -> str:
    try:
        return str(path.relative_to(workdir))
    except ValueError:
        return str(path)


def newest_vmcore(context: ToolContext, name: str | None = None) -> Path:
    """The vmcore named (relative to the work directory), or the newest one the session
    wrote."""
    if name is not None:
        path = Path(name) if Path(name).is_absolute() else context.workdir / name
        if not path.is_file():
            raise ToolError(f"no file {name} in {context.workdir}")
        return path
    for event in reversed(written_dumps(context.events)):
        if getattr(event, "format", "") == "elf":
            return Path(event.path)
    raise ToolError("no vmcore written in this session yet (kdump writes one to dumps/)")


def _read(path: Path) -> Vmcore:
    try:
        return read_vmcore(path)
    except (OSError, DumpFormatError) as error:
        raise ToolError(f"cannot read {path.name}: {error}") from None


def vmcoreinfo_values(vmcore: Vmcore) -> dict[str, str]:
    """VMCOREINFO as KEY=VALUE pairs (`SYMBOL(workload_lock)` -> `203c8`)."""
    pairs = {}
    for line in (vmcore.vmcoreinfo or "").splitlines():
        key, equals, value = line.partition("=")
        if equals:
            pairs[key.strip()] = value.strip()
    return pairs


@functools.cache
def kernel_image() -> Image | None:
    """The production kernel's symbols (the trainee's vmlinux); None if it cannot be read."""
    try:
        return load_image(program_path("kernel"))
    except (OSError, ImageError):
        return None


def where(address: int) -> str:
    """`function+0xoffset` for a kernel address, or `?`."""
    image = kernel_image()
    found = image.symbol_at(address) if image is not None else None
    return f"{found[0]}+{found[1]:#x}" if found else "?"


def symbol_address(vmcore: Vmcore, name: str) -> int | None:
    """A symbol's address from VMCOREINFO, else from the kernel's symbol table."""
    value = vmcoreinfo_values(vmcore).get(f"SYMBOL({name})")
    if value is not None:
        return int(value, 16)
    image = kernel_image()
    return image.symbols.get(name) if image is not None else None


def cpu_numbers(vmcore: Vmcore) -> dict[int, int]:
    """Prefix -> CPU number, from the kernel's lowcore_ptr array (the notes only say pid)."""
    info = vmcoreinfo_values(vmcore)
    start = info.get(f"SYMBOL({LOWCORE_PTR})")
    if start is None:
        return {}
    count = int(info.get(f"LENGTH({LOWCORE_PTR})", "64"))
    try:
        data = vmcore.read(int(start, 16), 8 * count, holes_as_zero=True)
    except DumpFormatError:
        return {}
    pointers = struct.unpack(f">{count}Q", data)
    return {pointer: cpu for cpu, pointer in enumerate(pointers) if pointer}


# --------------------------------------------------------------------------------------------
# The commands


def _dumps(words: list[str], context: ToolContext) -> str:
    if words:
        raise ToolError("dumps takes no arguments")
    rows = []
    for event in written_dumps(context.events):
        path = Path(event.path)
        kind = "vmcore (kdump)" if event.format == "elf" else "full dump (s390)"
        took = f"  written in {event.seconds:.3f} s" if context.host_times else ""
        rows.append(f"{_display(path, context.workdir):<40} {kind:<17} "
                    f"{event.bytes:>12,} bytes{took}")
    return "\n".join(rows) if rows else "No dump written in this session yet."


def _vmcore(words: list[str], context: ToolContext) -> str:
    if len(words) > 1:
        raise ToolError("usage: vmcore [FILE]")
    path = newest_vmcore(context, words[0] if words else None)
    vmcore = _read(path)
    numbers = cpu_numbers(vmcore)
    heading = (f"{_display(path, context.workdir)}: {len(vmcore.cpus)} CPUs in the notes, "
               f"{vmcore.memory_size >> 20} MB of memory ({vmcore.pages_filtered} zero pages "
               "left out)")
    lines = [heading, "CPU  pid  prefix    PSW                                where"]
    for cpu in vmcore.cpus:
        number = numbers.get(cpu.prefix)
        lines.append(f"{'?' if number is None else number:>3}  {cpu.pid:>3}  {cpu.prefix:08x}  "
                     f"{cpu.psw[0]:016x} {cpu.psw[1]:016x}  {where(cpu.psw[1])}")
    lines.append("VMCOREINFO:")
    lines += [f"  {line}" for line in (vmcore.vmcoreinfo or "(none)").splitlines() if line]
    return "\n".join(lines)


def _address(vmcore: Vmcore, word: str) -> tuple[int, str]:
    """An address from a symbol name or hex, and how to show it."""
    address = symbol_address(vmcore, word)
    if address is not None:
        return address, f"{word} = {address:#x}"
    if re.fullmatch(r"(0x)?[0-9a-fA-F]+", word):
        return int(word, 16), f"{int(word, 16):#x}"
    raise ToolError(f"rd: '{word}' is neither a symbol (VMCOREINFO or kernel) nor a hex "
                    "address")


def _rd(words: list[str], context: ToolContext) -> str:
    if len(words) != 1:
        raise ToolError("usage: rd SYMBOL|ADDR[.LEN]")
    target, dot, length_word = words[0].partition(".")
    length = DEFAULT_READ_LENGTH
    if dot:
        if not re.fullmatch(r"(0x)?[0-9a-fA-F]+", length_word) or not 0 < int(length_word, 16) \
                <= MAX_READ_LENGTH:
            raise ToolError(f"rd: bad length '{length_word}' (hex, at most {MAX_READ_LENGTH:#x})")
        length = int(length_word, 16)
    vmcore = _read(newest_vmcore(context))
    address, shown = _address(vmcore, target)
    try:
        data = vmcore.read(address, length)
    except (AddressNotDumped, DumpFormatError) as error:
        raise ToolError(f"rd: {error}") from None
    return "\n".join([shown, *hex_dump(address, data)])


TOOLS: dict[str, tuple[str, str, Callable[[list[str], ToolContext], str]]] = {
    "dumps": ("dumps", "the dumps this session wrote: format, size, time taken", _dumps),
    "vmcore": ("vmcore [FILE]", "the newest vmcore: CPUs and PSWs from the notes, VMCOREINFO",
               _vmcore),
    "rd": ("rd SYMBOL|ADDR[.LEN]", "read old memory from the newest vmcore", _rd),
}


def _split(line: str) -> list[str]:
    try:
        return shlex.split(line)
    except ValueError:
        raise ToolError("unbalanced quotes") from None


def tool_word(line: str) -> str | None:
    """The lab command a line starts with, or None if it is not one."""
    words = line.split()
    return words[0].lower() if words and words[0].lower() in TOOLS else None


def run_tool(line: str, context: ToolContext) -> CommandResult:
    """Run a lab command line; failures come back as ok=False with one line."""
    words = _split(line)
    _usage, _summary, run = TOOLS[words[0].lower()]
    try:
        return CommandResult(True, run(words[1:], context))
    except ToolError as error:
        return CommandResult(False, str(error))


def check_tool_line(line: str) -> None:
    """Refuse a lab command line whose shape is wrong (for loading scripts)."""
    words = _split(line)
    usage = TOOLS[words[0].lower()][0]
    most = len(usage.split()) - 1
    if len(words) - 1 > most or (words[0].lower() == "rd" and len(words) != 2):
        raise ToolError(f"usage: {usage}")


# --------------------------------------------------------------------------------------------
# Derived answers for solve scripts


def _lock_owner(words: list[str], context: ToolContext) -> str:
    """The CPU a lock word names: the kernel stores the owner's CPU number + 1 (0 = free)."""
    if len(words) != 1:
        raise ToolError("usage: lock-owner SYMBOL")
    vmcore = _read(newest_vmcore(context))
    address = symbol_address(vmcore, words[0])
    if address is None:
        raise ToolError(f"no symbol {words[0]} in VMCOREINFO or the kernel")
    word = struct.unpack(">I", vmcore.read(address, 4))[0]
    if word == 0:
        raise ToolError(f"{words[0]} is free (lock word 0)")
    return str(word - 1)


def _psw_in(words: list[str], context: ToolContext) -> str:
    """The CPU whose PSW (in the notes) is inside a kernel function."""
    if len(words) != 1:
        raise ToolError("usage: psw-in FUNCTION")
    vmcore = _read(newest_vmcore(context))
    numbers = cpu_numbers(vmcore)
    found = [numbers.get(cpu.prefix) for cpu in vmcore.cpus
             if where(cpu.psw[1]).split("+")[0] == words[0]]
    if len(found) != 1 or found[0] is None:
        raise ToolError(f"{len(found)} CPUs have their PSW in {words[0]} (expected one)")
    return str(found[0])


DERIVATIONS: dict[str, Callable[[list[str], ToolContext], str]] = {
    "lock-owner": _lock_owner,
    "psw-in": _psw_in,
}


def derive(words: list[str], context: ToolContext) -> str:
    """The value a derivation (`lock-owner SYMBOL`, `psw-in FUNCTION`) reads from the newest
    vmcore; ToolError if it cannot."""
    return DERIVATIONS[words[0]](words[1:], context)
