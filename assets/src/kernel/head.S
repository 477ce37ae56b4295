/* The production kernel's entry points, in the Linux image layout.
 *
 *   0x10000  IPL entry (the IPL PSW at absolute 0 points here; 31-bit mode)
 *   0x10010  kdump entry: this kernel is not a kdump kernel, so a disabled wait, as a Linux
 *            kernel built without CONFIG_CRASH_DUMP does
 *   0x10400  parm area: IPL device, initrd, OLDMEM_BASE/SIZE, command line at 0x10480
 */
#include "lowcore.h"
#include "startup.h"
#include "parmarea.h"

#define PT_SIZE 160          /* struct pt_regs: 16 GPRs + PSW, rounded up */
#define FRAME   160          /* the s390x ABI register save area */
#define BOOT_STACK_SIZE 16384

	.section .head.text, "ax"
	.globl	_start
_start:
	j	startup

	.org	0x10
	.globl	kdump_entry
kdump_entry:
	larl	%r1, .Lno_kdump_psw
	lpswe	0(%r1)
	.balign	8
.Lno_kdump_psw:
	.quad	0x0002000180000000, kdump_entry

	PARMAREA

	.text
/* The IPL left us in 31-bit mode with everything disabled. Switch to z/Architecture as Linux
 * does (the SIGP is accepted and changes nothing here), go 64-bit, clear .bss, call C. */
startup:
	lhi	%r1, 1
	sigp	%r1, %r0, 0x12
	sam64
	CLEAR_BSS_AND_CALL start_kernel, boot_stack, BOOT_STACK_SIZE
	j	stop_here

/* An interruption handler: registers to a lowcore save area, a pt_regs on the given stack,
 * C, and back through the (possibly edited) old PSW. */
	.macro	INTERRUPTION_HANDLER name, save_area, stack, old_psw, handler
	.globl	\name
\name:
	stmg	%r0, %r15, \save_area
	lg	%r15, \stack
	aghi	%r15, -(FRAME + PT_SIZE)
	xc	0(8, %r15), 0(%r15)
	la	%r2, FRAME(%r15)
	mvc	0(128, %r2), \save_area
	mvc	128(16, %r2), \old_psw
	brasl	%r14, \handler
	la	%r2, FRAME(%r15)
	mvc	\old_psw(16), 128(%r2)
	lmg	%r0, %r15, 0(%r2)
	lpswe	\old_psw
	.endm

/* C clears the wait bit of an idle CPU's external old PSW, so that the idle loop goes on after
 * the interruption. */
	INTERRUPTION_HANDLER ext_int_handler, LC_SAVE_AREA_ASYNC, LC_KERNEL_STACK, LC_EXT_OLD_PSW, do_ext_interrupt
	INTERRUPTION_HANDLER pgm_check_handler, LC_SAVE_AREA_SYNC, LC_PGM_STACK, LC_PGM_OLD_PSW, do_program_check
	INTERRUPTION_HANDLER svc_handler, LC_SAVE_AREA_SYNC, LC_PGM_STACK, LC_SVC_OLD_PSW, do_svc

/* Restart interruption (PSW Restart at the HMC, or SIGP restart from another CPU): save the
 * interrupted registers, switch to the restart stack, call restart_fn(restart_data). */
	.globl	restart_int_handler
restart_int_handler:
	stmg	%r0, %r15, LC_SAVE_AREA_RESTART
	lg	%r15, LC_RESTART_STACK
	aghi	%r15, -FRAME
	xc	0(8, %r15), 0(%r15)
	lg	%r1, LC_RESTART_FN
	lg	%r2, LC_RESTART_DATA
	basr	%r14, %r1
	j	stop_here

/* call_on_stack(arg, stack_top, fn): run fn(arg) on another stack; fn must not return. */
	.globl	call_on_stack
call_on_stack:
	lgr	%r15, %r3
	aghi	%r15, -FRAME
	xc	0(8, %r15), 0(%r15)
	lgr	%r1, %r4
	basr	%r14, %r1
	j	stop_here

/* store_status_self(area): what the CPU's own store status would store, done by software as
 * Linux's store_status does before kdump: FPRs, GPRs, PSW, prefix, FPC, CPU timer, clock
 * comparator, access and control registers, in the save-area layout. The PSW address is the
 * TRACE hypercall at the end, where the host captures the same registers to compare. */
	.globl	store_status_self
store_status_self:
	lgr	%r3, %r2		/* r3 = area; r1, r2, r4, r5 get their final values now */
	xc	0x124(4, %r3), 0x124(%r3)	/* TOD programmable register: we never set it */
	/* From here to the DIAG nothing may change the condition code, which is in the PSW. */
	epsw	%r4, %r5
	sllg	%r4, %r4, 32
	lr	%r4, %r5		/* r4 = PSW mask, condition code included */
	lghi	%r1, 7			/* HC_TRACE */
	lghi	%r2, 17			/* TRACE_STATUS_STORED */
	larl	%r5, .Lstored
	stmg	%r0, %r15, 0x80(%r3)
	stg	%r4, 0x100(%r3)
	stg	%r5, 0x108(%r3)
	std	%f0, 0x00(%r3)
	std	%f1, 0x08(%r3)
	std	%f2, 0x10(%r3)
	std	%f3, 0x18(%r3)
	std	%f4, 0x20(%r3)
	std	%f5, 0x28(%r3)
	std	%f6, 0x30(%r3)
	std	%f7, 0x38(%r3)
	std	%f8, 0x40(%r3)
	std	%f9, 0x48(%r3)
	std	%f10, 0x50(%r3)
	std	%f11, 0x58(%r3)
	std	%f12, 0x60(%r3)
	std	%f13, 0x68(%r3)
	std	%f14, 0x70(%r3)
	std	%f15, 0x78(%r3)
	stpx	0x118(%r3)
	stfpc	0x11c(%r3)
	stpt	0x128(%r3)
	stckc	0x130(%r3)
	/* The save area holds the comparator shifted right 8 bits. */
	lg	%r0, 0x130(%r3)
	srlg	%r0, %r0, 8
	stg	%r0, 0x130(%r3)
	lg	%r0, 0x80(%r3)		/* r0 as it was stored */
	stam	%a0, %a15, 0x140(%r3)
	stctg	%c0, %c15, 0x180(%r3)
.Lstored:
	diag	%r2, %r4, 0x500		/* TRACE(STATUS_STORED, area): the host captures here */
	br	%r14

/* Something returned that must not: disabled wait, the code is this address. */
	.globl	stop_here
stop_here:
	larl	%r1, .Lstop_psw
	lpswe	0(%r1)

	.section .rodata
	.balign	8
.Lstop_psw:
	.quad	0x0002000180000000, stop_here

	.section .bss
	.balign	4096
	.globl	boot_stack
boot_stack:
	.skip	BOOT_STACK_SIZE

	.section .note.GNU-stack, "", @progbits
