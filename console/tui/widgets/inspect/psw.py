"""The PSW and CPU state as an operator reads them: decoded bits, compact state strings, and
what a disabled-wait code means. Pure functions (S390_FACTS §1.6 and §4.2)."""

from __future__ import annotations

from dataclasses import dataclass

from machine.psw import (
    PSW_ASC_SHIFT,
    PSW_BA,
    PSW_CC_SHIFT,
    PSW_DAT,
    PSW_EA,
    PSW_EXT,
    PSW_IO,
    PSW_KEY_SHIFT,
    PSW_MCHECK,
    PSW_PER,
    PSW_PROBLEM,
    PSW_WAIT,
)

ASC_NAMES = ("primary", "AR", "secondary", "home")

# The run states of machine.cpu.CpuState, as short badges (text, not only colour).
STATE_BADGES = {"stopped": "STOPPED", "operating": "OPER", "wait": "WAIT",
                "disabled wait": "DWAIT", "check stop": "CHKSTOP"}

# Disabled-wait codes the s390-tools stand-alone dumpers document (include/boot/error.h).
DUMPER_WAIT_CODES = {
    0x0000: "dump successful",
    0x4500: "enabling the IPL device failed", 0x4501: "disabling the IPL device failed",
    0x4502: "start subchannel failed", 0x4510: "wrong IPL type", 0x4511: "internal error",
    0x4520: "no os_info found", 0x4521: "os_info checksum incorrect",
    0x4522: "os_info major version too high", 0x4523: "no crashkernel memory defined",
    0x4524: "HSA copy failed", 0x4600: "device too small for the dump",
    0x4601: "device not supported", 0x4602: "could not evaluate the memory layout",
    0x4604: "no valid dump signature on the device",
}


@dataclass(frozen=True)
class Psw:
    """A decoded 64-bit PSW (mask and address)."""

    mask: int
    address: int

    @property
    def key(self) -> int:
        return (self.mask >> PSW_KEY_SHIFT) & 0xF

    @property
    def cc(self) -> int:
        return (self.mask >> PSW_CC_SHIFT) & 0x3

    @property
    def asc(self) -> str:
        return ASC_NAMES[(self.mask >> PSW_ASC_SHIFT) & 0x3]

    @property
    def wait(self) -> bool:
        return bool(self.mask & PSW_WAIT)

    @property
    def problem_state(self) -> bool:
        return bool(self.mask & PSW_PROBLEM)

    @property
    def addressing_mode(self) -> int:
        if self.mask & PSW_EA:
            return 64
        return 31 if self.mask & PSW_BA else 24

    @property
    def interrupt_masks(self) -> list[str]:
        """The interruption classes this PSW enables (I/O, external, machine check)."""
        return [name for bit, name in ((PSW_IO, "I/O"), (PSW_EXT, "EXT"), (PSW_MCHECK, "MCHK"))
                if self.mask & bit]

    @property
    def disabled_wait(self) -> bool:
        return self.wait and not (self.mask & (PSW_IO | PSW_EXT))

    def summary(self) -> str:
        """One line: key, masks, state, mode, CC, and the wait bit."""
        parts = [f"key {self.key}", "+".join(self.interrupt_masks) or "disabled",
                 "problem" if self.problem_state else "supervisor",
                 f"{self.addressing_mode}-bit", f"CC {self.cc}"]
        if self.mask & PSW_DAT:
            parts.append(f"DAT {self.asc}")
        if self.mask & PSW_PER:
            parts.append("PER")
        if self.wait:
            parts.append("disabled wait" if self.disabled_wait else "wait")
        return ", ".join(parts)


def state_flags(state: str, psw_mask: int) -> str:
    """A compact CPU state string in the Hercules spirit: badge, P/S (problem/supervisor)
    and the addressing mode, e.g. `OPER S64`."""
    psw = Psw(psw_mask, 0)
    badge = STATE_BADGES.get(state, state.upper())
    return f"{badge} {'P' if psw.problem_state else 'S'}{psw.addressing_mode}"


def wait_code_meaning(code: int, program: str | None, symbol: str | None = None) -> str:
    """What a disabled-wait code says: a dumper's documented code, or where the kernel
    stopped (its code is the address of the function that loaded the wait PSW)."""
    if program is not None and "dump" in program and code in DUMPER_WAIT_CODES:
        return DUMPER_WAIT_CODES[code]
    if symbol:
        return f"stopped in {symbol}"
    return DUMPER_WAIT_CODES.get(code, "")
