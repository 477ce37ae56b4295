"""Two systems in one dump, and `--select prod|kdump|all` (zgetdump's option, S390_FACTS.md
§4.5).

When kdump itself fails after its swap (the kdump kernel's head swaps) and a stand-alone dump is taken, the dump
holds two systems: the kdump kernel in [0, OLDMEM_SIZE) and the production system, whose
[0, OLDMEM_SIZE) the swap moved to [OLDMEM_BASE, OLDMEM_BASE + OLDMEM_SIZE). The kdump
kernel's parm area says so: the u64s at 0x10418 (OLDMEM_BASE) and 0x10420 (OLDMEM_SIZE).

Views (`select_system`):

* `all`: the dump as it is.
* `kdump`: only [0, OLDMEM_SIZE), as it is; the CPUs are the dump's own (lc_vec) whose
  save area lies in that memory, after the IPL CPU's status at absolute 0x1200 when its
  prefix is 0 (the kdump kernel's CPU, which the dumper leaves out of lc_vec).
* `prod`: the production system with the swap undone, the mapping the kdump kernel's
  copy_oldmem uses (§5.2): address a < size reads a + base, a in [base, base + size) reads
  a - base, anything else reads a. Its memory ranges leave out the crashkernel region (that
  is the kdump system's memory, as a kdump vmcore leaves it out). Its CPUs come from the
  production kernel's VMCOREINFO: os_info (0xE18) → entry 0 → `SYMBOL(lowcore_ptr)`,
  `LENGTH(lowcore_ptr)` → every non-zero lowcore pointer → the save area at lowcore +
  0x1200, where the kernel stored each CPU's status before the swap.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from machine.formats.common import PAGE_SIZE, AddressNotDumped, DumpFormatError
from machine.formats.elfcore import Vmcore
from machine.formats.osinfo import OsInfoLookup, find_vmcoreinfo
from machine.formats.s390dump import S390Dump
from machine.status import SAVE_AREA_ADDRESS, SAVE_AREA_SIZE, CpuStatus

SELECTIONS = ("all", "prod", "kdump")
OLDMEM_BASE = 0x10418
OLDMEM_SIZE = 0x10420
MIB = 1 << 20
# A LENGTH(lowcore_ptr) beyond this is garbage, not a CPU count (s390 has at most 4096 CPUs
# in any kernel configuration we know of; NR_CPUS defaults to 64 or 512).
MAX_LOWCORE_PTRS = 4096
ONE_SYSTEM = "this dump holds one system: no kdump kernel at 0x10418"

Dump = Vmcore | S390Dump
Ranges = list[tuple[int, int]]


# ---------------------------------------------------------------------------------------------
# The swap and its undoing


def undo_swap(address: int, base: int, size: int) -> int:
    """Where address `address` of the system the swap displaced lies now."""
    if address < size:
        return address + base
    if base <= address < base + size:
        return address - base
    return address


def swap_run_end(address: int, base: int, size: int, limit: int) -> int:
    """The end of the stretch from `address` that undo_swap maps contiguously (at most
    `limit`, beyond which everything maps 1:1)."""
    for boundary in (size, base, base + size):
        if address < boundary:
            return min(boundary, limit)
    return limit


@dataclass(frozen=True)
class KdumpKernel:
    """A kdump kernel found running in a dump: its OLDMEM_BASE and OLDMEM_SIZE."""

    base: int
    size: int


def _u64(dump: Dump, address: int) -> int | None:
    try:
        return int.from_bytes(dump.read(address, 8), "big")
    except (AddressNotDumped, DumpFormatError):  # not dumped, or a truncated vmcore
        return None


def _covered(ranges: Ranges, start: int, end: int) -> bool:
    """Whether [start, end) lies inside one of the (merged) ranges."""
    return any(low <= start and end <= high for low, high in ranges)


def find_kdump_kernel(dump: Dump) -> KdumpKernel | None:
    """zgetdump's test: OLDMEM_BASE and OLDMEM_SIZE both non-zero, both MiB aligned, and
    [base, base + size) inside the dumped memory. None when the dump holds one system."""
    base, size = _u64(dump, OLDMEM_BASE), _u64(dump, OLDMEM_SIZE)
    if not base or not size or base % MIB or size % MIB:
        return None
    if not _covered(dump.ranges, base, base + size):
        return None
    return KdumpKernel(base, size)


# ---------------------------------------------------------------------------------------------
# Ranges


def _clip(ranges: Ranges, start: int, end: int) -> Ranges:
    """The parts of `ranges` inside [start, end)."""
    return [(max(low, start), min(high, end)) for low, high in ranges
            if max(low, start) < min(high, end)]


def _without(ranges: Ranges, start: int, end: int) -> Ranges:
    """`ranges` with [start, end) cut out."""
    return _clip(ranges, 0, start) + _clip(ranges, end, 1 << 64)


def _merge(ranges: Ranges) -> Ranges:
    """`ranges` sorted, with touching and overlapping ranges joined."""
    merged: Ranges = []
    for low, high in sorted(ranges):
        if merged and low <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(high, merged[-1][1]))
        else:
            merged.append((low, high))
    return merged


def _prod_ranges(dump: Dump, kdump: KdumpKernel) -> Ranges:
    """The production system's memory: [0, size) comes from the crashkernel region (checked
    to be dumped); the crashkernel region itself is the kdump system's and is left out."""
    below = _without(dump.ranges, 0, kdump.size)
    return _merge(_without([(0, kdump.size), *below], kdump.base, kdump.base + kdump.size))


# ---------------------------------------------------------------------------------------------
# The selected view


@dataclass
class SystemView:
    """One of the two systems of a dump, read through the dump it comes from.

    It offers what summarize() and the ELF writer use of a dump: `ranges`, `read`, `cpus`,
    `os_info` and `vmcoreinfo`, and passes `path`, `file_size`, `format` and the format's
    own header through. `cpu_origins` says where each CPU's registers were found.
    """

    dump: Dump
    select: str
    kdump: KdumpKernel
    ranges: Ranges
    cpus: list[CpuStatus] = field(default_factory=list)
    cpu_origins: list[str] = field(default_factory=list)
    cpus_source: str = ""
    os_info: OsInfoLookup = field(default_factory=lambda: OsInfoLookup(None, "not looked up"))

    @property
    def path(self) -> Path:
        """The dump file."""
        return self.dump.path

    @property
    def file_size(self) -> int:
        """The dump file's size."""
        return self.dump.file_size

    @property
    def format(self) -> str:
        """The dump file's format: "s390" or "elf"."""
        return self.dump.format

    @property
    def header(self) -> Any:
        """The dump file's header (S390Header or ElfHeader)."""
        return self.dump.header

    @property
    def vmcoreinfo(self) -> str | None:
        """The VMCOREINFO text of the selected system, found through its os_info."""
        return self.os_info.text

    @property
    def memory_size(self) -> int:
        """Bytes of memory of the selected system."""
        return sum(end - start for start, end in self.ranges)

    @property
    def pages_filtered(self) -> int:
        """Pages of the selected system that the file leaves out (only a vmcore does)."""
        if not isinstance(self.dump, Vmcore):
            return 0
        filtered = [(load.paddr + load.filesz, load.end) for load in self.dump.loads]
        behind = [(source, source + high - low) for start, end in self.ranges
                  for low, high, source in self._pieces(start, end) if source is not None]
        return sum(min(high, end) - max(low, start) for start, end in behind
                   for low, high in filtered if max(low, start) < min(high, end)) // PAGE_SIZE

    def _pieces(self, start: int, end: int) -> Iterator[tuple[int, int, int | None]]:
        """[start, end) cut into (low, high, where low is in the dump, or None: not this
        system's memory) pieces that each map contiguously."""
        base, size = self.kdump.base, self.kdump.size
        if self.select == "kdump":
            if start < min(end, size):
                yield start, min(end, size), start
            if end > size:
                yield max(start, size), end, None
            return
        while start < end:
            stop = swap_run_end(start, base, size, end)
            yield start, stop, undo_swap(start, base, size)
            start = stop

    def _readable(self) -> Ranges:
        """What read() reads without holes_as_zero: the ranges, and in `prod` also the
        crashkernel region, through the swap."""
        if self.select == "kdump":
            return self.ranges
        return _merge([*self.ranges, (self.kdump.base, self.kdump.base + self.kdump.size)])

    def read(self, address: int, length: int, *, holes_as_zero: bool = False) -> bytes:
        """`length` bytes of the selected system's memory at `address`. Outside its memory
        raises AddressNotDumped (zeros with `holes_as_zero`)."""
        if not holes_as_zero and not _covered(self._readable(), address, address + length):
            raise AddressNotDumped(f"{address:#x}+{length:#x} is not in the {self.select} "
                                   f"system's memory")
        out = bytearray(length)
        for low, high, source in self._pieces(address, address + length):
            if source is not None:
                out[low - address:high - address] = self.dump.read(
                    source, high - low, holes_as_zero=holes_as_zero)
        return bytes(out)


# ---------------------------------------------------------------------------------------------
# CPUs


def _vmcoreinfo_number(text: str, key: str, base: int) -> int | None:
    match = re.search(rf"^{re.escape(key)}=([0-9a-fA-Fx]+)$", text, re.MULTILINE)
    if match is None:
        return None
    try:
        return int(match.group(1), base)
    except ValueError:
        return None


def _save_area(view: SystemView, lowcore: int) -> CpuStatus | None:
    try:
        return CpuStatus.unpack(view.read(lowcore + SAVE_AREA_ADDRESS, SAVE_AREA_SIZE))
    except AddressNotDumped:
        return None


def _prod_cpus(view: SystemView) -> None:
    """The production CPUs from VMCOREINFO's lowcore_ptr array, as zgetdump finds them."""
    text = view.vmcoreinfo
    if text is None:
        view.cpus_source = f"none: no VMCOREINFO ({view.os_info.problem})"
        return
    array = _vmcoreinfo_number(text, "SYMBOL(lowcore_ptr)", 16)
    count = _vmcoreinfo_number(text, "LENGTH(lowcore_ptr)", 10)
    if array is None or count is None or not 0 < count <= MAX_LOWCORE_PTRS:
        view.cpus_source = "none: VMCOREINFO has no usable SYMBOL(lowcore_ptr)/LENGTH(lowcore_ptr)"
        return
    try:
        pointers = view.read(array, 8 * count)
    except AddressNotDumped:
        view.cpus_source = f"none: lowcore_ptr at {array:#x} is not in the dump"
        return
    for cpu in range(count):
        lowcore = int.from_bytes(pointers[8 * cpu:8 * cpu + 8], "big")
        status = _save_area(view, lowcore) if lowcore and not lowcore % PAGE_SIZE else None
        if status is not None:
            view.cpus.append(status)
            view.cpu_origins.append(f"lowcore_ptr[{cpu}]")
    view.cpus_source = (f"VMCOREINFO lowcore_ptr at {array:#x} ({count} entries): the save "
                        "area at each lowcore + 0x1200")


def _own_cpus(dump: Dump) -> list[tuple[str, CpuStatus]]:
    """The dump's own CPUs with where each comes from."""
    if isinstance(dump, Vmcore):
        return [(f"pr_pid {notes.pid}", notes.status()) for notes in dump.cpus]
    return [(f"lc_vec[{index}]", status) for index, status in enumerate(dump.cpus)]


def _kdump_kernel_cpu(view: SystemView) -> CpuStatus | None:
    """The status at absolute 0x1200 when it is a CPU's with prefix 0 that lc_vec leaves out.

    DumpLab's kdump kernel runs with prefix 0, and the dumper lists only prefixes from
    0x10000 in lc_vec; but a Load with store status put the IPL CPU's status, the kdump
    kernel's disabled wait, at absolute 0x1200, and the dumper writes 0x1000-0x1FFF as it
    found it."""
    if any(status.prefix == 0 for _, status in _own_cpus(view.dump)):
        return None
    status = _save_area(view, 0)
    if status is None or status.prefix != 0 or not (status.psw_mask or status.psw_addr):
        return None
    return status


def _kdump_cpus(view: SystemView) -> None:
    """The kdump kernel's CPU (prefix 0, absolute 0x1200), then the dump's own CPUs whose
    save area is in the kdump system's memory."""
    own = _kdump_kernel_cpu(view)
    if own is not None:
        view.cpus.append(own)
        view.cpu_origins.append("absolute 0x1200")
    for origin, status in _own_cpus(view.dump):
        area = status.prefix + SAVE_AREA_ADDRESS
        if _covered(view.ranges, area, area + SAVE_AREA_SIZE):
            view.cpus.append(status)
            view.cpu_origins.append(origin)
    view.cpus_source = "the dump's own CPUs whose prefix page is below OLDMEM_SIZE"
    if own is not None:
        view.cpus_source = f"the status at absolute 0x1200 (prefix 0), then {view.cpus_source}"


# ---------------------------------------------------------------------------------------------
# Selecting


def select_system(dump: Dump, select: str) -> Dump | SystemView:
    """`dump` as it is (`all`), or the view of one of its two systems (`prod`, `kdump`).

    Raises ValueError for an unknown selection and DumpFormatError (ONE_SYSTEM) when `prod`
    or `kdump` is asked of a dump that holds one system.
    """
    if select not in SELECTIONS:
        raise ValueError(f"unknown selection '{select}' (expected all, prod or kdump)")
    if select == "all":
        return dump
    kdump = find_kdump_kernel(dump)
    if kdump is None:
        raise DumpFormatError(ONE_SYSTEM)
    if select == "kdump":
        view = SystemView(dump, select, kdump, _clip(dump.ranges, 0, kdump.size))
        view.os_info = _os_info(view)
        _kdump_cpus(view)
        return view
    view = SystemView(dump, select, kdump, _prod_ranges(dump, kdump))
    view.os_info = _os_info(view)
    _prod_cpus(view)
    return view


def _os_info(view: SystemView) -> OsInfoLookup:
    end = view.ranges[-1][1] if view.ranges else 0

    def read(address: int, length: int) -> bytes:
        """The view's memory, zeros outside it (for the os_info lookup)."""
        return view.read(address, length, holes_as_zero=True)

    return find_vmcoreinfo(read, end)
