"""The vmcore writer and reader: layout against the real /proc/vmcore (S390_FACTS §5, §6),
pyelftools, readelf and gdb reading it, every byte of memory back, zero-page filtering,
atomic writes and malformed files."""

from __future__ import annotations

import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from dump_samples import (
    PAGE,
    READELF,
    REFERENCE,
    ROOT,
    VMCOREINFO_TEXT,
    memory_image,
    page_kinds,
    readelf_notes,
    reader,
    statuses,
)
from elftools.elf.elffile import ELFFile

from machine.formats import AddressNotDumped, DumpFormatError, elfcore, read_vmcore, write_vmcore
from machine.formats.common import partial_files
from machine.formats.notes import vmcore_notes

SIZE = 8 << 20
# Two ranges with a hole between them, as when the crashkernel region is left out.
RANGES = [(0, 5 << 20), (6 << 20, SIZE)]
NOTES = vmcore_notes(statuses(), VMCOREINFO_TEXT)


@pytest.fixture(scope="module")
def image() -> bytearray:
    return memory_image(SIZE)


@pytest.fixture(scope="module")
def vmcore(tmp_path_factory, image: bytearray) -> Path:
    path = tmp_path_factory.mktemp("elf") / "vmcore"
    write_vmcore(path, NOTES, RANGES, reader(image))
    return path


@pytest.fixture(scope="module")
def unfiltered(tmp_path_factory, image: bytearray) -> Path:
    path = tmp_path_factory.mktemp("elf") / "vmcore.full"
    write_vmcore(path, NOTES, RANGES, reader(image), filter_zero_pages=False)
    return path


def zero_pages_in(start: int, end: int) -> int:
    kinds = page_kinds(SIZE // PAGE)
    return sum(kinds[page] == "zero" for page in range(start // PAGE, end // PAGE))


# ---------------------------------------------------------------------------------------------
# Layout


def test_elf_header_is_that_of_the_real_vmcore(vmcore: Path) -> None:
    with open(vmcore, "rb") as file:
        elf = ELFFile(file)
        header = elf.header
        assert header.e_ident["EI_CLASS"] == "ELFCLASS64"
        assert header.e_ident["EI_DATA"] == "ELFDATA2MSB"
        assert header.e_ident["EI_VERSION"] == "EV_CURRENT"
        assert header.e_ident["EI_OSABI"] == "ELFOSABI_SYSV"
        assert (header.e_type, header.e_machine) == ("ET_CORE", "EM_S390")
        assert (header.e_entry, header.e_flags, header.e_phoff) == (0, 0, 64)
        assert (header.e_ehsize, header.e_phentsize) == (64, 56)
        assert (header.e_shoff, header.e_shnum, header.e_shstrndx) == (0, 0, 0)


def test_pt_note_comes_first_page_aligned_right_after_the_headers(vmcore: Path) -> None:
    with open(vmcore, "rb") as file:
        elf = ELFFile(file)
        note, *loads = [segment.header for segment in elf.iter_segments()]
    assert note.p_type == "PT_NOTE"
    assert note.p_offset == -(-(64 + 56 * (1 + len(loads))) // PAGE) * PAGE
    assert (note.p_vaddr, note.p_paddr, note.p_flags, note.p_align) == (0, 0, 0, 0)
    assert note.p_filesz == note.p_memsz == len(NOTES)
    assert all(load.p_type == "PT_LOAD" for load in loads)
    assert loads[0].p_offset == -(-(note.p_offset + note.p_filesz) // PAGE) * PAGE


def test_pt_loads_are_page_aligned_rwx_with_vaddr_equal_paddr(vmcore: Path) -> None:
    with open(vmcore, "rb") as file:
        loads = [s.header for s in ELFFile(file).iter_segments() if s.header.p_type == "PT_LOAD"]
    offset = loads[0].p_offset
    for load in loads:
        assert load.p_vaddr == load.p_paddr
        assert (load.p_flags, load.p_align) == (7, PAGE)
        assert load.p_offset == offset and load.p_offset % PAGE == 0
        assert load.p_paddr % PAGE == 0 and load.p_filesz % PAGE == 0
        offset += load.p_filesz
    assert offset == vmcore.stat().st_size
    covered = [(ld.p_paddr, ld.p_paddr + ld.p_memsz) for ld in loads]
    merged = []
    for start, end in covered:
        if merged and merged[-1][1] == start:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    assert merged == RANGES


def test_notes_in_pyelftools_are_in_the_kernel_order_with_the_real_sizes(vmcore: Path) -> None:
    with open(vmcore, "rb") as file:
        segment = next(ELFFile(file).iter_segments())
        notes = [(n.n_name, n.n_type, n.n_descsz) for n in segment.iter_notes()]
    # pyelftools names the CORE note types; the s390 ones it leaves as numbers.
    per_cpu = [("CORE", "NT_PRSTATUS", 0x150), ("CORE", "NT_FPREGSET", 0x88),
               ("LINUX", 0x301, 8), ("LINUX", 0x302, 8), ("LINUX", 0x303, 4),
               ("LINUX", 0x304, 0x80), ("LINUX", 0x305, 4)]
    assert notes == [("CORE", "NT_PRPSINFO", 0x88), *per_cpu, *per_cpu,
                     ("VMCOREINFO", 0, len(VMCOREINFO_TEXT))]


@pytest.mark.skipif(READELF is None, reason="readelf is not installed")
def test_unfiltered_layout_matches_the_real_vmcore_header_and_offsets(
        tmp_path: Path, image: bytearray) -> None:
    # One range, two CPUs and the real VMCOREINFO: the real run's layout (NOTE at 0x1000,
    # LOAD at 0x3000), with no VXRS notes (DumpLab's CPUs have no vector registers).
    text = (REFERENCE / "kdump-vmcore.vmcoreinfo.txt").read_text()
    path = tmp_path / "vmcore"
    write_vmcore(path, vmcore_notes(statuses(), text), [(0, SIZE)], reader(image),
                 filter_zero_pages=False)
    header = subprocess.run([READELF, "-h", str(path)], capture_output=True, text=True,
                            check=True).stdout
    assert header == (REFERENCE / "kdump-vmcore.readelf-h.txt").read_text()
    with open(path, "rb") as file:
        note, load = (s.header for s in ELFFile(file).iter_segments())
    assert (note.p_offset, note.p_filesz) == (0x1000, 156 + 2 * 764 + 24 + 2988)
    assert (load.p_offset, load.p_filesz, load.p_memsz) == (0x3000, SIZE, SIZE)


@pytest.mark.skipif(READELF is None, reason="readelf is not installed")
def test_readelf_shows_the_notes_in_the_order_of_the_real_vmcore(vmcore: Path) -> None:
    ours = readelf_notes(subprocess.run([READELF, "-n", str(vmcore)], capture_output=True,
                                        text=True, check=True).stdout)
    real = [note for note in readelf_notes((REFERENCE / "kdump-vmcore.readelf-n.txt")
                                           .read_text()) if "VXRS" not in note[2]]
    assert [(owner, desc) for owner, _, desc in ours] == [(owner, desc) for owner, _, desc in real]
    # Sizes too, except the VMCOREINFO text, which is ours.
    assert [size for _, size, _ in ours[:-1]] == [size for _, size, _ in real[:-1]]


def _gdb_registers(output: str) -> list[dict[str, int]]:
    threads: list[dict[str, int]] = []
    for line in output.splitlines():
        match = re.match(r"^(pswm|pswa|r\d+)\s+(0x[0-9a-f]+)", line)
        if match:
            if match.group(1) == "pswm":
                threads.append({})
            threads[-1][match.group(1)] = int(match.group(2), 16)
    return threads


@pytest.mark.skipif(shutil.which("gdb-multiarch") is None, reason="gdb-multiarch is not installed")
def test_gdb_shows_every_cpu_psw_and_gprs(vmcore: Path) -> None:
    done = subprocess.run(
        ["gdb-multiarch", "-nx", "-batch", "-ex", "set architecture s390:64-bit",
         "-ex", "info registers", "-ex", "thread 2", "-ex", "info registers", "-c", str(vmcore)],
        capture_output=True, text=True, timeout=120, check=False)
    threads = _gdb_registers(done.stdout)
    assert len(threads) == 2, done.stdout + done.stderr
    # gdb numbers threads in reverse note order; match them by PSW address.
    by_address = {regs["pswa"]: regs for regs in threads}
    for cpu in statuses():
        regs = by_address[cpu.psw_addr]
        assert regs["pswm"] == cpu.psw_mask
        assert [regs[f"r{i}"] for i in range(16)] == list(cpu.gprs)


# ---------------------------------------------------------------------------------------------
# Reading back and filtering


def test_read_vmcore_gives_back_cpus_vmcoreinfo_and_every_byte(vmcore: Path,
                                                             image: bytearray) -> None:
    dump = read_vmcore(vmcore)
    assert [cpu.status() for cpu in dump.cpus] == statuses()
    assert [cpu.pid for cpu in dump.cpus] == [1, 2]
    assert dump.vmcoreinfo == VMCOREINFO_TEXT
    assert dump.ranges == RANGES
    for start, end in RANGES:
        assert dump.read(start, end - start) == image[start:end]
    assert dump.read(0x4FFF00, 0x100) == image[0x4FFF00:0x500000]


def test_reads_outside_the_dumped_ranges_are_refused_or_zeros(vmcore: Path,
                                                             image: bytearray) -> None:
    dump = read_vmcore(vmcore)
    with pytest.raises(AddressNotDumped, match="0x500000 is not in the dump"):
        dump.read(0x4FF000, 0x2000)
    data = dump.read(0x4FF000, 0x2000, holes_as_zero=True)
    assert data == image[0x4FF000:0x500000] + bytes(0x1000)


def test_filtering_leaves_every_zero_page_out_of_the_file(vmcore: Path) -> None:
    dump = read_vmcore(vmcore)
    zero = sum(zero_pages_in(start, end) for start, end in RANGES)
    assert zero > 0
    assert dump.pages_filtered == zero
    assert sum(load.filesz for load in dump.loads) == SIZE - (1 << 20) - zero * PAGE
    with open(vmcore, "rb") as file:
        for load in dump.loads:
            file.seek(load.offset)
            data = file.read(load.filesz)
            assert all(any(data[i:i + PAGE]) for i in range(0, len(data), PAGE))
    # The first range starts with two zero pages: a PT_LOAD with no file data covers them.
    assert (dump.loads[0].paddr, dump.loads[0].filesz, dump.loads[0].memsz) == (0, 0, 2 * PAGE)


def test_without_filtering_every_page_is_in_the_file(unfiltered: Path) -> None:
    dump = read_vmcore(unfiltered)
    assert [(ld.paddr, ld.filesz, ld.memsz) for ld in dump.loads] == [
        (start, end - start, end - start) for start, end in RANGES]
    assert dump.pages_filtered == 0
    assert unfiltered.stat().st_size == dump.loads[0].offset + SIZE - (1 << 20)


def test_write_result_counts_pages_and_bytes(tmp_path: Path, image: bytearray) -> None:
    result = write_vmcore(tmp_path / "vmcore", NOTES, RANGES, reader(image))
    zero = sum(zero_pages_in(start, end) for start, end in RANGES)
    assert result.path == tmp_path / "vmcore"
    assert result.bytes_written == (tmp_path / "vmcore").stat().st_size
    assert (result.pages_written, result.pages_skipped) == ((7 << 20) // PAGE - zero, zero)
    assert result.seconds > 0


def test_too_many_pt_loads_fill_the_shortest_zero_runs(monkeypatch, tmp_path: Path,
                                                       image: bytearray) -> None:
    monkeypatch.setattr(elfcore, "MAX_LOADS", 20)
    path = tmp_path / "vmcore"
    write_vmcore(path, NOTES, RANGES, reader(image))
    dump = read_vmcore(path)
    assert len(dump.loads) <= 20
    assert dump.pages_filtered > 0
    for start, end in RANGES:
        assert dump.read(start, end - start) == image[start:end]


def test_progress_is_reported_about_every_32_mib(tmp_path: Path) -> None:
    size = 160 << 20
    calls: list[tuple[int, int]] = []
    zero = bytes(size)
    write_vmcore(tmp_path / "vmcore", NOTES, [(0, size)], reader(zero),
                 progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (size, size)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    assert 5 <= len(calls) <= 6


@pytest.mark.parametrize("ranges", [[(0, 0x1800)], [(0x800, 0x2000)], [(0x2000, 0x2000)],
                                    [(0, 0x4000), (0x3000, 0x5000)]])
def test_bad_ranges_are_refused(tmp_path: Path, ranges: list[tuple[int, int]]) -> None:
    with pytest.raises(ValueError):
        write_vmcore(tmp_path / "vmcore", NOTES, ranges, reader(bytes(0x8000)))
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------------------------------------
# Atomic writes


class Boom(Exception):
    pass


def failing_reader(image: bytearray, after: int, error: BaseException):
    read = reader(image)
    calls = 0

    def fail(address: int, length: int):
        nonlocal calls
        calls += 1
        if calls > after:
            raise error
        return read(address, length)
    return fail


@pytest.mark.parametrize("error", [Boom("read failed"), KeyboardInterrupt()])
@pytest.mark.parametrize("filtered", [True, False])
def test_an_interrupted_write_leaves_nothing(tmp_path: Path, image: bytearray,
                                             error: BaseException, filtered: bool) -> None:
    path = tmp_path / "vmcore"
    # Fail in the write pass: after the planning pass's reads when filtering.
    with pytest.raises(type(error)):
        write_vmcore(path, NOTES, RANGES, failing_reader(image, 3 if filtered else 1, error),
                     filter_zero_pages=filtered)
    assert not list(tmp_path.iterdir())


def test_an_interrupted_write_keeps_an_earlier_file(tmp_path: Path, image: bytearray) -> None:
    path = tmp_path / "vmcore"
    path.write_bytes(b"the previous dump")
    with pytest.raises(Boom):
        write_vmcore(path, NOTES, RANGES, failing_reader(image, 1, Boom()))
    assert path.read_bytes() == b"the previous dump"
    assert not partial_files(path)


KILLED_WRITER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {root!r})
    from machine.formats import write_vmcore
    size = 256 << 20
    data = (b"\\x5a" * 4096) * (size // 4096)
    view = memoryview(data)
    seen = set()
    def read(address, length):
        # The first pass only plans the PT_LOADs; stop in the second, which writes.
        if address == 64 << 20 and address in seen:
            print("midway", flush=True)
            time.sleep(60)
        seen.add(address)
        return view[address:address + length]
    write_vmcore(sys.argv[1], b"", [(0, size)], read)
""")


def test_a_killed_writer_leaves_nothing_under_the_final_name(tmp_path: Path) -> None:
    path = tmp_path / "vmcore"
    child = subprocess.Popen([sys.executable, "-c", KILLED_WRITER.format(root=str(ROOT)),
                              str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "midway\n"
        assert partial_files(path)[0].stat().st_size > 32 << 20  # it was well under way
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    assert not path.exists()


# ---------------------------------------------------------------------------------------------
# Malformed files


def _valid_bytes(vmcore: Path) -> bytes:
    return vmcore.read_bytes()


def _patched(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


def malformed_cases(data: bytes) -> dict[str, tuple[bytes, str]]:
    note_offset = struct.unpack_from(">Q", data, 64 + 8)[0]
    phnum = struct.unpack_from(">H", data, 56)[0]
    first_load_offset = struct.unpack_from(">Q", data, 64 + 56 + 8)[0]
    return {
        "empty": (b"", "empty file"),
        "random": (os.urandom(4096).replace(b"\x7f", b"\x00"), "not an ELF file"),
        "short header": (data[:40], "truncated ELF header"),
        "32-bit": (_patched(data, 4, "B", 1), "not a 64-bit ELF"),
        "little-endian": (_patched(data, 5, "B", 1), "not a big-endian"),
        "not a core": (_patched(data, 16, ">H", 2), "not an ELF core"),
        "x86": (_patched(data, 18, ">H", 62), "not an s390 core"),
        "phdrs cut": (data[:64 + 56 * 3], "program headers .* run past the end"),
        "phdrs beyond": (_patched(data, 32, ">Q", len(data) - 56 * phnum + 8),
                         "run past the end"),
        "notes cut": (data[:note_offset + 100], "PT_NOTE .* runs past the end"),
        "data cut": (data[:first_load_offset + PAGE], "PT_LOAD .* runs past the end"),
        "note overrun": (_patched(data, note_offset + 4, ">I", 0x10000), "overruns the notes"),
    }


def test_every_malformed_vmcore_is_one_clear_dump_format_error(tmp_path: Path,
                                                              vmcore: Path) -> None:
    for name, (data, problem) in malformed_cases(_valid_bytes(vmcore)).items():
        path = tmp_path / name.replace(" ", "-")
        path.write_bytes(data)
        with pytest.raises(DumpFormatError) as caught:
            read_vmcore(path)
        assert re.search(problem, str(caught.value)), (name, str(caught.value))
        assert "\n" not in str(caught.value), name


def test_a_real_s390x_executable_is_not_a_core() -> None:
    with pytest.raises(DumpFormatError, match="not an ELF core file"):
        read_vmcore(ROOT / "assets" / "bin" / "kernel.elf")


def test_a_missing_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_vmcore(tmp_path / "nothing")
