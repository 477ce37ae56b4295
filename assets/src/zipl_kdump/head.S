/* The stand-alone kdump loader's entry (path D, `zipl -d DEVNO -k auto`): IPL'd into
 * 0x2000-0x10000 like the stand-alone dumper; the IPL PSW at absolute 0 points here (31-bit). */
#include "startup.h"

#define STACK_SIZE 8192

	.section .head.text, "ax"
	.globl	_start
_start:
	lhi	%r1, 1			/* z/Architecture, as every boot loader stage does first */
	sigp	%r1, %r0, 0x12
	sam64
	CLEAR_BSS_AND_CALL loader_main, loader_stack, STACK_SIZE
	larl	%r1, .Lreturned_psw
	lpswe	0(%r1)

/* A program check in the loader: stop with the failing PSW address as the code, as zipl's
 * boot code does (S390_FACTS §4.2). */
	.globl	loader_program_check
loader_program_check:
	larl	%r1, .Lpgm_psw
	mvc	8(8, %r1), 0x158
	lpswe	0(%r1)

	.section .rodata
	.balign	8
.Lreturned_psw:
	.quad	0x0002000080000000, 0x4511	/* EINTERNAL */

	.section .data
	.balign	8
.Lpgm_psw:
	.quad	0x0002000080000000, 0

	.section .bss
	.balign	4096
	.globl	loader_stack
loader_stack:
	.skip	STACK_SIZE

	.section .note.GNU-stack, "", @progbits
