"""ELF notes of the vmcore: padding, order, sizes and every byte of the per-CPU notes."""

from __future__ import annotations

import re
import struct

import pytest
from dump_samples import REFERENCE, VMCOREINFO_TEXT, status, statuses

from machine.formats import DumpFormatError
from machine.formats.notes import (
    CPU_NOTES_SIZE,
    NT_PRFPREG,
    NT_PRPSINFO,
    NT_PRSTATUS,
    NT_S390_CTRS,
    NT_S390_PREFIX,
    NT_S390_TIMER,
    NT_S390_TODCMP,
    NT_S390_TODPREG,
    NT_VMCOREINFO,
    CpuNotes,
    cpu_notes,
    cpus_from_notes,
    pack_note,
    parse_notes,
    prpsinfo_note,
    vmcore_notes,
    vmcoreinfo_note,
    vmcoreinfo_text,
)

# (type, name, descsz, padded size) of one CPU's notes: S390_FACTS §5.3 and §6.3.
CPU_NOTE_TABLE = [
    (NT_PRSTATUS, "CORE", 0x150, 356),
    (NT_PRFPREG, "CORE", 0x88, 156),
    (NT_S390_TIMER, "LINUX", 0x8, 28),
    (NT_S390_TODCMP, "LINUX", 0x8, 28),
    (NT_S390_TODPREG, "LINUX", 0x4, 24),
    (NT_S390_CTRS, "LINUX", 0x80, 148),
    (NT_S390_PREFIX, "LINUX", 0x4, 24),
]


def test_pack_note_pads_name_and_desc_to_4_bytes() -> None:
    note = pack_note("CORE", 7, b"abcde")
    assert note == (struct.pack(">III", 5, 5, 7) + b"CORE\0\0\0\0" + b"abcde\0\0\0")
    assert pack_note("LINUX", 0x301, b"12345678")[:20] == (struct.pack(">III", 6, 8, 0x301)
                                                          + b"LINUX\0\0\0")
    vmcoreinfo = pack_note("VMCOREINFO", 0, b"A=1\n")
    assert vmcoreinfo == struct.pack(">III", 11, 4, 0) + b"VMCOREINFO\0\0" + b"A=1\n"


def test_parse_notes_reads_back_names_types_descs_and_offsets() -> None:
    data = pack_note("CORE", 1, b"x" * 5) + pack_note("LINUX", 0x305, b"\1\2\3\4")
    notes = parse_notes(data, base_offset=0x1000)
    assert [(n.name, n.type, n.desc, n.offset) for n in notes] == [
        ("CORE", 1, b"xxxxx", 0x1000), ("LINUX", 0x305, b"\1\2\3\4", 0x1000 + 28)]
    assert [n.size for n in notes] == [28, 24]


def test_parse_notes_stops_at_an_empty_terminator_note() -> None:
    data = pack_note("CORE", 3, b"abcd") + bytes(12) + pack_note("CORE", 1, b"zzzz")
    assert [n.type for n in parse_notes(data)] == [3]


@pytest.mark.parametrize("data, problem", [
    (pack_note("CORE", 1, bytes(336))[:300], "overruns"),
    (struct.pack(">III", 5, 0x1000, 1) + b"CORE\0\0\0\0", "overruns"),
    (struct.pack(">III", 0x7FFFFFFF, 0, 1), "overruns"),
    (pack_note("CORE", 3, b"abcd") + b"\1\2\3", "truncated"),
])
def test_parse_notes_refuses_truncated_and_overrunning_notes(data: bytes, problem: str) -> None:
    with pytest.raises(DumpFormatError, match=problem) as caught:
        parse_notes(data)
    assert "\n" not in str(caught.value)


def test_prpsinfo_is_136_bytes_with_sname_r_and_fname_vmlinux() -> None:
    (note,) = parse_notes(prpsinfo_note())
    assert (note.name, note.type, len(note.desc)) == ("CORE", NT_PRPSINFO, 136)
    assert note.desc[1:2] == b"R"
    assert note.desc[40:56] == b"vmlinux".ljust(16, b"\0")
    assert note.desc.count(0) == 136 - 1 - len("vmlinux")
    assert len(prpsinfo_note()) == 156


def test_cpu_notes_are_the_seven_notes_in_kernel_order_764_bytes() -> None:
    data = cpu_notes(status(0, 0x0106C000), pid=1)
    assert len(data) == CPU_NOTES_SIZE == 764
    notes = parse_notes(data)
    assert [(n.type, n.name, len(n.desc), n.size) for n in notes] == CPU_NOTE_TABLE
    offsets = [n.offset for n in notes]
    assert offsets == [0, 356, 512, 540, 568, 592, 740]


def test_cpu_notes_offsets_match_the_real_vmcore_note_table() -> None:
    # CPU 1's PRSTATUS..PREFIX in the real run, relative to its PRSTATUS.
    table = (REFERENCE / "kdump-vmcore.notes-table.txt").read_text()
    offsets = [int(m.group(1), 16) for m in re.finditer(r"^(0x[0-9a-f]+)\s", table, re.MULTILINE)]
    real = [offset - offsets[1] for offset in offsets[1:8]]
    assert real == [n.offset for n in parse_notes(cpu_notes(status(0, 0x1000), 1))]


def test_every_per_cpu_desc_is_the_save_area_bytes_or_the_prstatus_layout() -> None:
    cpu = status(1, 0x0106E000)
    area = cpu.pack()  # the 512-byte store-status save area (S390_FACTS §1.2)
    notes = {n.type: n.desc for n in parse_notes(cpu_notes(cpu, pid=2))}
    prstatus = notes[NT_PRSTATUS]
    assert prstatus[32:36] == struct.pack(">I", 2)
    assert prstatus[112:128] == area[0x100:0x110]  # PSW
    assert prstatus[128:256] == area[0x080:0x100]  # GPRs
    assert prstatus[256:320] == area[0x140:0x180]  # ACRs
    assert prstatus[320:328] == bytes(8)  # orig_gpr2
    untouched = prstatus[:32] + prstatus[36:112] + prstatus[320:]
    assert untouched == bytes(len(untouched))
    assert notes[NT_PRFPREG] == area[0x11C:0x120] + bytes(4) + area[0x000:0x080]
    assert notes[NT_S390_TIMER] == area[0x128:0x130]
    assert notes[NT_S390_TODCMP] == area[0x130:0x138]  # as stored: the comparator >> 8
    assert notes[NT_S390_TODCMP] == struct.pack(">Q", cpu.clock_comparator >> 8)
    assert notes[NT_S390_TODPREG] == area[0x124:0x128]
    assert notes[NT_S390_CTRS] == area[0x180:0x200]
    assert notes[NT_S390_PREFIX] == area[0x118:0x11C] == bytes.fromhex("0106e000")


def _reference_descs() -> dict[str, str]:
    """The hex desc bytes of CPU 1's s390 notes in the real run's `readelf -n`."""
    descs: dict[str, str] = {}
    for line in (REFERENCE / "kdump-vmcore.readelf-n.txt").read_text().splitlines():
        match = re.search(r"(NT_S390_\w+) .*description data: ([0-9a-f ]+)", line)
        if match and match.group(1) not in descs:
            descs[match.group(1)] = match.group(2).replace(" ", "")
    return descs


def test_s390_note_descs_equal_the_real_run_for_the_same_registers() -> None:
    real = _reference_descs()
    cpu = status(0, int(real["NT_S390_PREFIX"], 16))
    ctrs = struct.unpack(">16Q", bytes.fromhex(real["NT_S390_CTRS"]))
    cpu = type(cpu)(**{**cpu.__dict__, "crs": ctrs, "tod_programmable": 0,
                       "cpu_timer": int(real["NT_S390_TIMER"], 16),
                       "clock_comparator": int(real["NT_S390_TODCMP"], 16) << 8})
    ours = {n.type: n.desc.hex() for n in parse_notes(cpu_notes(cpu, 1))}
    assert ours[NT_S390_TIMER] == real["NT_S390_TIMER"] == "7ffffffd7c2ee3b2"
    assert ours[NT_S390_TODCMP] == real["NT_S390_TODCMP"] == "00a95faf2223ba82"
    assert ours[NT_S390_TODPREG] == real["NT_S390_TODPREG"]
    assert ours[NT_S390_CTRS] == real["NT_S390_CTRS"]
    assert ours[NT_S390_PREFIX] == real["NT_S390_PREFIX"] == "0106c000"


def test_vmcoreinfo_note_is_the_text_without_a_nul() -> None:
    (note,) = parse_notes(vmcoreinfo_note(VMCOREINFO_TEXT))
    assert (note.name, note.type, note.desc) == ("VMCOREINFO", NT_VMCOREINFO,
                                                 VMCOREINFO_TEXT.encode())
    assert vmcoreinfo_text([note]) == VMCOREINFO_TEXT


def test_vmcore_notes_are_prpsinfo_cpus_then_vmcoreinfo_with_no_terminator() -> None:
    data = vmcore_notes(statuses(), VMCOREINFO_TEXT)
    text_size = (len(VMCOREINFO_TEXT) + 3) & ~3
    assert len(data) == 156 + 2 * 764 + 24 + text_size
    notes = parse_notes(data)
    expected = [(NT_PRPSINFO, "CORE")] + [(t, name) for t, name, _, _ in CPU_NOTE_TABLE] * 2 \
        + [(NT_VMCOREINFO, "VMCOREINFO")]
    assert [(n.type, n.name) for n in notes] == expected
    assert notes[-1].offset + notes[-1].size == len(data)


def test_cpus_from_notes_decodes_every_register_back() -> None:
    cpus = cpus_from_notes(parse_notes(vmcore_notes(statuses(), None)))
    assert cpus == [CpuNotes.from_status(s, pid) for pid, s in enumerate(statuses(), start=1)]
    for cpu, original in zip(cpus, statuses(), strict=True):
        assert cpu.status() == original
        assert cpu.psw == (original.psw_mask, original.psw_addr)
        assert cpu.todcmp == original.clock_comparator >> 8
        assert (cpu.prefix, cpu.fpc, cpu.timer, cpu.todpreg) == (
            original.prefix, original.fpc, original.cpu_timer, original.tod_programmable)


def test_cpus_from_notes_accepts_the_u64_todpreg_of_older_kernels() -> None:
    data = cpu_notes(status(0, 0x2000), 1).replace(
        pack_note("LINUX", NT_S390_TODPREG, bytes(4)),
        pack_note("LINUX", NT_S390_TODPREG, bytes(7) + b"\x05"))
    (cpu,) = cpus_from_notes(parse_notes(data))
    assert cpu.todpreg == 5


def test_cpus_from_notes_refuses_a_note_of_the_wrong_size() -> None:
    data = pack_note("CORE", NT_PRSTATUS, bytes(336)) + pack_note("LINUX", NT_S390_TIMER,
                                                                  bytes(4))
    with pytest.raises(DumpFormatError, match="NT_S390_TIMER note at offset 0x164"):
        cpus_from_notes(parse_notes(data))
