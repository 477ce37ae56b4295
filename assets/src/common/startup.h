/* The start of every DumpLab program, as assembler macros: clear .bss, set up the stack at
 * the top of a .bss area, call the C entry; if it returns, fall through to what follows. */
#ifndef DUMPLAB_STARTUP_H
#define DUMPLAB_STARTUP_H

	.macro	CLEAR_BSS_AND_CALL entry, stack, stack_size
	larl	%r2, __bss_start
	larl	%r3, __bss_end
	sgr	%r3, %r2
	lghi	%r4, 0
	lghi	%r5, 0
0:	mvcle	%r2, %r4, 0
	jo	0b
	larl	%r15, \stack
	aghi	%r15, \stack_size - 160
	xc	0(8, %r15), 0(%r15)
	brasl	%r14, \entry
	.endm

/* The whole head of a program IPL'd from a dump device (the stand-alone dumper, the
 * stand-alone kdump loader): z/Architecture mode first, as every such program does, then the C
 * entry; a return from it ends in the EINTERNAL disabled wait. \program_check is the
 * program-check new PSW's target: stop with the failing PSW address as the wait code, as
 * zipl's boot code does (S390_FACTS §4.2). */
	.macro	DUMP_DEVICE_PROGRAM_HEAD entry, program_check, stack, stack_size
	.section .head.text, "ax"
	.globl	_start
_start:
	lhi	%r1, 1
	sigp	%r1, %r0, 0x12
	sam64
	CLEAR_BSS_AND_CALL \entry, \stack, \stack_size
	larl	%r1, .Lreturned_psw
	lpswe	0(%r1)

	.globl	\program_check
\program_check:
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
	.globl	\stack
\stack:
	.skip	\stack_size
	.endm

#endif
