"""The storage map: where lowcore, the kernel, os_info, VMCOREINFO, the crashkernel region,
the store-status save area and the dumper live in absolute storage.

What is fixed by the architecture or the design (absolute lowcore, the save area at 0x1200,
the dumper's 0x2000-0x10000) is known here; what the kernel decided (os_info, VMCOREINFO, the
crashkernel region) is read from storage by a probe that runs in the machine thread; what the
snapshot says (each CPU's prefix) and what the asset ELFs say (the program's extent) is added
in the UI. Layouts: S390_FACTS §1.3 (0xE0C, 0xE18) and §2.2 (os_info).
"""

from __future__ import annotations

from dataclasses import dataclass

from console.tui.widgets.inspect import symbols
from machine.lpar import Lpar, Snapshot

LOWCORE_SIZE = 0x2000
LC_VMCORE_INFO = 0xE0C
LC_OS_INFO = 0xE18
SAVE_AREA = (0x1200, 0x1400)
DUMPER_AREA = (0x2000, 0x10000)
OS_INFO_MAGIC = 0x4F53494E464F535A
OS_INFO_HEADER = 0x20
OS_INFO_ENTRY = 20
OS_INFO_ENTRIES = 13
# Entry 3 is where DumpLab's kernel puts the purgatory (assets/src/common/kexec.h,
# OS_INFO_PURGATORY: the 2011 design's kdump entry).
OS_INFO_ENTRY_NAMES = {0: "vmcoreinfo", 1: "reipl block", 2: "flags", 3: "purgatory"}


@dataclass(frozen=True)
class Region:
    """A named range of absolute storage."""

    name: str
    start: int
    size: int
    note: str = ""

    @property
    def end(self) -> int:
        return self.start + self.size

    def label(self) -> str:
        return f"{self.start:08x}-{self.end - 1:08x} {self.name}"


@dataclass(frozen=True)
class StorageFacts:
    """What the probe read: the lowcore pointers and the os_info header, if valid."""

    memory: int
    os_info: int
    vmcoreinfo: int
    os_info_head: bytes  # the first 0x124 bytes of os_info ('' when the pointer is bad)


def probe_storage_facts(lpar: Lpar, snapshot: Snapshot) -> StorageFacts:
    """Runs in the machine thread: read the pointers at 0xE0C and 0xE18 and the os_info
    header they point to (read-only, public Lpar methods only)."""
    head = lpar.read(LC_VMCORE_INFO, 0x14)
    vmcoreinfo = int.from_bytes(head[0:8], "big")
    os_info = int.from_bytes(head[0xC:0x14], "big")
    memory = lpar.profile.memory
    data = b""
    length = OS_INFO_HEADER + OS_INFO_ENTRY * OS_INFO_ENTRIES
    if os_info and os_info % 4096 == 0 and os_info + length <= memory:
        data = lpar.read(os_info, length)
    return StorageFacts(memory, os_info, vmcoreinfo, data)


def fixed_regions() -> list[Region]:
    return [Region("lowcore", 0, LOWCORE_SIZE, "absolute lowcore (CPU 0 before SPX)"),
            Region("save area", SAVE_AREA[0], SAVE_AREA[1] - SAVE_AREA[0],
                   "store-status save area"),
            Region("dumper", DUMPER_AREA[0], DUMPER_AREA[1] - DUMPER_AREA[0],
                   "where the stand-alone dumper runs")]


def os_info_regions(facts: StorageFacts) -> list[Region]:
    """os_info, its entries and the crashkernel region it names."""
    regions: list[Region] = []
    if facts.vmcoreinfo:
        regions.append(Region("vmcoreinfo", facts.vmcoreinfo, 0x1000, "VMCOREINFO note (0xE0C)"))
    data = facts.os_info_head
    if not data or int.from_bytes(data[:8], "big") != OS_INFO_MAGIC:
        if facts.os_info:
            regions.append(Region("os_info", facts.os_info, 0x1000, "pointer at 0xE18, bad magic"))
        return regions
    regions.append(Region("os_info", facts.os_info, 0x1000, "pointer at 0xE18"))
    crash_addr = int.from_bytes(data[0x10:0x18], "big")
    crash_size = int.from_bytes(data[0x18:0x20], "big")
    if crash_addr and crash_size:
        regions.append(Region("crashkernel", crash_addr, crash_size, "from os_info"))
    for index in range(1, OS_INFO_ENTRIES):
        entry = data[OS_INFO_HEADER + OS_INFO_ENTRY * index:][:OS_INFO_ENTRY]
        addr, size = int.from_bytes(entry[0:8], "big"), int.from_bytes(entry[8:16], "big")
        if addr and size and addr + size <= facts.memory:
            name = OS_INFO_ENTRY_NAMES.get(index, f"os_info entry {index}")
            regions.append(Region(name, addr, size, f"os_info entry {index}"))
    return regions


def snapshot_regions(snapshot: Snapshot) -> list[Region]:
    """Each CPU's lowcore (its prefix area) and the loaded program's extent."""
    regions = [Region(f"lowcore CPU {cpu.address}", cpu.prefix, LOWCORE_SIZE, "prefix area")
               for cpu in snapshot.cpus if cpu.prefix]
    image = symbols.program(snapshot.program)
    if image is not None:
        regions.append(Region(image.name, image.start, image.end - image.start,
                              f"{image.name} image (ELF segments)"))
    return regions


def storage_map(snapshot: Snapshot | None, facts: StorageFacts | None) -> list[Region]:
    """All regions known now, by address (duplicates by name removed)."""
    regions = fixed_regions()
    if snapshot is not None:
        regions += snapshot_regions(snapshot)
    if facts is not None:
        regions += os_info_regions(facts)
    unique = {region.name: region for region in regions}
    return sorted(unique.values(), key=lambda region: (region.start, region.name))


def regions_named(regions: list[Region], names: tuple[str, ...]) -> list[Region]:
    """The regions whose names match (a name matches `lowcore CPU n` too)."""
    return [r for r in regions if any(r.name == n or r.name.startswith(n + " ") for n in names)]
