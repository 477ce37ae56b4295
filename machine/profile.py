"""LPAR activation profiles: memory, CPUs, crashkernel, devices, kernel options."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from machine.paths import assets_dir
from machine.userfiles import read_user_text, shown_path

# The shutdown actions the mini-kernel knows, in the order it numbers them (Linux also has
# vmcmd, a z/VM command).
SHUTDOWN_ACTIONS = ("stop", "dump", "dump_reipl", "reipl")
# What the kdump kernel does when it cannot save the vmcore, in the order of its numbering.
KDUMP_FAILURE_ACTIONS = ("reboot", "halt", "dump")
# How the dump device is prepared at activation: the 2011 design's stand-alone dumper
# (`zipl -d`), or the shipped stand-alone kdump (`zipl -d -k auto`, path D).
DUMP_TOOLS = ("dumper", "kdump")

MiB = 1 << 20
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
MAX_CPUS = 64
MIN_MEMORY = 64 * MiB
MAX_MEMORY = 1 << 40


class ProfileError(ValueError):
    """A profile that cannot be used; the message names the field and the problem."""


def parse_size(text: str | int) -> int:
    """'256M' -> 268435456; K/M/G/T suffixes (optionally followed by B or iB); bare ints are bytes."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    # ASCII digits only: \d would also take '١' (Arabic-Indic one), which int() reads as 1.
    match = re.fullmatch(r"\s*([0-9]+)\s*([KMGT]?)(?:i?B)?\s*", str(text), re.IGNORECASE)
    if not match:
        raise ValueError(f"bad size '{text}': expected a number with K, M, G or T, like 256M")
    return int(match.group(1)) * _UNITS[match.group(2).upper()]


def format_size(size: int) -> str:
    """268435456 -> '256M' (the largest unit that divides evenly)."""
    for unit in ("T", "G", "M", "K"):
        if size and size % _UNITS[unit] == 0:
            return f"{size // _UNITS[unit]}{unit}"
    return str(size)


def parse_devno(value: str | int) -> int:
    """'0100', '0x100', '0.0.0100' or 256 -> 0x0100."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        text = str(value).strip().lower()
        text = text.removeprefix("0.0.").removeprefix("0x")
        if not re.fullmatch(r"[0-9a-f]{1,4}", text):
            raise ValueError(f"bad device number '{value}': expected hex like 0100")
        number = int(text, 16)
    if not 0 <= number <= 0xFFFF:
        raise ValueError(f"bad device number '{value}': must be 0000-ffff")
    return number


@dataclass(frozen=True)
class Profile:
    """What the HMC's activation profile holds for one LPAR."""

    name: str = "default"
    memory: int = 256 * MiB
    cpus: int = 4
    # CPU addresses, IPL CPU first, ascending; empty: 0 .. cpus-1. Real LPARs can have gaps
    # (CPUs deconfigured or reserved), which dumpers must step over.
    cpu_addresses: tuple[int, ...] = ()
    crashkernel: int = 64 * MiB
    workload: int = 20
    kernel_parms: str = ""
    kdump: bool = False
    on_panic: str = "stop"
    on_restart: str = "stop"
    boot_devno: int = 0x0100
    dump_devno: int = 0x0200
    dump_size: int = 0
    dump_level: int = 1  # 1: leave zero pages out of the vmcore (makedumpfile -d 1); 0: all
    kdump_reipl: bool = True  # the kdump kernel re-IPLs the production system when done
    kdump_failure: str = "reboot"  # when the vmcore cannot be saved: reboot | halt | dump
    dump_tool: str = "dumper"  # what the dump device carries: dumper | kdump (zipl -k auto)
    # The dump device carries the stand-alone dumper from activation (as if `zipl -d` had been
    # run before); false leaves it empty, for the operator's own `zipl -d` (the labs).
    dump_device_prepared: bool = True

    def __post_init__(self) -> None:
        self._validate()

    @property
    def dump_device_size(self) -> int:
        """Bytes on the dump device: the profile's value, or room for the dumper and a full
        dump of all memory (4 MiB more than memory)."""
        return self.dump_size or self.memory + 4 * MiB

    def kernel_parms_for_boot(self) -> str:
        """The kernel command line the boot loader passes: the profile's settings first, so
        that the operator's own kernel_parms can override them."""
        words = [
            f"crashkernel={format_size(self.crashkernel)}" if self.crashkernel else "",
            f"workload={self.workload}",
            f"on_panic={self.on_panic}",
            f"on_restart={self.on_restart}",
            f"dumpdev=0x{self.dump_devno:04x}",
            "kdump=1" if self.kdump else "",
            self.kernel_parms,
        ]
        return " ".join(w for w in words if w)

    def _validate(self) -> None:
        if not 1 <= self.cpus <= MAX_CPUS:
            raise ProfileError(f"cpus = {self.cpus}: must be 1 to {MAX_CPUS}")
        self._validate_cpu_addresses()
        if not MIN_MEMORY <= self.memory <= MAX_MEMORY or self.memory % MiB:
            raise ProfileError(
                f"memory = {format_size(self.memory)}: must be a whole number of MiB from 64M to 1T"
            )
        if self.crashkernel % MiB or self.crashkernel < 0:
            raise ProfileError(f"crashkernel = {format_size(self.crashkernel)}: must be whole MiB")
        if self.crashkernel and self.crashkernel > self.memory // 2:
            raise ProfileError(
                f"crashkernel = {format_size(self.crashkernel)}: must be at most half of memory "
                f"({format_size(self.memory // 2)})"
            )
        if self.crashkernel and self.crashkernel < 16 * MiB:
            raise ProfileError(f"crashkernel = {format_size(self.crashkernel)}: must be at least 16M")
        if not 0 <= self.workload <= 90:
            raise ProfileError(f"workload = {self.workload}: must be 0 to 90 (percent of memory)")
        for field in ("on_panic", "on_restart"):
            if getattr(self, field) not in SHUTDOWN_ACTIONS:
                raise ProfileError(f"{field} = {getattr(self, field)!r}: must be 'stop', 'dump', "
                                   "'dump_reipl' or 'reipl'")
        if self.kdump_failure not in KDUMP_FAILURE_ACTIONS:
            raise ProfileError(f"kdump_failure = {self.kdump_failure!r}: must be 'reboot', "
                               "'halt' or 'dump'")
        if self.dump_tool not in DUMP_TOOLS:
            raise ProfileError(f"dump_tool = {self.dump_tool!r}: must be 'dumper' or 'kdump'")
        if self.boot_devno == self.dump_devno:
            raise ProfileError(f"boot_devno and dump_devno are both {self.boot_devno:04x}")
        if self.dump_level not in (0, 1):
            raise ProfileError(f"dump_level = {self.dump_level}: must be 0 (everything) or 1 (no zero pages)")
        if self.dump_size and self.dump_size % MiB:
            raise ProfileError(f"dump_size = {self.dump_size}: must be whole MiB")
        if len(self.kernel_parms) > 700 or "\0" in self.kernel_parms:
            raise ProfileError("kernel_parms: at most 700 characters, no NUL")

    def _validate_cpu_addresses(self) -> None:
        addresses = self.cpu_addresses
        if not addresses:
            return
        if (len(addresses) != self.cpus or list(addresses) != sorted(set(addresses))
                or not all(isinstance(a, int) and 0 <= a < MAX_CPUS for a in addresses)):
            raise ProfileError(f"cpu_addresses = {list(addresses)}: must be {self.cpus} different "
                               f"addresses 0 to {MAX_CPUS - 1} in ascending order, one per CPU")

    @property
    def addresses(self) -> tuple[int, ...]:
        """The CPU addresses, IPL CPU first."""
        return tuple(self.cpu_addresses) or tuple(range(self.cpus))

    def replace(self, **overrides: Any) -> Profile:
        """A copy with some fields changed (validated; sizes and devnos may be strings)."""
        return _from_mapping({**dataclasses.asdict(self), **overrides}, origin="override")

    @classmethod
    def load(cls, path: str | Path) -> Profile:
        """Read a TOML profile file."""
        path = Path(path)
        shown = shown_path(path)
        try:
            data = tomllib.loads(read_user_text(path, "profile"))
        except OSError as exc:
            raise ProfileError(f"{shown}: cannot read profile: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ProfileError(f"{shown}: not valid TOML: {exc}") from None
        except RecursionError:
            raise ProfileError(f"{shown}: not valid TOML: nested too deeply") from None
        data.setdefault("name", path.stem)
        return _from_mapping(data, origin=shown, echo=False)

    @classmethod
    def builtin(cls, name: str) -> Profile:
        """A profile shipped in assets/profiles/NAME.toml."""
        path = assets_dir() / "profiles" / f"{name}.toml"
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or not path.is_file():
            known = ", ".join(builtin_profile_names()) or "none"
            raise ProfileError(f"unknown profile '{name}' (known: {known})")
        return cls.load(path)


def builtin_profile_names() -> list[str]:
    return sorted(p.stem for p in (assets_dir() / "profiles").glob("*.toml"))


_SIZE_FIELDS = ("memory", "crashkernel", "dump_size")
_DEVNO_FIELDS = ("boot_devno", "dump_devno")
_TYPES = {"name": str, "cpus": int, "workload": int, "kernel_parms": str, "kdump": bool,
          "on_panic": str, "on_restart": str, "dump_level": int, "kdump_reipl": bool,
          "kdump_failure": str, "dump_tool": str, "dump_device_prepared": bool}


def _from_mapping(data: dict[str, Any], origin: str, echo: bool = True) -> Profile:
    """A validated Profile. With echo=False (a file, which may be any readable TOML file the
    operator names) a message never repeats a value from it, only the field's name."""
    try:
        return _checked_profile(data, origin)
    except ProfileError as exc:
        if echo:
            raise
        text = str(exc).removeprefix(f"{origin}: ")
        if text.startswith("unknown profile field"):
            raise
        # The field the message is about is the first one it names.
        found = [(match.start(), name) for name in _ALL_FIELDS
                 if (match := re.search(rf"\b{name}\b", text))]
        if not found:
            raise
        field = min(found)[1]
        raise ProfileError(f"{origin}: bad value for '{field}' ({_EXPECTED[field]})") from None


_ALL_FIELDS = ("memory", "crashkernel", "dump_size", "boot_devno", "dump_devno", "cpu_addresses", "cpus",
               "workload", "kernel_parms", "kdump_reipl", "kdump_failure", "dump_tool", "kdump", "on_panic",
               "on_restart", "dump_level", "dump_device_prepared", "name")
_EXPECTED = {
    "memory": "a size of whole MiB from 64M to 1T, like 256M",
    "crashkernel": "a size of whole MiB, at least 16M and at most half of memory, or 0",
    "dump_size": "a size of whole MiB, or 0",
    "boot_devno": "a device number 0000-ffff, not dump_devno",
    "dump_devno": "a device number 0000-ffff, not boot_devno",
    "cpus": f"a whole number 1 to {MAX_CPUS}",
    "cpu_addresses": f"a list of CPU addresses 0 to {MAX_CPUS - 1}, ascending, one per CPU", "workload": "a whole number 0 to 90",
    "kernel_parms": "text of at most 700 characters", "kdump": "true or false",
    "kdump_reipl": "true or false", "kdump_failure": "'reboot', 'halt' or 'dump'",
    "dump_tool": "'dumper' or 'kdump'",
    "on_panic": "'stop', 'dump', 'dump_reipl' or 'reipl'",
    "on_restart": "'stop', 'dump', 'dump_reipl' or 'reipl'", "dump_level": "0 or 1",
    "dump_device_prepared": "true or false", "name": "text",
}


def _checked_profile(data: dict[str, Any], origin: str) -> Profile:
    known = {f.name for f in dataclasses.fields(Profile)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ProfileError(f"{origin}: unknown profile field '{unknown[0]}' (fields: {', '.join(sorted(known))})")
    values = dict(data)
    for key, parse in [*((k, parse_size) for k in _SIZE_FIELDS),
                       *((k, parse_devno) for k in _DEVNO_FIELDS)]:
        if key in values:
            try:
                values[key] = parse(values[key])
            except ValueError as exc:
                raise ProfileError(f"{origin}: {key}: {exc}") from None
    for key, kind in _TYPES.items():
        if key in values and not (isinstance(values[key], kind) and not (kind is int and isinstance(values[key], bool))):
            raise ProfileError(f"{origin}: {key} = {values[key]!r}: expected {kind.__name__}")
    if "cpu_addresses" in values:
        addresses = values["cpu_addresses"]
        if not isinstance(addresses, list | tuple) or not all(
                isinstance(a, int) and not isinstance(a, bool) for a in addresses):
            raise ProfileError(f"{origin}: cpu_addresses: expected a list of whole numbers")
        values["cpu_addresses"] = tuple(addresses)
    try:
        return Profile(**values)
    except ProfileError as exc:
        raise ProfileError(f"{origin}: {exc}") from None
