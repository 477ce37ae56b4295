/* kexec purgatory entry, position independent (it runs wherever kexec put it).
 *
 *   r2 = 0  verify only: check the kexec image, return r2 = 0 (good) or 1 (bad)
 *   r2 = 1  load: check again, save every CPU's registers into the ELF notes, swap memory
 *           with the crashkernel region and enter the kdump kernel; r3 = struct cpu_table
 */
#include "kexec.h"

	.section .head.text, "ax"
	.globl	_start
	.globl	purgatory_start
_start:
purgatory_start:
	larl	%r1, caller_regs
	stmg	%r6, %r15, 0(%r1)
	larl	%r15, purgatory_stack_end
	aghi	%r15, -160
	xc	0(8, %r15), 0(%r15)
	brasl	%r14, purgatory_main
	larl	%r1, caller_regs
	lmg	%r6, %r15, 0(%r1)
	br	%r14

/* Load mode, checks failed: the upstream purgatory ends in this disabled wait. */
	.globl	purgatory_verify_failed
purgatory_verify_failed:
	larl	%r1, .Lfailed_psw
	lpswe	0(%r1)
	.balign	8
.Lfailed_psw:
	.quad	0x0002000180000000
	.quad	0		/* filled in at run time: the address of purgatory_verify_failed */

/* The last piece of the swap, copied to absolute 0x1000 (the new system's lowcore, free
 * now) because it exchanges the purgatory's own pages: r2 = crash_base + 0x2000, r3 = 0x2000,
 * r4 = bytes; swaps by XOR 256 bytes at a time, then loads the PSW at 0xf00 (the kdump
 * entry in 64-bit mode). */
	.globl	swap_trampoline, swap_trampoline_end
swap_trampoline:
0:	xc	0(256, %r3), 0(%r2)
	xc	0(256, %r2), 0(%r3)
	xc	0(256, %r3), 0(%r2)
	la	%r2, 256(%r2)
	la	%r3, 256(%r3)
	aghi	%r4, -256
	jh	0b
	lpswe	0xf00
swap_trampoline_end:

	.section .bss
	.balign	8
caller_regs:
	.skip	80
	.balign	4096
purgatory_stack:
	.skip	8192
	.globl	purgatory_stack_end
purgatory_stack_end:

	.section .note.GNU-stack, "", @progbits
