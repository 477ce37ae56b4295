"""Conversion between s390 dumps and ELF vmcores (zgetdump's role), both ways, and round trips
that keep memory byte-identical."""

from __future__ import annotations

from pathlib import Path

import pytest
from dump_samples import (
    PAGE,
    PREFIXES,
    VMCOREINFO_TEXT,
    memory_image,
    reader,
    s390_memory,
    statuses,
)
from elftools.elf.elffile import ELFFile

from machine.formats import (
    DumpFormatError,
    convert,
    detect_format,
    read_s390_dump,
    read_vmcore,
    write_s390_dump,
    write_vmcore,
)
from machine.formats.notes import (
    NT_PRPSINFO,
    NT_PRSTATUS,
    NT_S390_PREFIX,
    NT_VMCOREINFO,
    vmcore_notes,
)
from machine.status import SAVE_AREA_ADDRESS

SIZE = 32 << 20


@pytest.fixture
def s390(tmp_path: Path) -> tuple[Path, bytearray]:
    image = s390_memory(SIZE)
    # A reserved word of a save area that is not zero: the round trip must keep it.
    image[PREFIXES[0] + 0x1310:PREFIXES[0] + 0x1318] = b"reserved"
    path = tmp_path / "dump.s390"
    write_s390_dump(path, reader(image), SIZE, prefixes=PREFIXES)
    return path, image


def test_detect_format(tmp_path: Path, s390: tuple[Path, bytearray]) -> None:
    assert detect_format(s390[0]) == "s390"
    convert(s390[0], tmp_path / "vmcore")
    assert detect_format(tmp_path / "vmcore") == "elf"
    (tmp_path / "junk").write_bytes(b"hello world")
    with pytest.raises(DumpFormatError, match="neither an ELF vmcore nor an s390 dump"):
        detect_format(tmp_path / "junk")


def test_s390_to_elf_builds_kdump_notes_and_one_unfiltered_pt_load(
        tmp_path: Path, s390: tuple[Path, bytearray]) -> None:
    path, image = s390
    result = convert(path, tmp_path / "vmcore")
    assert (result.in_format, result.out_format) == ("s390", "elf")
    vmcore = read_vmcore(tmp_path / "vmcore")
    assert [(n.type, n.name) for n in vmcore.notes if n.type in
            (NT_PRPSINFO, NT_PRSTATUS, NT_VMCOREINFO)] == [
        (NT_PRPSINFO, "CORE"), (NT_PRSTATUS, "CORE"), (NT_PRSTATUS, "CORE"),
        (NT_VMCOREINFO, "VMCOREINFO")]
    # The same notes, byte for byte, as a kdump vmcore of these CPUs would have.
    with open(tmp_path / "vmcore", "rb") as file:
        note = next(ELFFile(file).iter_segments())
        assert note.data() == vmcore_notes(statuses(), VMCOREINFO_TEXT)
    assert [cpu.pid for cpu in vmcore.cpus] == [1, 2]
    assert [cpu.status() for cpu in vmcore.cpus] == statuses()
    assert [(ld.paddr, ld.filesz, ld.memsz) for ld in vmcore.loads] == [(0, SIZE, SIZE)]
    assert vmcore.read(0, SIZE) == image


def test_elf_to_s390_puts_memory_zeros_for_holes_and_registers_in_prefix_pages(
        tmp_path: Path) -> None:
    # A vmcore as kdump writes it: zero pages filtered, a hole (the crashkernel region) and
    # prefix pages whose save areas do not hold the registers (the notes do).
    image = memory_image(SIZE)
    ranges = [(0, 20 << 20), (24 << 20, SIZE)]
    write_vmcore(tmp_path / "vmcore", vmcore_notes(statuses(), VMCOREINFO_TEXT), ranges,
                 reader(image))
    result = convert(tmp_path / "vmcore", tmp_path / "dump")
    assert (result.in_format, result.out_format) == ("elf", "s390")
    dump = read_s390_dump(tmp_path / "dump")
    assert dump.prefixes == PREFIXES
    assert dump.cpus == statuses()
    memory = dump.read(0, SIZE)
    assert memory[20 << 20:24 << 20] == bytes(4 << 20)
    expected = bytearray(image)
    expected[20 << 20:24 << 20] = bytes(4 << 20)
    for cpu in statuses():
        area = cpu.prefix + SAVE_AREA_ADDRESS
        expected[area:area + 512] = cpu.pack()
    assert memory == expected


def test_s390_to_elf_to_s390_keeps_every_byte(tmp_path: Path,
                                              s390: tuple[Path, bytearray]) -> None:
    path, image = s390
    convert(path, tmp_path / "vmcore")
    convert(tmp_path / "vmcore", tmp_path / "again.s390")
    original, again = path.read_bytes(), (tmp_path / "again.s390").read_bytes()
    assert again[0x1000:-16] == original[0x1000:-16] == image
    # With tod and cpu_id 0 (they are not in the vmcore) the headers are identical too.
    assert again == original


def test_elf_to_s390_to_elf_keeps_memory_and_registers(tmp_path: Path) -> None:
    image = memory_image(SIZE)
    notes = vmcore_notes(statuses(), VMCOREINFO_TEXT)
    write_vmcore(tmp_path / "vmcore", notes, [(0, SIZE)], reader(image))
    convert(tmp_path / "vmcore", tmp_path / "dump")
    convert(tmp_path / "dump", tmp_path / "back")
    first, back = read_vmcore(tmp_path / "vmcore"), read_vmcore(tmp_path / "back")
    assert [c.status() for c in back.cpus] == [c.status() for c in first.cpus]
    expected = bytearray(image)
    for cpu in statuses():
        area = cpu.prefix + SAVE_AREA_ADDRESS
        expected[area:area + 512] = cpu.pack()
    assert back.read(0, SIZE) == expected
    # VMCOREINFO is only carried over through os_info, which this image has none of.
    assert back.vmcoreinfo is None and first.vmcoreinfo == VMCOREINFO_TEXT


def test_converting_to_the_same_format_rewrites(tmp_path: Path,
                                                s390: tuple[Path, bytearray]) -> None:
    path, image = s390
    device = tmp_path / "device"
    device.write_bytes(path.read_bytes() + bytes(5 * PAGE))
    convert(device, tmp_path / "trimmed", "s390")
    assert (tmp_path / "trimmed").read_bytes() == path.read_bytes()
    convert(path, tmp_path / "full.elf", "elf")
    convert(tmp_path / "full.elf", tmp_path / "filtered.elf", "elf")
    filtered = read_vmcore(tmp_path / "filtered.elf")
    assert filtered.pages_filtered > 0
    assert filtered.read(0, SIZE) == image
    assert [n.desc for n in filtered.notes] == [n.desc for n in
                                                read_vmcore(tmp_path / "full.elf").notes]


def test_prefix_notes_outside_memory_are_refused(tmp_path: Path) -> None:
    write_vmcore(tmp_path / "vmcore", vmcore_notes(statuses(), None), [(0, 1 << 20)],
                 reader(bytes(1 << 20)))
    with pytest.raises(DumpFormatError, match="CPU 1: prefix 0x106c000"):
        convert(tmp_path / "vmcore", tmp_path / "dump")
    assert not (tmp_path / "dump").exists()


def test_input_and_output_must_differ(s390: tuple[Path, bytearray]) -> None:
    with pytest.raises(ValueError, match="same file"):
        convert(s390[0], s390[0])


def test_prefix_notes_give_lc_vec_in_note_order(tmp_path: Path) -> None:
    reordered = list(reversed(statuses()))
    write_vmcore(tmp_path / "vmcore", vmcore_notes(reordered, None), [(0, SIZE)],
                 reader(memory_image(SIZE)))
    prefixes = [int.from_bytes(n.desc, "big") for n in read_vmcore(tmp_path / "vmcore").notes
                if n.type == NT_S390_PREFIX]
    convert(tmp_path / "vmcore", tmp_path / "dump")
    assert list(read_s390_dump(tmp_path / "dump").prefixes) == prefixes == list(PREFIXES[::-1])
