/* The stand-alone dumper's entry: IPL'd into 0x2000-0x10000, memory Linux leaves unused. The
 * IPL PSW at absolute 0 points here (31-bit mode). */
#include "startup.h"

#define STACK_SIZE 8192

	.section .head.text, "ax"
	.globl	_start
_start:
	lhi	%r1, 1			/* z/Architecture, as every dumper does first */
	sigp	%r1, %r0, 0x12
	sam64
	CLEAR_BSS_AND_CALL dumper_main, dumper_stack, STACK_SIZE
	larl	%r1, .Lreturned_psw
	lpswe	0(%r1)

/* A program check in the dumper: stop with the failing PSW address as the code, as zipl's
 * dumpers do (S390_FACTS §4.2). */
	.globl	dumper_program_check
dumper_program_check:
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
	.globl	dumper_stack
dumper_stack:
	.skip	STACK_SIZE

	.section .note.GNU-stack, "", @progbits
