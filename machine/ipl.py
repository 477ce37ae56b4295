"""Loading programs: the HMC Load (IPL) and DIAG 308 (re-IPL, reset and load from absolute 0).

The real IPL reads a boot record with a channel program; here the host reads the device's boot
record (machine/devices.py) and writes the program's segments into storage, which is what the
zipl boot loader ends up doing (S390_FACTS.md §3.3, §7.1).
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from unicorn import Uc
from unicorn.s390x_const import UC_S390X_REG_R0

from machine.images import Image, parse_image

if TYPE_CHECKING:
    from machine.cpu import Cpu
    from machine.lpar import Lpar

GPR = [UC_S390X_REG_R0 + i for i in range(16)]

IPL_PSW_ESA_BITS = 0x0008000080000000  # bit 12 (ESA format) and 31-bit addressing
LINUX_ENTRY = 0x10000
PARM_IPL_DEVICE = 0x10400
PARM_COMMAND_LINE = 0x10480
COMMAND_LINE_SIZE = 896

# DIAG 308 subcodes (S390_FACTS.md §3.3) and return codes.
DIAG308_CLEAR_RESET = 0
DIAG308_LOAD_NORMAL_RESET = 1
DIAG308_LOAD_CLEAR = 3
DIAG308_LOAD_NORMAL_DUMP = 4
DIAG308_SET = 5
DIAG308_STORE = 6
DIAG308_LOAD_NORMAL = 7
DIAG308_RC_OK = 0x0001
DIAG308_RC_NOCONFIG = 0x0102

# IPL parameter block: 8-byte list header, then a CCW block (type 2) whose device number is
# at +102 and load parameter at +8 within the block.
IPIB_MAX = 4096
IPIB_PBT_CCW = 2
_IPIB_BLOCK = 8
_IPIB_PBT = _IPIB_BLOCK + 4
_IPIB_LOADPARM = _IPIB_BLOCK + 8
_IPIB_DEVNO = _IPIB_BLOCK + 102


def ipl_psw(entry: int) -> int:
    """The 8-byte ESA/390 PSW the IPL leaves at absolute 0."""
    return IPL_PSW_ESA_BITS | entry


def command_line(kernel_parms: str, parm: str) -> str:
    words = kernel_parms.split()
    if parm:
        words.append(f"loadparm={parm}")
    return " ".join(words)


def ipib_for(devno: int, parm: str = "") -> bytes:
    """A CCW IPL parameter block naming devno (what `chreipl ccw` would set)."""
    block = bytearray(_IPIB_DEVNO + 2 + 6)
    struct.pack_into(">I", block, 0, len(block))
    block[7] = 1  # version
    struct.pack_into(">I", block, _IPIB_BLOCK, len(block) - _IPIB_BLOCK)
    block[_IPIB_PBT] = IPIB_PBT_CCW
    block[_IPIB_LOADPARM:_IPIB_LOADPARM + 8] = parm.upper().encode("ascii", "replace")[:8].ljust(8, b" ")
    struct.pack_into(">H", block, _IPIB_DEVNO, devno)
    return bytes(block)


def ipib_devno(ipib: bytes) -> int | None:
    if len(ipib) < _IPIB_DEVNO + 2 or ipib[_IPIB_PBT] != IPIB_PBT_CCW:
        return None
    return struct.unpack_from(">H", ipib, _IPIB_DEVNO)[0]


class IplControl:
    """IPL and DIAG 308 for one LPAR."""

    def __init__(self, lpar: Lpar) -> None:
        self.lpar = lpar
        self.ipib: bytes | None = None

    def place_program(self, image: Image, devno: int, parm: str) -> None:
        """Write the program into storage as the boot loader would, plus the IPL PSW."""
        storage = self.lpar.storage
        for segment in image.segments:
            storage.write(segment.address, segment.data)
            if segment.memsize > len(segment.data):
                storage.write(segment.address + len(segment.data), bytes(segment.memsize - len(segment.data)))
        storage.put_u64(0, ipl_psw(image.entry))
        if image.entry == LINUX_ENTRY:
            storage.put_u64(PARM_IPL_DEVICE, devno)
            line = command_line(self.lpar.profile.kernel_parms_for_boot(), parm).encode()
            storage.write(PARM_COMMAND_LINE, line[: COMMAND_LINE_SIZE - 1].ljust(COMMAND_LINE_SIZE, b"\0"))

    def read_program(self, devno: int) -> tuple[Image, bool]:
        """The program on a device's boot record and whether it is a dump program."""
        program = self.lpar.devices[devno].boot_program()
        return parse_image(program.elf, program.name), program.is_dump_program

    # --- DIAG 308 -------------------------------------------------------------------------
    def diag308(self, uc: Uc, cpu: Cpu, r1: int, r3: int) -> None:
        subcode = uc.reg_read(GPR[r3]) & 0xFFFF
        rc_register = GPR[(r1 + 1) % 16]
        if subcode == DIAG308_SET:
            uc.reg_write(rc_register, self._set_ipib(cpu, uc.reg_read(GPR[r1])))
        elif subcode == DIAG308_STORE:
            uc.reg_write(rc_register, self._store_ipib(cpu, uc.reg_read(GPR[r1])))
        elif subcode in (DIAG308_CLEAR_RESET, DIAG308_LOAD_NORMAL_RESET):
            self.lpar.defer(lambda: self.lpar.reset_and_load_from_zero(cpu, clear=subcode == DIAG308_CLEAR_RESET))
        elif subcode in (DIAG308_LOAD_CLEAR, DIAG308_LOAD_NORMAL, DIAG308_LOAD_NORMAL_DUMP):
            devno = ipib_devno(self.ipib) if self.ipib else None
            if devno is None or devno not in self.lpar.devices:
                uc.reg_write(rc_register, DIAG308_RC_NOCONFIG)
                return
            clear = subcode == DIAG308_LOAD_CLEAR
            dump = subcode == DIAG308_LOAD_NORMAL_DUMP
            self.lpar.defer(lambda: self.lpar.reipl(devno, clear=clear, store_status=dump))
        else:
            # Unknown subcode: specification exception on the DIAG (the hook already moved the PC).
            self.lpar.program_interruption(uc, cpu, 0x06, 4, self.lpar.current_pc(uc) - 4)

    def _set_ipib(self, cpu: Cpu, real: int) -> int:
        try:
            absolute = cpu.real_to_absolute(real)
            length = self.lpar.storage.u32(absolute)
            if not 8 < length <= IPIB_MAX:
                return DIAG308_RC_NOCONFIG
            self.ipib = self.lpar.storage.read(absolute, length)
        except ValueError:
            return DIAG308_RC_NOCONFIG
        return DIAG308_RC_OK

    def _store_ipib(self, cpu: Cpu, real: int) -> int:
        if self.ipib is None:
            return DIAG308_RC_NOCONFIG
        try:
            self.lpar.storage.write(cpu.real_to_absolute(real), self.ipib)
        except ValueError:
            return DIAG308_RC_NOCONFIG
        return DIAG308_RC_OK
