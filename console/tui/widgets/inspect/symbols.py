"""Symbols of the guest programs, read from the asset ELFs on the host (never from the
machine): address -> `name+offset` for the views, and name -> address for go-to."""

from __future__ import annotations

import functools

from machine.images import Image, built_programs


@functools.lru_cache(maxsize=1)
def _programs() -> dict[str, Image]:
    """Every built guest program under assets/bin, by name (kernel, dumper, ...)."""
    return built_programs()


def program_names() -> list[str]:
    return sorted(_programs())


def program(name: str | None) -> Image | None:
    """The image of a loaded program, by the name a snapshot gives."""
    return _programs().get(name) if name else None


def symbolize(address: int, program_name: str | None) -> str | None:
    """`name+0x12` for an address inside the loaded program, else None."""
    image = program(program_name)
    return image.symbolize(address) if image is not None else None


def lookup(name: str, program_name: str | None) -> int | None:
    """The address of a symbol: in the loaded program first, then `program:symbol`, then
    any program that defines it."""
    if ":" in name:
        prefix, _, bare = name.partition(":")
        image = program(prefix)
        return image.symbols.get(bare) if image else None
    image = program(program_name)
    if image is not None and name in image.symbols:
        return image.symbols[name]
    for other in _programs().values():
        if name in other.symbols:
            return other.symbols[name]
    return None


def function_start(address: int, program_name: str | None) -> int | None:
    """Where the function around address starts, for disassembling from a known boundary."""
    image = program(program_name)
    if image is None:
        return None
    found = image.symbol_at(address)
    return address - found[1] if found else None


def symbol_names(program_name: str | None, limit: int = 2000) -> list[str]:
    """Symbol names of the loaded program (for completion and help)."""
    image = program(program_name)
    return sorted(image.symbols)[:limit] if image else []
