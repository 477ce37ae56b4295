/* Lowcore (prefix area) fields DumpLab guests use, with their architected offsets.
 *
 * Offsets are real addresses (prefix-relative).  Hardware-defined fields come from the
 * z/Architecture lowcore; the 0xE00-0xF00 block is Linux's "do not change" software ABI that
 * dump tools read; the 0x300-0x3FF block is our kernel's own (not architected, like Linux's
 * restart fields whose offsets change between kernel versions).
 */
#ifndef DUMPLAB_LOWCORE_H
#define DUMPLAB_LOWCORE_H

#define LC_IPL_PSW              0x000   /* 8-byte ESA IPL PSW / restart PSW of DIAG 308 */
#define LC_IPL_PARMBLOCK_PTR    0x014   /* u32 */
#define LC_EXT_CPU_ADDR         0x084   /* u16: CPU that sent an external call / emergency signal */
#define LC_EXT_INT_CODE         0x086   /* u16 */
#define LC_SVC_ILC              0x088   /* u16 */
#define LC_SVC_CODE             0x08A   /* u16 */
#define LC_PGM_ILC              0x08C   /* u16 */
#define LC_PGM_CODE             0x08E   /* u16 */
#define LC_AR_MODE_ID           0x0A3   /* u8: 1 after store status in z/Architecture mode */
#define LC_SUBCHANNEL_ID        0x0B8   /* u32 */

#define LC_RESTART_OLD_PSW      0x120
#define LC_EXT_OLD_PSW          0x130
#define LC_SVC_OLD_PSW          0x140
#define LC_PGM_OLD_PSW          0x150
#define LC_MCCK_OLD_PSW         0x160
#define LC_IO_OLD_PSW           0x170
#define LC_RESTART_PSW          0x1A0
#define LC_EXT_NEW_PSW          0x1B0
#define LC_SVC_NEW_PSW          0x1C0
#define LC_PGM_NEW_PSW          0x1D0
#define LC_MCCK_NEW_PSW         0x1E0
#define LC_IO_NEW_PSW           0x1F0

/* DumpLab kernel software fields (our layout, mirroring Linux's per-CPU lowcore use). */
#define LC_SAVE_AREA_SYNC       0x200   /* 16 x u64: registers at a program check / SVC */
#define LC_SAVE_AREA_ASYNC      0x280   /* 16 x u64: registers at an external interruption */
#define LC_SAVE_AREA_RESTART    0x300   /* 16 x u64: registers at a restart interruption */
#define LC_CPU_NR               0x380   /* u32: logical CPU number (= CPU address here) */
#define LC_KERNEL_STACK         0x388   /* 8: top of this CPU's interrupt stack */
#define LC_RESTART_STACK        0x390   /* 8: top of this CPU's restart stack */
#define LC_RESTART_FN           0x398   /* 8: function the restart handler calls */
#define LC_RESTART_DATA         0x3A0   /* 8: its argument */
#define LC_RESTART_SOURCE       0x3A8   /* 8: CPU that asked for the restart, -1 = operator */
#define LC_PGM_STACK            0x3B0   /* 8: top of this CPU's program-check stack */
#define LC_PERCPU_OFFSET        0x3B8   /* 8: address of this CPU's struct pcpu */

/* Linux software ABI read by dump tools. */
#define LC_IPIB                 0xE00   /* u64 */
#define LC_IPIB_CHECKSUM        0xE08   /* u32 */
#define LC_VMCORE_INFO          0xE0C   /* u64, unaligned */
#define LC_OS_INFO              0xE18   /* u64 */

/* Store-status save area, filled by store status (SIGP or the operator's store status). */
#define LC_FPREGS_SAVE_AREA     0x1200  /* 16 x u64 */
#define LC_GPREGS_SAVE_AREA     0x1280  /* 16 x u64 */
#define LC_PSW_SAVE_AREA        0x1300  /* 16 */
#define LC_PREFIX_SAVE_AREA     0x1318  /* u32 */
#define LC_FP_CREG_SAVE_AREA    0x131C  /* u32 */
#define LC_TOD_PROGREG_SAVE_AREA 0x1324 /* u32 */
#define LC_CPU_TIMER_SAVE_AREA  0x1328  /* u64 */
#define LC_CLOCK_COMP_SAVE_AREA 0x1330  /* u64: bits 0-55 of the comparator, shifted right 8 */
#define LC_AREGS_SAVE_AREA      0x1340  /* 16 x u32 */
#define LC_CREGS_SAVE_AREA      0x1380  /* 16 x u64 */
#define LC_SAVE_AREA_SIZE       512

#define LOWCORE_SIZE            0x2000

/* PSW mask bits (64-bit PSW). */
#define PSW_MASK_PER            0x4000000000000000UL
#define PSW_MASK_DAT            0x0400000000000000UL
#define PSW_MASK_IO             0x0200000000000000UL
#define PSW_MASK_EXT            0x0100000000000000UL
#define PSW_MASK_KEY            0x00F0000000000000UL
#define PSW_MASK_MCHECK         0x0004000000000000UL
#define PSW_MASK_WAIT           0x0002000000000000UL
#define PSW_MASK_PSTATE         0x0001000000000000UL
#define PSW_MASK_ASC            0x0000C00000000000UL
#define PSW_MASK_CC             0x0000300000000000UL
#define PSW_MASK_EA             0x0000000100000000UL
#define PSW_MASK_BA             0x0000000080000000UL
#define PSW_MASK_64             (PSW_MASK_EA | PSW_MASK_BA)

/* External interruption codes and their CR0 subclass-mask bits. */
#define EXT_CODE_EMERGENCY      0x1201
#define EXT_CODE_EXTERNAL_CALL  0x1202
#define EXT_CODE_CLOCK_COMP     0x1004
#define EXT_CODE_CPU_TIMER      0x1005
#define EXT_CODE_SERVICE_SIGNAL 0x2401
#define CR0_EMERGENCY_SIGNAL    0x4000UL
#define CR0_EXTERNAL_CALL       0x2000UL
#define CR0_CLOCK_COMPARATOR    0x0800UL
#define CR0_CPU_TIMER           0x0400UL
#define CR0_SERVICE_SIGNAL      0x0200UL

#ifndef __ASSEMBLER__
typedef struct psw {
	unsigned long mask;
	unsigned long addr;
} __attribute__((aligned(8))) psw_t;
#endif

#endif
