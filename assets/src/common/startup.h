/* The start of every DumpLab program, as an assembler macro: clear .bss, set up the stack at
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

#endif
