"""The host's part in kdump: the `kexec -p` tool (KEXEC_PREPARE), what the host learns from
the purgatory and the kdump kernel (their trace hypercalls, each check recomputed here), and
the save step (VMCORE_SAVE, the makedumpfile role) that writes the vmcore.
"""

from __future__ import annotations

import datetime
import hashlib
import struct
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from machine import kexec
from machine.checksums import cksm
from machine.clock import ACTIVATION_TIME
from machine.events import (
    CheckEvent,
    DumpProgressEvent,
    DumpWrittenEvent,
    ErrorEvent,
    KdumpBootEvent,
    KexecEvent,
    NotesSavedEvent,
    PurgatoryEvent,
    SegmentProgressEvent,
    StageEvent,
    StoreStatusEvent,
    SwapProgressEvent,
)
from machine.formats.common import DumpFormatError
from machine.formats.elfcore import write_vmcore
from machine.formats.select import swap_run_end, undo_swap
from machine.profile import KDUMP_FAILURE_ACTIONS
from machine.storage import Storage, StorageError
from machine.store_status import capture

if TYPE_CHECKING:
    from machine.cpu import Cpu
    from machine.lpar import Lpar

OS_INFO_POINTER = 0xE18
OS_INFO_MAGIC = 0x4F53494E464F535A
OS_INFO_PURGATORY_ENTRY = 3
OLDMEM_BASE = 0x10418
OLDMEM_SIZE = 0x10420

ERR_NO_IMAGE = -1
ERR_STAGING = -2
ERR_BAD_HEADER = -3
ERR_IO = -5

CHECK_OS_INFO, CHECK_PURGATORY_CKSM, CHECK_SEGMENT_SHA256 = 1, 2, 3
KDUMP_STEPS = {1: "booted", 2: "header checked", 3: "ready", 4: "saved", 5: "save failed"}
KDUMP_CHECKS = {1: "ELF core header", 2: "old os_info checksum", 3: "VMCOREINFO note"}
CRASH_STEPS = {1: "kdump not loaded", 2: "purgatory verify", 3: "purgatory load"}

_PHDR = struct.Struct(">IIQQQQQQ")


class OldMemory:
    """Old memory as the kdump kernel presents it: [0, OLDMEM_SIZE) lives at OLDMEM_BASE
    after the swap and the crashkernel region holds the kdump system, so reads undo the swap
    (the same rule as `dumplab inspect --select prod`, machine/formats/select.py)."""

    def __init__(self, storage: Storage, base: int, size: int) -> None:
        self.storage, self.view, self.base, self.size = storage, storage.view, base, size

    def translate(self, old: int) -> int:
        return undo_swap(old, self.base, self.size)

    def _run_end(self, old: int) -> int:
        """End of the stretch from old that maps contiguously."""
        return swap_run_end(old, self.base, self.size, len(self.view))

    def nonzero_runs(self, start: int, end: int) -> list[tuple[int, int]]:
        """The runs of non-zero pages of old memory [start, end), from storage's page scan
        of each stretch the swap keeps contiguous."""
        runs: list[tuple[int, int]] = []
        while start < end:
            stop = min(end, self._run_end(start))
            shift = start - self.translate(start)
            for a, b in self.storage.nonzero_runs(start - shift, stop - shift):
                if runs and runs[-1][1] == a + shift:
                    runs[-1] = (runs[-1][0], b + shift)
                else:
                    runs.append((a + shift, b + shift))
            start = stop
        return runs

    def read(self, address: int, length: int) -> bytes | memoryview:
        end = address + length
        if end <= self._run_end(address):
            start = self.translate(address)
            return self.view[start:start + length]
        pieces = []
        while address < end:
            stop = min(end, self._run_end(address))
            start = self.translate(address)
            pieces.append(bytes(self.view[start:start + stop - address]))
            address = stop
        return b"".join(pieces)


class KdumpHost:
    """kdump as the host sees it, for one LPAR."""

    def __init__(self, lpar: Lpar) -> None:
        self.lpar = lpar
        self.image: kexec.CrashImage | None = None
        self.vmcores = 0
        # The instructor's `fault kdump-save-fails`: the next VMCORE_SAVE finds its target full.
        self.fail_next_save = False

    def _stage(self, cpu: Cpu | None, stage: str, status: str, detail: str = "") -> None:
        self.lpar.publish(StageEvent(t=self.lpar.clock.now, cpu=cpu.address if cpu else None,
                                     stage=stage, status=status, detail=detail))

    # --- kexec -p ------------------------------------------------------------------------
    def prepare(self, cpu: Cpu, crash_base: int, crash_size: int, staging: int,
                staging_size: int, descriptors: int) -> int:
        """KEXEC_PREPARE: build the crash image and put it in the kernel's staging buffer."""
        profile = self.lpar.profile
        try:
            settings = kexec.KdumpSettings(profile.dump_level, profile.kdump_reipl,
                                           profile.kdump_failure, profile.dump_devno)
            image = kexec.build_crash_image(crash_base, crash_size, self.lpar.storage.size,
                                            len(self.lpar.cpus), settings)
            buffer, table = kexec.stage(image, staging_size)
            self.lpar.storage.write(cpu.real_to_absolute(staging), buffer)
            self.lpar.storage.write(cpu.real_to_absolute(descriptors), table)
        except kexec.KexecError as exc:
            self.lpar.publish(ErrorEvent(t=self.lpar.clock.now, cpu=cpu.address, message=f"kexec: {exc}"))
            return ERR_STAGING
        except (StorageError, FileNotFoundError) as exc:
            self.lpar.publish(ErrorEvent(t=self.lpar.clock.now, cpu=cpu.address, message=f"kexec: {exc}"))
            return ERR_NO_IMAGE
        self.image = image
        return len(image.segments)

    def loaded(self, cpu: Cpu, args: tuple[int, ...]) -> None:
        loaded, segments, entry = bool(args[0]), args[1], args[2]
        if loaded and self.image is not None:
            self.lpar.set_kexec_intercepts(self.image.purgatory_intercepts())
        else:
            self.lpar.set_kexec_intercepts([])
        self.lpar.publish(KexecEvent(t=self.lpar.clock.now, cpu=cpu.address, loaded=loaded,
                                     segments=segments, entry=entry))
        self._stage(cpu, "kexec-load", "done", f"{segments} segments" if loaded else "unloaded")

    # --- the kernel's crash path -------------------------------------------------------------
    def crash_kexec(self, cpu: Cpu, args: tuple[int, ...]) -> None:
        step, rc = args[0], args[2]
        if step == 1:
            self._stage(cpu, "crash-kexec", "failed", "no kdump kernel loaded")
        elif step == 2 and rc:
            self._stage(cpu, "crash-kexec", "failed", "purgatory verify failed: kdump not possible")
        elif step == 3:
            self._stage(cpu, "crash-kexec", "done", "status stored; purgatory load mode")

    def status_stored(self, cpu: Cpu, args: tuple[int, ...]) -> None:
        """The CPU stored its own status by software: capture its registers right here, at
        the instruction its stored PSW names, to compare with what it wrote."""
        status = capture(cpu)
        self.lpar.publish(StoreStatusEvent(t=self.lpar.clock.now, cpu=cpu.address, address=args[0],
                                           by="self", status=status.to_dict()))

    # --- the purgatory -------------------------------------------------------------------------
    def purgatory_enter(self, cpu: Cpu, args: tuple[int, ...]) -> None:
        mode = "verify" if args[0] == 0 else "load"
        self._stage(cpu, f"purgatory-{mode}", "running", f"purgatory at {args[1]:#x}")

    def purgatory_check(self, cpu: Cpu, args: tuple[int, ...]) -> None:
        kind, index, guest_ok, value = args
        checker = {CHECK_OS_INFO: self._check_os_info, CHECK_PURGATORY_CKSM: self._check_purgatory,
                   CHECK_SEGMENT_SHA256: self._check_segment}.get(kind)
        if checker is None:
            return
        what, expected, computed, ok, guest_value = checker(cpu, index, value)
        self.lpar.publish(CheckEvent(t=self.lpar.clock.now, cpu=cpu.address, what=what,
                                     expected=expected, computed=computed, ok=ok,
                                     guest_ok=bool(guest_ok), guest_computed=guest_value))

    def _os_info_page(self) -> tuple[int, bytes] | None:
        storage = self.lpar.storage
        address = storage.u64(OS_INFO_POINTER)
        if not address or address % 4096 or address + 4096 > storage.size:
            return None
        return address, storage.read(address, 4096)

    def _check_os_info(self, cpu: Cpu, index: int, value: int) -> tuple[str, str, str, bool, str]:
        found = self._os_info_page()
        if found is None:
            return "os_info checksum", "os_info", "no valid pointer at 0xE18", False, f"{value:08x}"
        _, page = found
        stored = struct.unpack_from(">I", page, 8)[0]
        computed = cksm(page[0x0C:])
        magic_ok = struct.unpack_from(">Q", page)[0] == OS_INFO_MAGIC
        shown = f"{computed:08x}" + ("" if magic_ok else " (bad magic)")
        return ("os_info checksum", f"{stored:08x}", shown, magic_ok and stored == computed,
                f"{value & 0xFFFFFFFF:08x}")

    def _check_purgatory(self, cpu: Cpu, index: int, value: int) -> tuple[str, str, str, bool, str]:
        found = self._os_info_page()
        expected = struct.unpack_from(">I", found[1], 0x20 + 20 * OS_INFO_PURGATORY_ENTRY + 16)[0] if found else 0
        computed = None
        if self.image is not None:
            segment = self.image.segment("purgatory")
            computed = cksm(self.lpar.storage.read(segment.mem, self.image.purgatory_checked_size))
        shown = f"{computed:08x}" if computed is not None else "unknown"
        return ("purgatory checksum", f"{expected:08x}", shown, computed == expected,
                f"{value & 0xFFFFFFFF:08x}")

    def _check_segment(self, cpu: Cpu, index: int, value: int) -> tuple[str, str, str, bool, str]:
        storage = self.lpar.storage
        name = self.image.hashed[index].name if self.image and index < len(self.image.hashed) else "?"
        region = self._purgatory_region(index)
        if region is None:
            return f"segment {index} ({name}) SHA-256", "?", "?", False, ""
        start, length, digest = region
        computed = hashlib.sha256(storage.view[start:start + length]).hexdigest()
        try:
            guest_digest = storage.read(cpu.real_to_absolute(value), 32).hex()
        except StorageError:
            guest_digest = ""
        return (f"segment {index} ({name}) SHA-256", digest.hex(), computed, computed == digest.hex(),
                guest_digest)

    def _purgatory_region(self, index: int) -> tuple[int, int, bytes] | None:
        """Region index of the digest table as it is now in the purgatory's data."""
        if self.image is None:
            return None
        info = self.image.segment("purgatory").mem + self.image.purgatory.symbols["purgatory_info"]
        at = info + kexec._PURGATORY_INFO.size + index * kexec._SHA_REGION.size
        start, length, digest = kexec._SHA_REGION.unpack(self.lpar.storage.read(at, kexec._SHA_REGION.size))
        if start + length > self.lpar.storage.size:
            return None
        return start, length, digest

    def segment_progress(self, cpu: Cpu, args: tuple[int, ...]) -> None:
        """The purgatory hashed args[1] of the args[2] bytes of segment args[0] (at args[3])."""
        index, done, total, address = args
        name = self.image.hashed[index].name if self.image and index < len(self.image.hashed) else "?"
        self.lpar.publish(SegmentProgressEvent(t=self.lpar.clock.now, cpu=cpu.address, index=index,
                                               name=name, done=done, total=total, address=address))

    def purgatory_result(self, cpu: Cpu, args: tuple[int, ...]) -> None:
        mode = "verify" if args[0] == 0 else "load"
        result = "good" if args[1] == 0 else "bad"
        self.lpar.publish(PurgatoryEvent(t=self.lpar.clock.now, cpu=cpu.address, mode=mode, result=result))
        detail = "every check passed" if result == "good" else "a check failed"
        self._stage(cpu, f"purgatory-{mode}", "done" if result == "good" else "failed", detail)

    def notes_saved(self, cpu: Cpu, args: tuple[int, ...]) -> None:
        pid, prefix, address, size = args
        if pid == 1:
            self._stage(cpu, "notes", "running", "saving every CPU's registers into the ELF notes")
        self.lpar.publish(NotesSavedEvent(t=self.lpar.clock.now, cpu=cpu.address, pid=pid,
                                          prefix=prefix, address=address, size=size))

    def enter_kdump(self, cpu: Cpu, args: tuple[int, ...]) -> None:
        """The purgatory jumps to the kdump kernel's entry where kexec put it (crash_base +
        0x10010): the kernel's head swaps memory itself, running from there and from its data
        mover at 0x4000, so the host emulates its instructions at those places; from the
        link addresses once the swap has brought it down."""
        entry, base = args[0], args[1]
        self._stage(cpu, "notes", "done")
        if self.image is None:
            return
        self.lpar.enter_program(self.image.kdump)
        if entry == kexec.KDUMP_ENTRY:
            self._stage(cpu, "kdump-boot", "running", f"entering the kdump kernel at {entry:#x}")
        else:
            self.lpar.set_kexec_intercepts(kexec.unswapped_kdump_intercepts(self.image.kdump, base))

    def swap(self, cpu: Cpu, args: tuple[int, ...]) -> None:
        """The kdump kernel's head swaps [0, size) with [base, base + size): 1 start, 2 done."""
        step, base, size = args[0], args[1], args[2]
        if step == 1:
            self._stage(cpu, "swap", "running", f"[0, {size:#x}) <-> [{base:#x}, {base + size:#x})")
        else:
            self.lpar.set_kexec_intercepts([])
            self._stage(cpu, "swap", "done", f"OLDMEM_BASE={base:#x} OLDMEM_SIZE={size:#x}")
            self._stage(cpu, "kdump-boot", "running", f"entering the kdump kernel at {kexec.KDUMP_ENTRY:#x}")

    def swap_progress(self, cpu: Cpu, args: tuple[int, ...]) -> None:
        self.lpar.publish(SwapProgressEvent(t=self.lpar.clock.now, cpu=cpu.address, done=args[0],
                                            total=args[1]))

    # --- the kdump kernel -------------------------------------------------------------------
    def kdump_boot(self, cpu: Cpu, args: tuple[int, ...]) -> None:
        step = KDUMP_STEPS.get(args[0], str(args[0]))
        detail = {
            "booted": f"OLDMEM_BASE={args[1]:#x} OLDMEM_SIZE={args[2]:#x} elfcorehdr={args[3]:#x}",
            "header checked": f"{args[1]} CPUs in the notes",
            "ready": "vmcore ready",
            "saved": "vmcore saved",
            "save failed": "failure action: " + (KDUMP_FAILURE_ACTIONS[args[1]]
                                                if args[1] < len(KDUMP_FAILURE_ACTIONS) else "?"),
        }.get(step, "")
        self.lpar.publish(KdumpBootEvent(t=self.lpar.clock.now, cpu=cpu.address, step=step, detail=detail))
        if step == "ready":
            self._stage(cpu, "kdump-boot", "done", detail)

    def kdump_check(self, cpu: Cpu, args: tuple[int, ...]) -> None:
        what = KDUMP_CHECKS.get(args[0], str(args[0]))
        ok = bool(args[1])
        self.lpar.publish(CheckEvent(t=self.lpar.clock.now, cpu=cpu.address, what=what,
                                     expected="valid", computed="valid" if ok else "invalid",
                                     ok=ok, guest_ok=ok))

    # --- the save step (makedumpfile's role) ------------------------------------------------------
    def vmcore_save(self, cpu: Cpu, header: int, _size: int, dump_level: int) -> int:
        """Write the vmcore from the kdump kernel's view of old memory; 0 or an error."""
        storage = self.lpar.storage
        try:
            notes, ranges = self._read_header(header)
        except (DumpFormatError, StorageError, struct.error) as exc:
            self.lpar.publish(ErrorEvent(t=self.lpar.clock.now, cpu=cpu.address, message=f"vmcore: {exc}"))
            return ERR_BAD_HEADER
        old = OldMemory(storage, storage.u64(OLDMEM_BASE), storage.u64(OLDMEM_SIZE))
        path = self._vmcore_path()
        self._stage(cpu, "vmcore", "running", f"writing {path.name}")
        if self.fail_next_save:
            return self._injected_save_failure(cpu, path)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            result = write_vmcore(path, notes, ranges, old.read, filter_zero_pages=dump_level > 0,
                                  progress=self._progress(cpu), nonzero_runs=old.nonzero_runs)
        except OSError as exc:
            self.lpar.publish(ErrorEvent(t=self.lpar.clock.now, cpu=cpu.address,
                                         message=f"vmcore: cannot write {path}: {exc.strerror}"))
            self._stage(cpu, "vmcore", "failed", str(exc.strerror))
            return ERR_IO
        except ValueError as exc:  # the header's ranges lie outside storage or are unaligned
            self.lpar.publish(ErrorEvent(t=self.lpar.clock.now, cpu=cpu.address, message=f"vmcore: {exc}"))
            self._stage(cpu, "vmcore", "failed", "bad memory ranges in the ELF core header")
            return ERR_BAD_HEADER
        self.vmcores += 1
        self.lpar.publish(DumpWrittenEvent(
            t=self.lpar.clock.now, cpu=cpu.address, path=str(result.path), format="elf",
            bytes=result.bytes_written, seconds=round(result.seconds, 3),
            pages_written=result.pages_written, pages_skipped=result.pages_skipped))
        self._stage(cpu, "vmcore", "done", f"{path.name}: {result.bytes_written} bytes")
        return 0

    def _injected_save_failure(self, cpu: Cpu, path: Path) -> int:
        """The injected fault: the target is full before the first byte, as makedumpfile
        finds it; nothing is written, and the kdump kernel is told of an I/O error."""
        self.fail_next_save = False
        reason = "No space left on device (injected)"
        self.lpar.publish(ErrorEvent(t=self.lpar.clock.now, cpu=cpu.address,
                                     message=f"vmcore: cannot write {path}: {reason}"))
        self._stage(cpu, "vmcore", "failed", reason)
        return ERR_IO

    def _progress(self, cpu: Cpu) -> Callable[[int, int], None]:
        def report(done: int, total: int) -> None:
            self.lpar.publish(DumpProgressEvent(t=self.lpar.clock.now, cpu=cpu.address, done=done, total=total))
        return report

    def _read_header(self, header: int) -> tuple[bytes, list[tuple[int, int]]]:
        storage = self.lpar.storage
        ident = storage.read(header, 64)
        if ident[:7] != b"\x7fELF\x02\x02\x01" or struct.unpack_from(">H", ident, 18)[0] != 22:
            raise DumpFormatError("the ELF core header is not an s390x ELF64 core")
        phoff, = struct.unpack_from(">Q", ident, 32)
        phnum, = struct.unpack_from(">H", ident, 56)
        if phoff != 64 or not 2 <= phnum <= 1024:
            raise DumpFormatError("the ELF core header's program headers are not where they must be")
        phdrs = [_PHDR.unpack(storage.read(header + 64 + 56 * i, 56)) for i in range(phnum)]
        note = phdrs[0]
        if note[0] != 4:
            raise DumpFormatError("the first program header is not PT_NOTE")
        notes = storage.read(note[2], note[5])
        ranges = [(p[4], p[4] + p[6]) for p in phdrs[1:] if p[0] == 1]
        return notes, ranges

    def _vmcore_path(self) -> Path:
        """dumps/vmcore-YYYYMMDD-HHMMSS from the virtual clock, so reruns name files alike.
        The directory is not created here: a save that fails must leave nothing behind."""
        when = ACTIVATION_TIME + datetime.timedelta(microseconds=self.lpar.clock.now // 1000)
        directory = self.lpar.workdir / "dumps"
        stem = f"vmcore-{when:%Y%m%d-%H%M%S}"
        path, n = directory / stem, 1
        while path.exists():
            n += 1
            path = directory / f"{stem}-{n}"
        return path
