"""Instruction-address breakpoints (the HMC's address compare), at no cost to other code.

A breakpoint is one more unicorn exit: the engine stops in front of the instruction, the LPAR
stops that CPU and publishes a `breakpoint` event. Starting or stepping the CPU again executes
the instruction at the breakpoint once, natively, with the exit lifted for that one
instruction, so that a CPU never stops twice at the same place without moving.

Symbols name addresses in the loaded program (`workload_lock_spin`), in any built program
(`dumper:check_os_info`), or in the purgatory of the loaded crash image (`purgatory:NAME`),
which is position independent and runs where kexec put it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from machine.images import Image

MAX_BREAKPOINTS = 32


class BreakpointError(ValueError):
    """A breakpoint that cannot be set or removed; the message says why."""


@dataclass(frozen=True)
class Breakpoint:
    address: int
    label: str  # what the operator named: a symbol, or the address in hex


class Breakpoints:
    """The LPAR's breakpoints; `on_change` is told when the set of addresses changes (the
    exits must be reprogrammed)."""

    def __init__(self, on_change: Callable[[], None]) -> None:
        self._by_address: dict[int, Breakpoint] = {}
        self._on_change = on_change

    def __contains__(self, address: int) -> bool:
        return address in self._by_address

    def __len__(self) -> int:
        return len(self._by_address)

    @property
    def addresses(self) -> frozenset[int]:
        return frozenset(self._by_address)

    def listed(self) -> list[Breakpoint]:
        return sorted(self._by_address.values(), key=lambda b: b.address)

    def get(self, address: int) -> Breakpoint | None:
        return self._by_address.get(address)

    def add(self, address: int, label: str) -> Breakpoint:
        if address % 2:
            named = "" if label == f"{address:#x}" else f"{label} is at "
            raise BreakpointError(f"{named}{address:#x}, an odd address: s390 instructions "
                                  "start on even addresses")
        if address in self._by_address:
            raise BreakpointError(f"a breakpoint is already set at {address:#x} "
                                  f"({self._by_address[address].label})")
        if len(self._by_address) >= MAX_BREAKPOINTS:
            raise BreakpointError(f"at most {MAX_BREAKPOINTS} breakpoints; clear one first")
        breakpoint_ = Breakpoint(address, label)
        self._by_address[address] = breakpoint_
        self._on_change()
        return breakpoint_

    def remove(self, address: int) -> Breakpoint:
        if address not in self._by_address:
            raise BreakpointError(f"no breakpoint at {address:#x}")
        removed = self._by_address.pop(address)
        self._on_change()
        return removed

    def clear(self) -> int:
        count = len(self._by_address)
        self._by_address.clear()
        if count:
            self._on_change()
        return count


def resolve_symbol(name: str, loaded: Image | None, programs: dict[str, Image],
                   purgatory: tuple[Image, int] | None) -> int | None:
    """The address a symbol names: `NAME` in the loaded program; `PROGRAM:NAME` in a built
    program (kernel, dumper, kdump) at its link address; `purgatory:NAME` where the loaded
    crash image's purgatory runs. None if there is no such symbol."""
    if ":" not in name:
        return loaded.symbols.get(name) if loaded is not None else None
    program, _, bare = name.partition(":")
    if program == "purgatory":
        if purgatory is None:
            return None
        image, base = purgatory
        offset = image.symbols.get(bare)
        return None if offset is None else base + offset
    image = programs.get(program)
    return image.symbols.get(bare) if image is not None else None
