"""One s390x CPU of the LPAR: a saved unicorn context plus the state unicorn does not model
(run state, clock comparator, CPU timer, TOD programmable register, pending interruptions)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from unicorn import Uc
from unicorn.s390x_const import (
    UC_S390X_REG_A0,
    UC_S390X_REG_CR0,
    UC_S390X_REG_F0,
    UC_S390X_REG_FPC,
    UC_S390X_REG_PC,
    UC_S390X_REG_PSWM,
    UC_S390X_REG_R0,
)

from machine.engine import RawFields, flush_tlb

GPRS = [UC_S390X_REG_R0 + i for i in range(16)]
CRS = [UC_S390X_REG_CR0 + i for i in range(16)]
ARS = [UC_S390X_REG_A0 + i for i in range(16)]
FPRS = [UC_S390X_REG_F0 + i for i in range(16)]

# Control registers after an initial CPU reset (z/Architecture): CR0 and CR14 are not zero.
INITIAL_CR0 = 0xE0
INITIAL_CR14 = 0xC2000000


class CpuState(str, enum.Enum):
    """The run state the HMC shows for a CPU."""

    STOPPED = "stopped"
    OPERATING = "operating"
    WAIT = "wait"                    # enabled wait: waits for an interruption
    DISABLED_WAIT = "disabled wait"  # nothing can wake it but the operator
    CHECK_STOP = "check stop"        # the machine could not go on (host error)

    def __str__(self) -> str:
        return self.value


@dataclass
class Pending:
    """Interruption conditions waiting for this CPU."""

    restart: bool = False
    restart_source: str = "operator"
    external_call_from: int | None = None
    emergency_from: set[int] = field(default_factory=set)


class Cpu:
    """A CPU: registers live in `ctx` between run slices and in the engine during its slice."""

    def __init__(self, address: int, uc: Uc, fields: RawFields) -> None:
        self.address = address
        self.ctx = uc.context_save()
        self._fields = fields
        self._uc = uc
        self.running = False  # True while its context is the live one in the engine
        self.state = CpuState.STOPPED
        self.clock_comparator = 0
        self.cpu_timer = 0
        self.tod_programmable = 0
        self.wait_code: int | None = None
        self.pending = Pending()
        self.check_stop_reason = ""
        # The breakpoint address this CPU stopped in front of (it executes that instruction
        # when it goes on), else None.
        self.stopped_at_breakpoint: int | None = None
        # Instructions this CPU executed since activation, exact in deterministic runs (the
        # step-back position, machine/checkpoint.py).
        self.instructions = 0

    # Registers: from the engine while this CPU runs, else from its saved context.
    def _source(self):
        return self._uc if self.running else self.ctx

    def reg(self, regid: int) -> int:
        return self._source().reg_read(regid)

    def set_reg(self, regid: int, value: int) -> None:
        self._source().reg_write(regid, value)

    def regs(self, regids: list[int]) -> list[int]:
        return list(self._source().reg_read_batch(regids))

    @property
    def psw(self) -> tuple[int, int]:
        return self.reg(UC_S390X_REG_PSWM), self.reg(UC_S390X_REG_PC)

    def set_psw(self, mask: int, address: int) -> None:
        self.set_reg(UC_S390X_REG_PSWM, mask)
        self.set_reg(UC_S390X_REG_PC, address)

    @property
    def fpc(self) -> int:
        return self.reg(UC_S390X_REG_FPC)

    @property
    def prefix(self) -> int:
        if self.running:
            return self._fields.prefix(self._uc.context_save())
        return self._fields.prefix(self.ctx)

    def set_prefix(self, value: int) -> None:
        """Set the prefix register. On the running CPU this goes through a context round trip
        and a TLB flush: unicorn's own SPX leaves stale translations of the pages it swaps."""
        if not self.running:
            self._fields.set_prefix(self.ctx, value)
            return
        live = self._uc.context_save()
        self._fields.set_prefix(live, value)
        self._uc.context_restore(live)
        flush_tlb(self._uc)

    def real_to_absolute(self, real: int) -> int:
        """Prefixing: real 0-8K and the prefix area swap places."""
        prefix = self.prefix
        if real < 0x2000:
            return real + prefix
        if prefix <= real < prefix + 0x2000:
            return real - prefix
        return real

    def initial_reset(self) -> None:
        """Initial CPU reset: PSW, prefix, CPU timer, clock comparator and control registers
        to their initial values; general, access and floating-point registers are kept."""
        self.cpu_reset()
        self.set_psw(0, 0)
        self.set_prefix(0)
        for i, regid in enumerate(CRS):
            self.set_reg(regid, INITIAL_CR0 if i == 0 else INITIAL_CR14 if i == 14 else 0)
        self.set_reg(UC_S390X_REG_FPC, 0)
        self.clock_comparator = 0
        self.cpu_timer = 0
        self.tod_programmable = 0

    def clear_reset(self) -> None:
        """Clear reset: initial reset plus all registers zero."""
        self.initial_reset()
        for regid in GPRS + ARS + FPRS:
            self.set_reg(regid, 0)

    def cpu_reset(self) -> None:
        """CPU reset: stop and drop pending interruptions; every register is kept."""
        self.state = CpuState.STOPPED
        self.wait_code = None
        self.pending = Pending()
        self.check_stop_reason = ""
        self.stopped_at_breakpoint = None
