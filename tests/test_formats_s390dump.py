"""The s390 dump format (S390_FACTS §4.4, §6.8): header bytes at their offsets, memory, the
DUMP_END marker, reading back CPUs from prefix pages, os_info, and malformed files."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest
from dump_samples import (
    OS_INFO_ADDRESS,
    PAGE,
    PREFIXES,
    REFERENCE,
    VMCOREINFO_TEXT,
    put_os_info,
    reader,
    s390_memory,
    statuses,
)

from machine.formats import AddressNotDumped, DumpFormatError, read_s390_dump, write_s390_dump
from machine.formats.s390dump import S390Header

SIZE = 32 << 20
TOD = 0xDB1F2E3D4C5B6A79
CPU_ID = 0xFF01234585610000


@pytest.fixture(scope="module")
def image() -> bytearray:
    return s390_memory(SIZE)


@pytest.fixture(scope="module")
def dump(tmp_path_factory, image: bytearray) -> Path:
    path = tmp_path_factory.mktemp("s390") / "dump.s390"
    write_s390_dump(path, reader(image), SIZE, prefixes=PREFIXES, tod=TOD, cpu_id=CPU_ID,
                    real_cpu_cnt=3, end_tod=TOD + 0x1000)
    return path


def test_header_fields_are_at_their_offsets(dump: Path) -> None:
    data = dump.read_bytes()
    fields = {
        0x000: (">Q", 0xA8190173618F23FD), 0x008: (">I", 5), 0x00C: (">I", 0x1000),
        0x010: (">I", 4), 0x014: (">I", 4096), 0x018: (">Q", SIZE), 0x020: (">Q", 0),
        0x028: (">Q", SIZE), 0x030: (">I", SIZE // PAGE), 0x038: (">Q", TOD),
        0x040: (">Q", CPU_ID), 0x048: (">I", 2), 0x04C: (">I", 0), 0x050: (">I", 2),
        0x054: (">Q", SIZE), 0x05C: (">B", 0), 0x05D: (">H", 2), 0x05F: (">H", 3),
        0x800: (">I", PREFIXES[0]), 0x804: (">I", PREFIXES[1]),
    }
    known = bytearray(0x1000)
    for offset, (fmt, value) in fields.items():
        assert struct.unpack_from(fmt, data, offset)[0] == value, hex(offset)
        known[offset:offset + struct.calcsize(fmt)] = b"\xff" * struct.calcsize(fmt)
    stray = [i for i in range(0x1000) if data[i] and not known[i]]
    assert stray == []


def test_memory_follows_the_header_and_the_end_marker_closes_the_file(dump: Path,
                                                                     image: bytearray) -> None:
    data = dump.read_bytes()
    assert len(data) == 0x1000 + SIZE + 16
    assert data[0x1000:0x1000 + SIZE] == image
    assert data[-16:] == b"DUMP_END" + struct.pack(">Q", TOD + 0x1000)
    assert data[-16:-8].hex() == "44554d505f454e44"


def _reference_header() -> dict[int, int]:
    """Offset → value of the real zgetdump-written header (reference/...header-decoded)."""
    text = (REFERENCE / "s390fmt-from-kdump.header-decoded.txt").read_text()
    return {int(m.group(1), 16): int(m.group(2), 16)
            for m in re.finditer(r"^(0x[0-9a-f]{4}) \w+\s+= (0x[0-9a-f]+)", text, re.MULTILINE)}


def test_the_header_of_the_real_conversion_packs_to_the_same_values() -> None:
    real = _reference_header()
    # The fields only a stand-alone dumper fills were zero in zgetdump's output (§6.8).
    header = S390Header(mem_size=0x14000000, build_arch=0, mem_size_real=0, real_cpu_cnt=0,
                        lc_vec=(0x0106C000, 0x0106E000)).pack()
    widths = {0x000: 8, 0x018: 8, 0x020: 8, 0x028: 8, 0x038: 8, 0x040: 8, 0x054: 8,
              0x05C: 1, 0x05D: 2, 0x05F: 2, 0x200: 8, 0x208: 8}
    for offset, value in real.items():
        width = widths.get(offset, 4)
        assert int.from_bytes(header[offset:offset + width], "big") == value, hex(offset)
    assert struct.unpack_from(">8I", header, 0x800) == (0x0106C000, 0x0106E000, 0, 0, 0, 0, 0, 0)
    assert not any(header[0x808:])


def test_read_s390_dump_gives_back_header_cpus_and_memory(dump: Path, image: bytearray) -> None:
    result = read_s390_dump(dump)
    assert result.header.mem_size == SIZE and result.header.tod == TOD
    assert result.header.cpu_id == CPU_ID and result.header.real_cpu_cnt == 3
    assert result.prefixes == PREFIXES
    assert result.end_tod == TOD + 0x1000
    assert result.cpus == statuses()
    assert result.read(0, SIZE) == image
    assert result.read(PREFIXES[1] + 0x1280, 8) == statuses()[1].gprs[0].to_bytes(8, "big")
    with pytest.raises(AddressNotDumped):
        result.read(SIZE - 8, 16)


def test_vmcoreinfo_is_found_through_the_lowcore_pointer(dump: Path) -> None:
    """Linux leaves os_info entry 0 empty: the reader falls back to the note at 0xE0C."""
    result = read_s390_dump(dump)
    assert result.vmcoreinfo == VMCOREINFO_TEXT
    assert result.os_info.address == OS_INFO_ADDRESS
    assert result.os_info.source == "lowcore 0xe0c"


def test_os_info_entry0_holds_the_text_and_comes_first(tmp_path: Path) -> None:
    """Entry 0 is the note's descriptor (raw text), read before the 0xE0C note."""
    image = s390_memory(SIZE)
    put_os_info(image, "OSRELEASE=from-entry-0\n", in_entry0=True)
    image[0x8000 + 24:0x8000 + 33] = b"ESAELERSO"  # the 0xE0C note's text no longer agrees
    path = tmp_path / "dump"
    write_s390_dump(path, reader(image), len(image))
    result = read_s390_dump(path)
    assert (result.vmcoreinfo, result.os_info.source) == ("OSRELEASE=from-entry-0\n",
                                                          "os_info entry 0")


def test_a_bad_entry0_falls_back_to_the_lowcore_note(tmp_path: Path) -> None:
    image = s390_memory(SIZE)
    put_os_info(image, in_entry0=True)
    image[0x8800 + 6] ^= 0x40  # the text entry 0 checksums
    path = tmp_path / "dump"
    write_s390_dump(path, reader(image), len(image))
    result = read_s390_dump(path)
    assert (result.vmcoreinfo, result.os_info.source) == (VMCOREINFO_TEXT, "lowcore 0xe0c")


@pytest.mark.parametrize("offsets, problem", [
    ((OS_INFO_ADDRESS + 0x10, 0xE0C),
     "os_info at 0x7000: checksum mismatch; the VMCOREINFO pointer at 0xe0c .* is outside memory"),
    ((OS_INFO_ADDRESS, 0xE0C), "bad magic"),
    ((0xE18 + 7, 0x8000 + 12), "no os_info.*not a VMCOREINFO note"),
    ((0x8000 + 14,), "entry 0 \\(VMCOREINFO\\) is not set; .*not a VMCOREINFO note"),
])
def test_no_vmcoreinfo_when_both_places_are_damaged(tmp_path: Path, offsets: tuple[int, ...],
                                                     problem: str) -> None:
    image = s390_memory(SIZE)
    for offset in offsets:
        image[offset] ^= 0x40
    path = tmp_path / "dump"
    write_s390_dump(path, reader(image), len(image))
    result = read_s390_dump(path)
    assert result.vmcoreinfo is None
    assert re.search(problem, result.os_info.problem)


def test_a_dump_copied_from_a_larger_device_reads_the_same(tmp_path: Path, dump: Path) -> None:
    device = tmp_path / "device"
    device.write_bytes(dump.read_bytes() + bytes(3 * PAGE))
    assert read_s390_dump(device).read(0, 0x2000) == read_s390_dump(dump).read(0, 0x2000)


def test_write_result_and_progress(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    size = 96 << 20
    result = write_s390_dump(tmp_path / "d", reader(bytes(size)), size,
                             progress=lambda done, total: calls.append((done, total)))
    assert result.bytes_written == 0x1000 + size + 16 == (tmp_path / "d").stat().st_size
    assert (result.pages_written, result.pages_skipped) == (size // PAGE, 0)
    assert calls[-1] == (size, size) and 3 <= len(calls) <= 4


def test_an_interrupted_write_leaves_nothing(tmp_path: Path, image: bytearray) -> None:
    calls = 0

    def read(address: int, length: int) -> bytes:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise KeyboardInterrupt
        return image[address:address + length]

    with pytest.raises(KeyboardInterrupt):
        write_s390_dump(tmp_path / "dump", read, SIZE, prefixes=PREFIXES)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("size", [0, 0x1800])
def test_memory_must_be_whole_pages(tmp_path: Path, size: int) -> None:
    with pytest.raises(ValueError):
        write_s390_dump(tmp_path / "dump", reader(bytes(0x2000)), size)


def malformed_cases(data: bytes) -> dict[str, tuple[bytes, str]]:
    def patched(offset: int, fmt: str, value: int) -> bytes:
        out = bytearray(data)
        struct.pack_into(fmt, out, offset, value)
        return bytes(out)
    return {
        "empty": (b"", "empty file"),
        "random": (bytes(range(256)) * 64, "not an s390 dump \\(bad magic"),
        "ext": (patched(0, ">Q", 0xA8190173618F23FE), "s390_ext dump format"),
        "short header": (data[:0x900], "truncated s390 dump header"),
        "memory cut": (data[:0x1000 + SIZE // 2], "incomplete dump: no DUMP_END marker"),
        "marker cut": (data[:-8], "incomplete dump: no DUMP_END marker"),
        "marker wrong": (patched(0x1000 + SIZE, ">Q", 0), "incomplete dump: no DUMP_END marker"),
        "31-bit": (patched(0x48, ">I", 1), "not a 64-bit dump"),
        "mem_end": (patched(0x28, ">Q", SIZE + PAGE), "inconsistent header"),
        "cpu_cnt": (patched(0x5D, ">H", 600), "cpu_cnt 600"),
        "prefix": (patched(0x804, ">I", SIZE), "lc_vec\\[1\\] prefix 0x2000000"),
    }


def test_every_malformed_s390_dump_is_one_clear_dump_format_error(tmp_path: Path,
                                                                 dump: Path) -> None:
    for name, (data, problem) in malformed_cases(dump.read_bytes()).items():
        path = tmp_path / name.replace(" ", "-")
        path.write_bytes(data)
        with pytest.raises(DumpFormatError) as caught:
            read_s390_dump(path)
        assert re.search(problem, str(caught.value)), (name, str(caught.value))
        assert "\n" not in str(caught.value), name
