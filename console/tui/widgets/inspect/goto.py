"""Go-to targets for the storage view: an address, a register, a lowcore field, a region of
the storage map or a symbol, optionally plus or minus a hex offset (`r15+a0`, `os_info+20`).
Pure: it reads only the snapshot, the map and the asset symbols."""

from __future__ import annotations

import re

from console.tui.widgets.inspect import symbols
from console.tui.widgets.inspect.regions import Region
from machine.lpar import CpuSnapshot

# Lowcore fields by name (assets/src/common/lowcore.h; S390_FACTS §1). Absolute addresses in
# the absolute lowcore; the same offsets in each CPU's prefix area.
LOWCORE_FIELDS = {
    "ipl_psw": 0x000, "ipl_parmblock_ptr": 0x014, "ext_cpu_addr": 0x084, "ext_int_code": 0x086,
    "svc_code": 0x08A, "pgm_code": 0x08E, "ar_mode_id": 0x0A3,
    "restart_old_psw": 0x120, "ext_old_psw": 0x130, "svc_old_psw": 0x140, "pgm_old_psw": 0x150,
    "mcck_old_psw": 0x160, "io_old_psw": 0x170, "restart_psw": 0x1A0, "ext_new_psw": 0x1B0,
    "svc_new_psw": 0x1C0, "pgm_new_psw": 0x1D0, "mcck_new_psw": 0x1E0, "io_new_psw": 0x1F0,
    "ipib": 0xE00, "ipib_checksum": 0xE08, "vmcore_info": 0xE0C, "os_info_ptr": 0xE18,
    "fpregs_save_area": 0x1200, "gpregs_save_area": 0x1280, "psw_save_area": 0x1300,
    "prefix_save_area": 0x1318, "cpu_timer_save_area": 0x1328, "clock_comp_save_area": 0x1330,
    "aregs_save_area": 0x1340, "cregs_save_area": 0x1380,
}
_EXPRESSION = re.compile(r"^\s*([^+\-\s]+)\s*(?:([+-])\s*(?:0x)?([0-9a-f]+))?\s*$", re.IGNORECASE)
_HEX = re.compile(r"(?:0x)?([0-9a-f]+)", re.IGNORECASE)
_REGISTER = re.compile(r"(g?r|cr|ar)(\d{1,2})", re.IGNORECASE)


class GoToError(ValueError):
    """A go-to target that names nothing known; the message says what is accepted."""


def resolve(text: str, cpu: CpuSnapshot | None, regions: list[Region],
            program: str | None) -> int:
    """The absolute address text names (GoToError if none)."""
    match = _EXPRESSION.match(text)
    if match is None:
        raise GoToError(f"go to: '{text.strip()}' is not an address, register, lowcore field, "
                        "region or symbol")
    base_word, sign, offset_word = match.groups()
    base = _base(base_word, cpu, regions, program)
    offset = int(offset_word, 16) if offset_word else 0
    address = base - offset if sign == "-" else base + offset
    if address < 0:
        raise GoToError(f"go to: {text.strip()} is below address 0")
    return address


def _base(word: str, cpu: CpuSnapshot | None, regions: list[Region], program: str | None) -> int:
    lower = word.lower()
    register = _register(lower, cpu)
    if register is not None:
        return register
    if lower in LOWCORE_FIELDS:
        return LOWCORE_FIELDS[lower]
    for region in regions:
        if region.name.lower() == lower.replace("_", " "):
            return region.start
    address = symbols.lookup(word, program)
    if address is not None:
        return address
    hex_match = _HEX.fullmatch(lower)
    if hex_match:
        return int(hex_match.group(1), 16)
    raise GoToError(f"go to: '{word}' is not an address, register (r0-r15, cr0-cr15, psw, "
                    "prefix), lowcore field, region or symbol")


def _register(word: str, cpu: CpuSnapshot | None) -> int | None:
    if word in ("psw", "pc"):
        return _need(cpu, word).psw_addr
    if word == "prefix":
        return _need(cpu, word).prefix
    match = _REGISTER.fullmatch(word)
    if match is None or int(match.group(2)) > 15:
        return None
    kind, number = match.group(1).lower(), int(match.group(2))
    values = {"r": "gprs", "gr": "gprs", "cr": "crs", "ar": "ars"}[kind]
    return getattr(_need(cpu, word), values)[number]


def _need(cpu: CpuSnapshot | None, word: str) -> CpuSnapshot:
    if cpu is None:
        raise GoToError(f"go to: no CPU to take {word} from (the LPAR is not activated)")
    return cpu
