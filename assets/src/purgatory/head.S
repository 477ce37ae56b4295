/* kexec purgatory entry, position independent (it runs wherever kexec put it).
 *
 *   r2 = 0  verify only: check the kexec image, return r2 = 0 (good) or 1 (bad)
 *   r2 = 1  load: check again, save every CPU's registers into the ELF notes and enter the
 *           kdump kernel at crash_base + 0x10010 (it swaps memory itself); r3 = struct cpu_table
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
