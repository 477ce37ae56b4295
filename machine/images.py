"""Guest programs: ELF loading (pyelftools), symbols, and the scan for instructions the host
must emulate because unicorn leaves them out."""

from __future__ import annotations

import bisect
import functools
import io
from dataclasses import dataclass
from pathlib import Path

import capstone
from elftools.common.exceptions import ELFError
from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile

from machine.paths import assets_dir

EM_S390 = 22


class ImageError(ValueError):
    """A guest program that cannot be loaded; the message says why."""


@dataclass(frozen=True)
class Segment:
    address: int
    data: bytes
    memsize: int


@dataclass(frozen=True)
class Image:
    """A loadable guest program."""

    name: str
    entry: int
    segments: tuple[Segment, ...]
    symbols: dict[str, int]
    code_ranges: tuple[tuple[int, bytes], ...]  # (address, bytes) of each executable section

    @property
    def start(self) -> int:
        return min(s.address for s in self.segments)

    @property
    def end(self) -> int:
        return max(s.address + s.memsize for s in self.segments)

    def symbol_at(self, address: int) -> tuple[str, int] | None:
        """(name, offset) of the function symbol containing address, for messages and UIs."""
        names, addresses = _sorted_symbols(self)
        index = bisect.bisect_right(addresses, address) - 1
        if index < 0 or address >= self.end:
            return None
        return names[index], address - addresses[index]

    def symbolize(self, address: int) -> str | None:
        """`name` or `name+0x12` for an address inside this program, else None."""
        found = self.symbol_at(address)
        if found is None:
            return None
        name, offset = found
        return f"{name}+{offset:#x}" if offset else name


@functools.lru_cache(maxsize=32)
def _sorted_symbols(image: Image) -> tuple[list[str], list[int]]:
    pairs = sorted((a, n) for n, a in image.symbols.items())
    return [n for _, n in pairs], [a for a, _ in pairs]


# Image is frozen but holds a dict; hash by identity so lru_cache can key on it.
Image.__hash__ = object.__hash__  # type: ignore[method-assign]


def parse_image(data: bytes, name: str) -> Image:
    """Parse an s390x ELF executable."""
    try:
        elf = ELFFile(io.BytesIO(data))
        if elf["e_machine"] != "EM_S390" or elf.elfclass != 64 or elf.little_endian:
            raise ImageError(f"{name}: not a 64-bit big-endian s390x ELF program")
        segments = tuple(
            Segment(seg["p_paddr"], seg.data(), seg["p_memsz"])
            for seg in elf.iter_segments()
            if seg["p_type"] == "PT_LOAD" and seg["p_memsz"]
        )
        code = tuple(
            (sec["sh_addr"], sec.data())
            for sec in elf.iter_sections()
            if sec["sh_flags"] & SH_FLAGS.SHF_EXECINSTR and sec["sh_type"] == "SHT_PROGBITS"
        )
        symtab = elf.get_section_by_name(".symtab")
        symbols = {
            sym.name: sym["st_value"]
            for sym in (symtab.iter_symbols() if symtab else ())
            if sym.name and sym["st_info"]["type"] in ("STT_FUNC", "STT_OBJECT", "STT_NOTYPE")
            and sym["st_shndx"] != "SHN_UNDEF"
        }
        entry = elf["e_entry"]
    except (ELFError, KeyError, ValueError, OSError) as exc:
        if isinstance(exc, ImageError):
            raise
        raise ImageError(f"{name}: not a valid ELF program ({exc})") from None
    if not segments:
        raise ImageError(f"{name}: ELF program has nothing to load")
    return Image(name, entry, segments, symbols, code)


@functools.lru_cache(maxsize=16)
def _load_cached(path: str, mtime_ns: int) -> Image:
    return parse_image(Path(path).read_bytes(), Path(path).stem)


def load_image(path: Path) -> Image:
    """Parse the ELF file at path (cached while the file is unchanged)."""
    try:
        mtime = path.stat().st_mtime_ns
    except OSError as exc:
        raise ImageError(f"{path}: {exc.strerror}") from None
    return _load_cached(str(path), mtime)


def built_programs() -> dict[str, Image]:
    """Every built guest program under assets/bin, by name (kernel, dumper, purgatory, ...);
    a file that cannot be read is left out."""
    images: dict[str, Image] = {}
    try:
        paths = sorted((assets_dir() / "bin").glob("*.elf"))
    except FileNotFoundError:
        return images
    for path in paths:
        try:
            images[path.stem] = load_image(path)
        except ImageError:
            continue
    return images


# First bytes of every instruction the host emulates (see machine/system.py).
_HOOKED_OPCODES = {
    (0xAE,),          # SIGP
    (0x83,),          # DIAG
    (0x82,),          # LPSW
    (0xB2, 0x02),     # STIDP
    (0xB2, 0x05),     # STCK
    (0xB2, 0x06),     # SCKC
    (0xB2, 0x07),     # STCKC
    (0xB2, 0x08),     # SPT
    (0xB2, 0x09),     # STPT
    (0xB2, 0x10),     # SPX
    (0xB2, 0x12),     # STAP
    (0xB2, 0x78),     # STCKE
    (0xB2, 0x7C),     # STCKF
    (0xB2, 0xB0),     # STFLE
    (0xB2, 0xB1),     # STFL
    (0xB2, 0xB2),     # LPSWE
    (0x01, 0x07),     # SCKPF
}


def is_hooked_opcode(code: bytes) -> bool:
    return (code[0],) in _HOOKED_OPCODES or tuple(code[:2]) in _HOOKED_OPCODES


@functools.cache
def _disassembler() -> capstone.Cs:
    arch = getattr(capstone, "CS_ARCH_SYSTEMZ", None) or capstone.CS_ARCH_SYSZ
    md = capstone.Cs(arch, capstone.CS_MODE_BIG_ENDIAN)
    md.skipdata = True  # padding halfwords of zero would otherwise end the sweep
    return md


def scan_hooked_instructions(address: int, code: bytes) -> list[int]:
    """Addresses of the instructions in code (loaded at address) that the host emulates."""
    found = []
    for insn_address, size, _mnemonic, _ops in _disassembler().disasm_lite(code, address):
        offset = insn_address - address
        if size >= 2 and is_hooked_opcode(code[offset:offset + 2]):
            found.append(insn_address)
    return found


def image_hook_addresses(image: Image) -> list[int]:
    """Every emulated instruction in the program's executable sections."""
    addresses: list[int] = []
    for address, code in image.code_ranges:
        addresses.extend(scan_hooked_instructions(address, code))
    return addresses
