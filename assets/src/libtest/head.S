/* libtest: a guest program that only exists for the host tests (tests/guest_harness.py).
 *
 * The harness calls library functions directly by symbol, with r14 = halt and
 * r15 = stack_top - 160, and stops when the PSW reaches halt.  Booted normally, the program
 * sets up its stack and stops at halt as well.
 */
	.section .head.text, "ax"
	.globl	_start
_start:					/* 0x10000 */
	larl	%r15, stack_top
	aghi	%r15, -160
	xc	0(8,%r15), 0(%r15)	/* back chain = 0 */
	j	halt

	.globl	halt
	.type	halt, @function
halt:
	j	halt
	.size	halt, . - halt

	.section .bss
	.balign	4096
	.globl	stack, stack_top
stack:
	.skip	65536
stack_top:

	.section .note.GNU-stack, "", @progbits
