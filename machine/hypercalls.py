"""The DumpLab hypercall (DIAG 0x500): console, machine info, block I/O, trace, and the host's
half of kexec -p, the kdump kernel's vmcore save, zipl -d and zgetdump.

These stand for the SCLP and channel I/O a real machine would use (docs/GUEST_ABI.md,
docs/FIDELITY.md). Arguments are real addresses of the calling CPU.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

from unicorn import Uc
from unicorn.s390x_const import UC_S390X_REG_R0

from machine.clock import TOD_PER_SECOND
from machine.cpu import Cpu
from machine.devices import BLOCK_SIZE, Device, DeviceError
from machine.dumptools import (
    ZGETDUMP_COPY,
    ZGETDUMP_FORMATS,
    ZGETDUMP_INFO,
    ZIPL_INSTALL_DUMPER,
    ZIPL_INSTALL_KDUMP,
    ZIPL_QUERY,
    DumpToolError,
)
from machine.storage import StorageError

if TYPE_CHECKING:
    from machine.lpar import Lpar

GPR = [UC_S390X_REG_R0 + i for i in range(16)]

CONSOLE_WRITE = 1
CONSOLE_READ = 2
MACHINE_INFO = 3
BLOCK_INFO = 4
BLOCK_READ = 5
BLOCK_WRITE = 6
TRACE = 7
KEXEC_PREPARE = 8
VMCORE_SAVE = 9
ZIPL_DUMP = 10
ZGETDUMP = 11

ERR_NO_DEVICE = -1
ERR_OUT_OF_RANGE = -2
ERR_IO = -3
ERR_BAD_BUFFER = -4
MAX_FILE_NAME = 64
ERR_UNKNOWN_FUNCTION = -38  # ENOSYS, as KVM's hypercall answers an unknown function

MAX_CONSOLE_WRITE = 4096
MAX_BLOCK_COUNT = 4096  # 16 MiB per call


def _signed(value: int) -> int:
    return value & (1 << 64) - 1


class Hypercalls:
    """Handles DIAG 0x500 for the LPAR."""

    def __init__(self, lpar: Lpar) -> None:
        self.lpar = lpar
        self._functions = {
            CONSOLE_WRITE: self._console_write,
            CONSOLE_READ: self._console_read,
            MACHINE_INFO: self._machine_info,
            BLOCK_INFO: self._block_info,
            BLOCK_READ: self._block_read,
            BLOCK_WRITE: self._block_write,
            TRACE: self._trace,
            KEXEC_PREPARE: self._kexec_prepare,
            VMCORE_SAVE: self._vmcore_save,
            ZIPL_DUMP: self._zipl_dump,
            ZGETDUMP: self._zgetdump,
        }

    def call(self, uc: Uc, cpu: Cpu) -> None:
        function = uc.reg_read(GPR[1])
        args = [uc.reg_read(GPR[i]) for i in range(2, 7)]
        handler = self._functions.get(function)
        result = handler(uc, cpu, *args) if handler else ERR_UNKNOWN_FUNCTION
        uc.reg_write(GPR[2], _signed(result))

    # Storage through the CPU's prefix: buffers are real addresses.
    def _read(self, cpu: Cpu, real: int, length: int) -> bytes:
        if real < 0x2000 or cpu.prefix <= real < cpu.prefix + 0x2000:
            return bytes(self.lpar.storage.read(cpu.real_to_absolute(real + i), 1)[0] for i in range(length))
        return self.lpar.storage.read(real, length)

    def _view(self, cpu: Cpu, real: int, length: int) -> bytes | memoryview:
        """Like _read, without a copy when no prefixing is involved (big dump writes)."""
        if real < 0x2000 or real + length > cpu.prefix and real < cpu.prefix + 0x2000:
            return self._read(cpu, real, length)
        return self.lpar.storage.view[real:real + length]

    def _write(self, cpu: Cpu, real: int, data: bytes) -> None:
        if real < 0x2000 or cpu.prefix <= real < cpu.prefix + 0x2000:
            for i, byte in enumerate(data):
                self.lpar.storage.write(cpu.real_to_absolute(real + i), bytes([byte]))
            return
        self.lpar.storage.write(real, data)

    def _console_write(self, uc: Uc, cpu: Cpu, address: int, length: int, level: int, *_: int) -> int:
        length = min(length, MAX_CONSOLE_WRITE)
        try:
            text = self._read(cpu, address, length)
        except StorageError:
            return ERR_BAD_BUFFER
        self.lpar.guest_console_output(cpu, text.decode("ascii", errors="replace"), min(level, 7))
        return 0

    def _console_read(self, uc: Uc, cpu: Cpu, address: int, size: int, *_: int) -> int:
        command = self.lpar.next_os_command()
        if command is None:
            return -1
        text, priority = command
        data = text.encode("ascii", errors="replace")[: max(size - 1, 0)]
        try:
            self._write(cpu, address, data + b"\0")
        except StorageError:
            return ERR_BAD_BUFFER
        uc.reg_write(GPR[3], 1 if priority else 0)
        return len(data)

    def _machine_info(self, uc: Uc, cpu: Cpu, address: int, *_: int) -> int:
        lpar = self.lpar
        info = struct.pack(">QIIQII", lpar.storage.size, len(lpar.cpus), lpar.cpus[0].address,
                           TOD_PER_SECOND,
                           lpar.ipl_devno or 0, 0)
        try:
            self._write(cpu, address, info)
        except StorageError:
            return ERR_BAD_BUFFER
        return 0

    def _block_info(self, uc: Uc, cpu: Cpu, devno: int, *_: int) -> int:
        device = self.lpar.devices.get(devno)
        return device.blocks if device else ERR_NO_DEVICE

    def _block_read(self, uc: Uc, cpu: Cpu, devno: int, block: int, count: int, address: int, *_: int) -> int:
        def transfer(device: Device) -> None:
            self._write(cpu, address, device.read_blocks(block, count))
        return self._block_io(devno, block, count, address, transfer)

    def _block_write(self, uc: Uc, cpu: Cpu, devno: int, block: int, count: int, address: int, *_: int) -> int:
        def transfer(device: Device) -> None:
            length = count * BLOCK_SIZE
            data = self._view(cpu, address, length)
            nonzero = None
            if isinstance(data, memoryview) and address % BLOCK_SIZE == 0:
                # Straight from storage: its page scan says where the data is, and only that
                # is written (the dump device stays sparse).
                nonzero = [(a - address, b - address)
                           for a, b in self.lpar.storage.nonzero_runs(address, address + length)]
            device.write_blocks(block, data, nonzero)
            # Write-through, as a channel program ends when the device has the data: the
            # dumper's time is then the disk's at every size, not the page cache's for small
            # dumps and the disk's for large ones.
            device.flush()
        return self._block_io(devno, block, count, address, transfer)

    def _block_io(self, devno: int, block: int, count: int, address: int,
                  transfer: Callable[[Device], None]) -> int:
        """Check a block I/O request like a channel program would be, then run it."""
        device = self.lpar.devices.get(devno)
        if device is None:
            return ERR_NO_DEVICE
        if count > MAX_BLOCK_COUNT or block + count > device.blocks:
            return ERR_OUT_OF_RANGE
        try:
            self.lpar.storage.check(address, count * BLOCK_SIZE)
            transfer(device)
        except StorageError:
            return ERR_BAD_BUFFER
        except (DeviceError, OSError):
            return ERR_IO
        return 0

    def _kexec_prepare(self, uc: Uc, cpu: Cpu, base: int, size: int, staging: int,
                       staging_size: int, descriptors: int) -> int:
        return self.lpar.kdump.prepare(cpu, base, size, staging, staging_size, descriptors)

    def _vmcore_save(self, uc: Uc, cpu: Cpu, header: int, size: int, level: int, *_: int) -> int:
        return self.lpar.kdump.vmcore_save(cpu, header, size, level)

    def _zipl_dump(self, uc: Uc, cpu: Cpu, op: int, devno: int, *_: int) -> int:
        tools = self.lpar.dump_tools
        kinds = {ZIPL_INSTALL_DUMPER: "dumper", ZIPL_INSTALL_KDUMP: "kdump"}
        try:
            if op == ZIPL_QUERY:
                return tools.device_state(devno)
            if op in kinds:
                return tools.install(cpu.address, devno, kinds[op])
        except DumpToolError as exc:
            return exc.code
        except OSError:
            return ERR_IO
        return ERR_UNKNOWN_FUNCTION

    def _zgetdump(self, uc: Uc, cpu: Cpu, op: int, devno: int, address: int, length: int,
                  out_format: int) -> int:
        tools = self.lpar.dump_tools
        try:
            if op == ZGETDUMP_INFO:
                self._write(cpu, address, tools.info(devno))
                return 0
            if op == ZGETDUMP_COPY and out_format in ZGETDUMP_FORMATS and length <= MAX_FILE_NAME:
                name = self._read(cpu, address, length).decode("ascii", errors="replace")
                return tools.copy(cpu.address, devno, name, ZGETDUMP_FORMATS[out_format])
        except DumpToolError as exc:
            return exc.code
        except StorageError:
            return ERR_BAD_BUFFER
        except OSError:
            return ERR_IO
        return ERR_UNKNOWN_FUNCTION

    def _trace(self, uc: Uc, cpu: Cpu, event_id: int, *args: int) -> int:
        self.lpar.guest_trace(cpu, event_id, tuple(args[:4]))
        return 0
