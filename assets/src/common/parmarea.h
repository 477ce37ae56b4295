/* The parm area of a Linux-layout image (S390_FACTS §3.4): the page at image offset 0x400
 * that the boot loader and kexec fill in. Use inside .head.text, after the two entry points. */
#ifndef DUMPLAB_PARMAREA_H
#define DUMPLAB_PARMAREA_H

	.macro	PARMAREA
	.org	0x400
	.globl	parmarea
parmarea:
	.quad	0			/* 0x10400 IPL_DEVICE */
	.quad	0			/* 0x10408 INITRD_START */
	.quad	0			/* 0x10410 INITRD_SIZE */
	.quad	0			/* 0x10418 OLDMEM_BASE */
	.quad	0			/* 0x10420 OLDMEM_SIZE */
	.quad	0			/* 0x10428 KERNEL_VERSION */
	.quad	896			/* 0x10430 MAX_COMMAND_LINE_SIZE */
	.org	0x480
	.globl	command_line
command_line:
	.fill	896, 1, 0
	.org	0x1000
	.endm

#endif
