"""ELF notes of an s390x kernel crash dump (vmcore): building them and reading them back.

Layouts, order and sizes are those of S390_FACTS.md §5.3/§5.4, confirmed byte for byte by the
real reference run (§6.3). A note is a 12-byte header (namesz, descsz, type: big-endian u32),
the name with its NUL padded to 4 bytes, then the desc padded to 4 bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from machine.formats.common import DumpFormatError
from machine.status import CpuStatus

NT_VMCOREINFO = 0  # the VMCOREINFO note's type; its name "VMCOREINFO" is what identifies it
NT_PRSTATUS = 1
NT_PRFPREG = 2
NT_PRPSINFO = 3
NT_S390_TIMER = 0x301
NT_S390_TODCMP = 0x302
NT_S390_TODPREG = 0x303
NT_S390_CTRS = 0x304
NT_S390_PREFIX = 0x305
NT_S390_VXRS_LOW = 0x309   # never written here (no vector registers), recognised when read
NT_S390_VXRS_HIGH = 0x30A

CORE = "CORE"
LINUX = "LINUX"
VMCOREINFO = "VMCOREINFO"

PRSTATUS_SIZE = 336
PRPSINFO_SIZE = 136
FPREGSET_SIZE = 136
CPU_NOTES_SIZE = 764  # the seven notes of one CPU without vector registers (§5.3)

# struct elf_prstatus on s390x (§5.4): offsets into the desc.
PR_PID = 32
PR_PSW = 112
PR_GPRS = 128
PR_ACRS = 256
PR_ORIG_GPR2 = 320

# struct elf_prpsinfo (§5.4): offsets into the desc.
PRPS_SNAME = 1
PRPS_FNAME = 40

NOTE_NAMES = {
    NT_PRSTATUS: "NT_PRSTATUS", NT_PRFPREG: "NT_PRFPREG", NT_PRPSINFO: "NT_PRPSINFO",
    NT_S390_TIMER: "NT_S390_TIMER", NT_S390_TODCMP: "NT_S390_TODCMP",
    NT_S390_TODPREG: "NT_S390_TODPREG", NT_S390_CTRS: "NT_S390_CTRS",
    NT_S390_PREFIX: "NT_S390_PREFIX", NT_S390_VXRS_LOW: "NT_S390_VXRS_LOW",
    NT_S390_VXRS_HIGH: "NT_S390_VXRS_HIGH",
}

_HEADER = struct.Struct(">III")
_U64 = (1 << 64) - 1


@dataclass(frozen=True)
class Note:
    """One ELF note: its name (without the NUL), type, desc bytes and file/buffer offset."""

    name: str
    type: int
    desc: bytes
    offset: int

    @property
    def size(self) -> int:
        """Bytes the note takes with its padding."""
        return _HEADER.size + _pad4(len(self.name) + 1) + _pad4(len(self.desc))


def _pad4(size: int) -> int:
    return (size + 3) & ~3


def pack_note(name: str | bytes, note_type: int, desc: bytes) -> bytes:
    """One note: header, NUL-terminated name padded to 4 bytes, desc padded to 4 bytes.

    namesz counts the NUL ("CORE" → 5, "LINUX" → 6, "VMCOREINFO" → 11); descsz is the desc
    length without padding (the VMCOREINFO text has no NUL, §6.5).
    """
    raw_name = (name.encode("ascii") if isinstance(name, str) else bytes(name)) + b"\0"
    return b"".join((
        _HEADER.pack(len(raw_name), len(desc), note_type),
        raw_name.ljust(_pad4(len(raw_name)), b"\0"),
        bytes(desc).ljust(_pad4(len(desc)), b"\0"),
    ))


def parse_notes(data: bytes | memoryview, base_offset: int = 0) -> list[Note]:
    """Every note in `data` (the contents of PT_NOTE segments), in order.

    `base_offset` is added to each note's offset (the file offset of `data`). A header of
    12 zero bytes ends the list, as the empty terminator note of some kernels does; trailing
    zero padding is accepted. Anything else that does not fit raises DumpFormatError.
    """
    view = memoryview(data).cast("B")
    notes: list[Note] = []
    offset = 0
    while offset < len(view):
        rest = view[offset:]
        if not any(rest[:_HEADER.size]):
            break  # an empty terminator note, or padding to the end
        if len(rest) < _HEADER.size:
            raise DumpFormatError(f"note at offset {base_offset + offset:#x} is truncated: "
                                  f"{len(rest)} bytes left of a 12-byte header")
        namesz, descsz, note_type = _HEADER.unpack_from(rest)
        desc_at = _HEADER.size + _pad4(namesz)
        if desc_at + descsz > len(rest):
            raise DumpFormatError(
                f"note at offset {base_offset + offset:#x} (namesz {namesz}, descsz {descsz:#x})"
                f" overruns the notes, which end at {base_offset + len(view):#x}")
        raw_name = bytes(rest[_HEADER.size:_HEADER.size + namesz]).rstrip(b"\0")
        notes.append(Note(raw_name.decode("latin-1"), note_type,
                          bytes(rest[desc_at:desc_at + descsz]), base_offset + offset))
        # The padding of the last note may be missing; min() keeps the loop from overshooting.
        offset += min(desc_at + _pad4(descsz), len(rest))
    return notes


def prpsinfo_note() -> bytes:
    """NT_PRPSINFO ("CORE", 136-byte elf_prpsinfo): pr_sname 'R', pr_fname "vmlinux", all
    else zero, as the kdump kernel writes it (§5.3, §6.3)."""
    desc = bytearray(PRPSINFO_SIZE)
    desc[PRPS_SNAME] = ord("R")
    desc[PRPS_FNAME:PRPS_FNAME + len(b"vmlinux")] = b"vmlinux"
    return pack_note(CORE, NT_PRPSINFO, bytes(desc))


def prstatus_desc(status: CpuStatus, pid: int) -> bytes:
    """The 336-byte s390x elf_prstatus: pr_pid at 32, PSW at 112, GPRs at 128, ACRs at 256,
    orig_gpr2 at 320 (0); every other field zero (signal info, times, pr_fpvalid)."""
    desc = bytearray(PRSTATUS_SIZE)
    struct.pack_into(">I", desc, PR_PID, pid)
    struct.pack_into(">QQ", desc, PR_PSW, status.psw_mask, status.psw_addr)
    struct.pack_into(">16Q", desc, PR_GPRS, *status.gprs)
    struct.pack_into(">16I", desc, PR_ACRS, *status.ars)
    return bytes(desc)


def cpu_notes(status: CpuStatus, pid: int) -> bytes:
    """The seven notes of one CPU, exactly as the kdump kernel writes them (764 bytes).

    This is the byte-for-byte reference for the guest purgatory/kdump kernel. All values are
    big-endian; "pad" bytes are zero. Offsets are from the start of the returned bytes.

    ======  ====  ===============  =====  ======  ===========================================
    offset  size  note             name   descsz  desc
    ======  ====  ===============  =====  ======  ===========================================
    0       356   NT_PRSTATUS (1)  CORE   0x150   elf_prstatus: +32 pr_pid u32 (= `pid`),
                                                  +112 PSW mask u64, +120 PSW address u64,
                                                  +128 GPR0-15 u64, +256 ACR0-15 u32,
                                                  +320 orig_gpr2 u64 = 0; the rest zero
    356     156   NT_PRFPREG (2)   CORE   0x88    +0 FPC u32, +4 pad u32, +8 FPR0-15 u64
    512     28    NT_S390_TIMER    LINUX  8       CPU timer u64
                  (0x301)
    540     28    NT_S390_TODCMP   LINUX  8       clock comparator as the save area holds it
                  (0x302)                         (0x1330: the comparator >> 8, top byte 0)
    568     24    NT_S390_TODPREG  LINUX  4       TOD programmable register u32
                  (0x303)
    592     148   NT_S390_CTRS     LINUX  0x80    CR0-15 u64
                  (0x304)
    740     24    NT_S390_PREFIX   LINUX  4       prefix register u32
                  (0x305)
    ======  ====  ===============  =====  ======  ===========================================

    Each note is: namesz u32 (CORE 5, LINUX 6), descsz u32, type u32, the name and its NUL
    padded to 8 bytes, then the desc (all desc sizes here are multiples of 4).
    """
    return b"".join((
        pack_note(CORE, NT_PRSTATUS, prstatus_desc(status, pid)),
        pack_note(CORE, NT_PRFPREG, struct.pack(">II16Q", status.fpc, 0, *status.fprs)),
        pack_note(LINUX, NT_S390_TIMER, struct.pack(">Q", status.cpu_timer & _U64)),
        pack_note(LINUX, NT_S390_TODCMP, struct.pack(">Q", (status.clock_comparator >> 8) & _U64)),
        pack_note(LINUX, NT_S390_TODPREG, struct.pack(">I", status.tod_programmable)),
        pack_note(LINUX, NT_S390_CTRS, struct.pack(">16Q", *status.crs)),
        pack_note(LINUX, NT_S390_PREFIX, struct.pack(">I", status.prefix)),
    ))


def vmcoreinfo_note(text: str | bytes) -> bytes:
    """The VMCOREINFO note: name "VMCOREINFO", type 0, the text without a NUL (§6.5)."""
    raw = text.encode("ascii") if isinstance(text, str) else bytes(text)
    return pack_note(VMCOREINFO, NT_VMCOREINFO, raw)


def vmcore_notes(statuses: Sequence[CpuStatus], vmcoreinfo: str | bytes | None) -> bytes:
    """The whole PT_NOTE contents of a kdump vmcore: PRPSINFO, the seven notes of each CPU in
    the given order with pr_pid 1, 2, ..., then VMCOREINFO if there is one. No terminator."""
    parts = [prpsinfo_note()]
    parts += [cpu_notes(status, pid) for pid, status in enumerate(statuses, start=1)]
    if vmcoreinfo is not None:
        parts.append(vmcoreinfo_note(vmcoreinfo))
    return b"".join(parts)


@dataclass(frozen=True)
class CpuNotes:
    """One CPU's registers as its notes hold them. `todcmp` is the clock comparator as stored
    (the comparator >> 8); `psw` is (mask, address)."""

    pid: int
    psw: tuple[int, int]
    gprs: tuple[int, ...]
    acrs: tuple[int, ...]
    fprs: tuple[int, ...] = (0,) * 16
    fpc: int = 0
    timer: int = 0
    todcmp: int = 0
    todpreg: int = 0
    ctrs: tuple[int, ...] = (0,) * 16
    prefix: int = 0

    def status(self) -> CpuStatus:
        """The same registers as a CpuStatus (its clock comparator is the full value)."""
        return CpuStatus(psw_mask=self.psw[0], psw_addr=self.psw[1], gprs=self.gprs,
                         crs=self.ctrs, ars=self.acrs, fprs=self.fprs, fpc=self.fpc,
                         prefix=self.prefix, cpu_timer=self.timer,
                         clock_comparator=self.todcmp << 8, tod_programmable=self.todpreg)

    @classmethod
    def from_status(cls, status: CpuStatus, pid: int) -> CpuNotes:
        """What cpu_notes(status, pid) would decode to."""
        return cls(pid=pid, psw=(status.psw_mask, status.psw_addr), gprs=tuple(status.gprs),
                   acrs=tuple(status.ars), fprs=tuple(status.fprs), fpc=status.fpc,
                   timer=status.cpu_timer & _U64, todcmp=(status.clock_comparator >> 8) & _U64,
                   todpreg=status.tod_programmable, ctrs=tuple(status.crs),
                   prefix=status.prefix)


def _expect_size(note: Note, *sizes: int) -> None:
    if len(note.desc) not in sizes:
        label = NOTE_NAMES.get(note.type, f"type {note.type:#x}")
        wanted = " or ".join(f"{size:#x}" for size in sizes)
        raise DumpFormatError(f"{label} note at offset {note.offset:#x} has descsz "
                              f"{len(note.desc):#x}, expected {wanted}")


def _decode_prstatus(note: Note) -> dict[str, object]:
    _expect_size(note, PRSTATUS_SIZE)
    return {
        "pid": struct.unpack_from(">I", note.desc, PR_PID)[0],
        "psw": struct.unpack_from(">QQ", note.desc, PR_PSW),
        "gprs": struct.unpack_from(">16Q", note.desc, PR_GPRS),
        "acrs": struct.unpack_from(">16I", note.desc, PR_ACRS),
    }


def _decode_cpu_note(note: Note) -> dict[str, object]:
    """The CpuNotes fields one per-CPU note (other than PRSTATUS) carries; {} for others."""
    if note.type == NT_PRFPREG and note.name == CORE:
        _expect_size(note, FPREGSET_SIZE)
        fpc, _pad, *fprs = struct.unpack(">II16Q", note.desc)
        return {"fpc": fpc, "fprs": tuple(fprs)}
    if note.name not in (CORE, LINUX):
        return {}  # kernels named the s390 notes CORE at times and LINUX at others (§5.3)
    if note.type in (NT_S390_TIMER, NT_S390_TODCMP):
        _expect_size(note, 8)
        key = "timer" if note.type == NT_S390_TIMER else "todcmp"
        return {key: int.from_bytes(note.desc, "big")}
    if note.type == NT_S390_TODPREG:
        _expect_size(note, 4, 8)  # u64 in ~4.8-5.19 kernels (§5.3)
        return {"todpreg": int.from_bytes(note.desc, "big")}
    if note.type == NT_S390_CTRS:
        _expect_size(note, 128)
        return {"ctrs": struct.unpack(">16Q", note.desc)}
    if note.type == NT_S390_PREFIX:
        _expect_size(note, 4)
        return {"prefix": int.from_bytes(note.desc, "big")}
    return {}


def cpus_from_notes(notes: Iterable[Note]) -> list[CpuNotes]:
    """The CPUs the notes describe, in note order: each NT_PRSTATUS starts a CPU and the
    per-CPU notes after it fill in its other registers (missing ones stay 0). Vector-register
    and unknown notes are skipped. A per-CPU note of the wrong size raises DumpFormatError."""
    cpus: list[dict[str, object]] = []
    for note in notes:
        if note.type == NT_PRSTATUS and note.name == CORE:
            cpus.append(_decode_prstatus(note))
        elif cpus and note.type != NT_PRPSINFO:
            cpus[-1].update(_decode_cpu_note(note))
    return [CpuNotes(**fields) for fields in cpus]  # type: ignore[arg-type]


def vmcoreinfo_text(notes: Iterable[Note]) -> str | None:
    """The text of the first VMCOREINFO note, or None. Trailing NULs are dropped."""
    for note in notes:
        if note.name == VMCOREINFO:
            return note.desc.rstrip(b"\0").decode("utf-8", "replace")
    return None
