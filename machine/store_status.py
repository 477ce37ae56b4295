"""Store status: the CPU's status taken from a running CPU (unicorn registers) into a save area."""

from __future__ import annotations

from machine.cpu import ARS, CRS, FPRS, GPRS, Cpu
from machine.status import AR_MODE_ID_ADDRESS, SAVE_AREA_ADDRESS, CpuStatus
from machine.storage import Storage


def capture(cpu: Cpu) -> CpuStatus:
    """The CPU's status as the host sees it now."""
    mask, address = cpu.psw
    return CpuStatus(
        psw_mask=mask,
        psw_addr=address,
        gprs=tuple(cpu.regs(GPRS)),
        crs=tuple(cpu.regs(CRS)),
        ars=tuple(v & 0xFFFFFFFF for v in cpu.regs(ARS)),
        fprs=tuple(cpu.regs(FPRS)),
        fpc=cpu.fpc,
        prefix=cpu.prefix,
        cpu_timer=cpu.cpu_timer & (1 << 64) - 1,
        clock_comparator=cpu.clock_comparator,
        tod_programmable=cpu.tod_programmable,
    )


def store_status(cpu: Cpu, storage: Storage, address: int = SAVE_AREA_ADDRESS) -> CpuStatus:
    """Store the CPU's status at an absolute address. At the default address the architectural
    mode id byte (absolute 163) is set too, as a z/Architecture store status does."""
    status = capture(cpu)
    storage.write(address, status.pack())
    if address == SAVE_AREA_ADDRESS:
        storage.write(AR_MODE_ID_ADDRESS, b"\x01")
    return status
