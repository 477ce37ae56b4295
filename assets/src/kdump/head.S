/* The kdump (capture) kernel's entry points, in the Linux image layout.
 *
 *   0x10000  normal entry: this kernel only runs as a kdump kernel, so a disabled wait
 *   0x10010  kdump entry: the purgatory jumps here in 64-bit mode after the swap
 *   0x10400  parm area: OLDMEM_BASE/SIZE at 0x10418/0x10420, command line at 0x10480
 */
#include "startup.h"
#include "parmarea.h"

#define BOOT_STACK_SIZE 16384

	.section .head.text, "ax"
	.globl	_start
_start:
	larl	%r1, .Lnot_kdump_psw
	lpswe	0(%r1)

	.org	0x10
	.globl	kdump_entry
kdump_entry:
	lhi	%r1, 2			/* z/Architecture (dump), as head_kdump.S does */
	sigp	%r1, %r0, 0x12
	sam64
	CLEAR_BSS_AND_CALL kdump_main, boot_stack, BOOT_STACK_SIZE
	j	kdump_stop

	.balign	8
.Lnot_kdump_psw:
	.quad	0x0002000180000000, _start

	PARMAREA

	.text
/* A program check in the kdump kernel: nothing to save any more; stop with the PSW address
 * of the failing instruction's successor as the code. */
	.globl	kdump_program_check
kdump_program_check:
	larl	%r1, .Lpgm_psw
	mvc	8(8, %r1), 0x158	/* the program old PSW's address */
	lpswe	0(%r1)
	.globl	kdump_stop
kdump_stop:
	larl	%r1, .Lstop_psw
	lpswe	0(%r1)

	.section .rodata
	.balign	8
.Lstop_psw:
	.quad	0x0002000180000000, kdump_stop

	.section .data
	.balign	8
.Lpgm_psw:
	.quad	0x0002000180000000, 0

	.section .bss
	.balign	4096
	.globl	boot_stack
boot_stack:
	.skip	BOOT_STACK_SIZE

	.section .note.GNU-stack, "", @progbits
