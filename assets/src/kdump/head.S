/* The kdump (capture) kernel's entry points, in the Linux image layout.
 *
 *   0x10000  normal entry: this kernel only runs as a kdump kernel, so a disabled wait
 *   0x10010  kdump entry, in 64-bit mode: from the purgatory (the kernel lies where kexec put
 *            it, at crash_base + 0x10010, memory not yet swapped) or from the stand-alone
 *            kdump loader (already at its link address)
 *   0x10400  parm area: OLDMEM_BASE/SIZE at 0x10418/0x10420, command line at 0x10480
 *
 * Run anywhere but at the link address, the entry swaps [0, OLDMEM_SIZE) with
 * [OLDMEM_BASE, OLDMEM_BASE + OLDMEM_SIZE) itself, as Linux's head_kdump does (S390_FACTS
 * §0.4, §3.4): a data mover copied to 0x4000 (and to OLDMEM_BASE + 0x4000, so that it survives
 * swapping its own page) exchanges 256 bytes at a time through a buffer at 0x6000, then
 * enters the kernel at its link address. Everything before that uses PC-relative addressing
 * only. Unlike Linux, the old bytes the mover and its buffer overwrite are put back (see
 * docs/FIDELITY.md), so the vmcore holds the old system's memory unchanged.
 */
#include "startup.h"
#include "parmarea.h"
#include "hypercall.h"

#define BOOT_STACK_SIZE 16384
#define MOVER_ADDRESS   0x4000
#define SWAP_BUFFER     0x6000
#define SWAP_CHUNK      256
#define PROGRESS_EVERY  0x100000	/* a SWAP_PROGRESS report every MiB swapped */

/* A trace hypercall from assembler: id and up to two arguments (registers), r1-r6 used. */
	.macro	TRACE id, a, b, c
	lghi	%r1, HC_TRACE
	lghi	%r2, \id
	lgr	%r3, \a
	lgr	%r4, \b
	lgr	%r5, \c
	lghi	%r6, 0
	diag	%r2, %r4, 0x500
	.endm

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
	larl	%r13, kdump_entry
	larl	%r1, .Lentry_link
	clg	%r13, 0(%r1)
	jne	kdump_swap		/* not at the link address: swap first */
	j	kdump_start

	.balign	8
.Lnot_kdump_psw:
	.quad	0x0002000180000000, _start
.Lentry_link:
	.quad	kdump_entry

	PARMAREA

	.text
/* Swap [0, size) <-> [base, base + size): r10 = base, r12 = size, from our parm area. */
kdump_swap:
	larl	%r1, parmarea
	lg	%r10, 0x18(%r1)		/* OLDMEM_BASE */
	lg	%r12, 0x20(%r1)		/* OLDMEM_SIZE */
	lghi	%r9, 1
	TRACE	TRACE_KDUMP_SWAP, %r9, %r10, %r12
	/* Keep the old bytes under the mover and the buffer (they go back after the swap). */
	lghi	%r2, MOVER_ADDRESS
	larl	%r1, saved_under_mover
	mvc	0(SWAP_CHUNK, %r1), 0(%r2)
	lghi	%r2, SWAP_BUFFER
	larl	%r1, saved_under_buffer
	mvc	0(SWAP_CHUNK, %r1), 0(%r2)
	/* The mover at 0x4000 and at base + 0x4000: its own page swaps with an equal copy. */
	larl	%r1, swap_mover
	lghi	%r2, MOVER_ADDRESS
	mvc	0(SWAP_CHUNK, %r2), 0(%r1)
	lgr	%r2, %r10
	aghi	%r2, MOVER_ADDRESS
	mvc	0(SWAP_CHUNK, %r2), 0(%r1)
	lghi	%r7, 0			/* low cursor */
	lgr	%r8, %r10		/* crashkernel cursor */
	lgfi	%r11, PROGRESS_EVERY	/* next progress report at */
	larl	%r1, .Lswapped_link
	lg	%r13, 0(%r1)		/* where the mover goes on: kdump_swapped, linked */
	lghi	%r10, SWAP_BUFFER
	lghi	%r1, MOVER_ADDRESS
	br	%r1

/* The data mover, position independent, run from 0x4000. r7/r8 cursors, r10 the buffer,
 * r11 the next report, r12 the size, r13 where to go when done. */
	.globl	swap_mover, swap_mover_end
swap_mover:
0:	mvc	0(SWAP_CHUNK, %r10), 0(%r7)
	mvc	0(SWAP_CHUNK, %r7), 0(%r8)
	mvc	0(SWAP_CHUNK, %r8), 0(%r10)
	la	%r7, SWAP_CHUNK(%r7)
	la	%r8, SWAP_CHUNK(%r8)
	clgr	%r7, %r11
	jl	1f
	TRACE	TRACE_KDUMP_SWAP_PROGRESS, %r7, %r12, %r12
	algfi	%r11, PROGRESS_EVERY
1:	clgr	%r7, %r12
	jl	0b
	br	%r13
swap_mover_end:
	.if	swap_mover_end - swap_mover > SWAP_CHUNK
	.error	"the data mover must fit in one 256-byte chunk"
	.endif

/* At the link address now, the old system in [base, base + size): put back its bytes the
 * mover and the buffer overwrote (our saved copies came down here with the swap). */
kdump_swapped:
	lgr	%r10, %r8
	sgr	%r10, %r12		/* base */
	lgr	%r2, %r10
	aghi	%r2, MOVER_ADDRESS
	larl	%r1, saved_under_mover
	mvc	0(SWAP_CHUNK, %r2), 0(%r1)
	lgr	%r2, %r10
	aghi	%r2, SWAP_BUFFER
	larl	%r1, saved_under_buffer
	mvc	0(SWAP_CHUNK, %r2), 0(%r1)
	lghi	%r9, 2
	TRACE	TRACE_KDUMP_SWAP, %r9, %r10, %r12

kdump_start:
	CLEAR_BSS_AND_CALL kdump_main, boot_stack, BOOT_STACK_SIZE
	j	kdump_stop

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
.Lswapped_link:
	.quad	kdump_swapped

	.section .data
	.balign	8
.Lpgm_psw:
	.quad	0x0002000180000000, 0
/* Not .bss: the swap runs before .bss is cleared, and these must travel with the image. */
saved_under_mover:
	.fill	SWAP_CHUNK, 1, 0
saved_under_buffer:
	.fill	SWAP_CHUNK, 1, 0

	.section .bss
	.balign	4096
	.globl	boot_stack
boot_stack:
	.skip	BOOT_STACK_SIZE

	.section .note.GNU-stack, "", @progbits
