/* The DumpLab hypercall (DIAG 0x500): see docs/GUEST_ABI.md.
 * Function number in r1, arguments in r2-r6, result in r2 (CONSOLE_READ also sets r3). */
#ifndef DUMPLAB_HYPERCALL_H
#define DUMPLAB_HYPERCALL_H

#define HC_CONSOLE_WRITE  1
#define HC_CONSOLE_READ   2
#define HC_MACHINE_INFO   3
#define HC_BLOCK_INFO     4
#define HC_BLOCK_READ     5
#define HC_BLOCK_WRITE    6
#define HC_TRACE          7
#define HC_KEXEC_PREPARE  8
#define HC_VMCORE_SAVE    9
#define HC_ZIPL_DUMP      10	/* the dump-device side of zipl -d (machine/dumptools.py) */
#define HC_ZGETDUMP       11	/* zgetdump: copy a dump off a dump device (machine/dumptools.py) */

#define TRACE_BOOT_STAGE      1
#define TRACE_CPU_ONLINE      2
#define TRACE_WORKLOAD_START  3
#define TRACE_OS_INFO         4
#define TRACE_HANG            5
#define TRACE_PANIC           6
#define TRACE_PROGRAM_CHECK   7
#define TRACE_SHUTDOWN_ACTION 8
#define TRACE_RESTART         9
#define TRACE_PURGATORY_ENTER 10
#define TRACE_PURGATORY_CHECK 11
#define TRACE_PURGATORY_RESULT 12
#define TRACE_NOTES_SAVED     13
/* 14 was the purgatory's SWAP: the kdump kernel's head swaps now (24, 25). */
#define TRACE_ENTER_KDUMP     15
#define TRACE_CRASH_KEXEC     16
#define TRACE_STATUS_STORED   17
#define TRACE_KEXEC_LOADED    18
#define TRACE_KDUMP_BOOT      20
#define TRACE_KDUMP_CHECK     21
#define TRACE_DUMPER_START    30
#define TRACE_DUMPER_CPU      31
#define TRACE_DUMPER_CHECK    32
#define TRACE_DUMPER_DECISION 33
#define TRACE_DUMP_PROGRESS   34
#define TRACE_DUMP_DONE       35
#define TRACE_SHUTDOWN_CONFIG 40	/* chshut changed an action: trigger, action */
#define TRACE_REIPL_CONFIG    41	/* chreipl changed the re-IPL device: devno */

/* HC_ZIPL_DUMP operations and what the host answers about a device. */
#define ZIPL_QUERY            0
#define ZIPL_INSTALL_DUMPER   1
#define ZIPL_INSTALL_KDUMP    2
#define DUMPDEV_UNPREPARED    0	/* no dump tool on the device */
#define DUMPDEV_DUMPER        1	/* the stand-alone dumper (zipl -d) */
#define DUMPDEV_KDUMP         2	/* the stand-alone kdump (zipl -d -k auto) */
#define DUMPDEV_HAS_DUMP      0x100	/* a complete dump is on the device */

/* HC_ZGETDUMP operations; output formats. */
#define ZGETDUMP_INFO         0
#define ZGETDUMP_COPY         1
#define ZGETDUMP_FORMAT_S390  0
#define ZGETDUMP_FORMAT_ELF   1

/* Errors of HC_ZIPL_DUMP and HC_ZGETDUMP (besides the block I/O ones, -1 to -4). */
#define DUMPTOOL_NOT_SUPPORTED -5	/* a dump tool this machine does not have */
#define DUMPTOOL_IN_USE        -6	/* the running system's IPL device */
#define DUMPTOOL_TOO_SMALL     -7	/* the device cannot hold the tool */
#define DUMPTOOL_NO_DUMP       -8	/* no dump on the device */
#define DUMPTOOL_INCOMPLETE    -9	/* a dump header without its end marker */
#define DUMPTOOL_BAD_NAME      -10	/* an output name that is not a plain file name */
#define DUMPTOOL_NOT_PREPARED  -11	/* no dump tool on the device */

#define BLOCK_SIZE 4096

#ifndef __ASSEMBLER__

struct machine_info {
	unsigned long memory_size;
	unsigned int cpu_count;
	unsigned int ipl_cpu;
	unsigned long tod_ticks_per_second;
	unsigned int ipl_devno;
	unsigned int reserved;
};

static inline long hypercall(unsigned long fn, unsigned long a, unsigned long b,
			     unsigned long c, unsigned long d, unsigned long e)
{
	register unsigned long r1 asm("1") = fn;
	register long r2 asm("2") = (long)a;
	register unsigned long r3 asm("3") = b;
	register unsigned long r4 asm("4") = c;
	register unsigned long r5 asm("5") = d;
	register unsigned long r6 asm("6") = e;

	asm volatile("diag %%r2,%%r4,0x500"
		     : "+d" (r2), "+d" (r3)
		     : "d" (r1), "d" (r4), "d" (r5), "d" (r6)
		     : "memory", "cc");
	return r2;
}

static inline void hc_console_write(const char *text, unsigned long len, int level)
{
	hypercall(HC_CONSOLE_WRITE, (unsigned long)text, len, level, 0, 0);
}

static inline void hc_trace(unsigned long id, unsigned long a, unsigned long b,
			    unsigned long c, unsigned long d)
{
	hypercall(HC_TRACE, id, a, b, c, d);
}

static inline long hc_console_read(char *buf, unsigned long size, int *priority)
{
	register unsigned long r1 asm("1") = HC_CONSOLE_READ;
	register long r2 asm("2") = (long)buf;
	register unsigned long r3 asm("3") = size;

	asm volatile("diag %%r2,%%r4,0x500"
		     : "+d" (r2), "+d" (r3) : "d" (r1) : "memory", "cc");
	if (priority)
		*priority = (int)r3;
	return r2;
}

static inline void hc_machine_info(struct machine_info *info)
{
	hypercall(HC_MACHINE_INFO, (unsigned long)info, 0, 0, 0, 0);
}

static inline long hc_block_info(unsigned int devno)
{
	return hypercall(HC_BLOCK_INFO, devno, 0, 0, 0, 0);
}

static inline long hc_block_read(unsigned int devno, unsigned long block,
				 unsigned long count, void *buf)
{
	return hypercall(HC_BLOCK_READ, devno, block, count, (unsigned long)buf, 0);
}

static inline long hc_block_write(unsigned int devno, unsigned long block,
				  unsigned long count, const void *buf)
{
	return hypercall(HC_BLOCK_WRITE, devno, block, count, (unsigned long)buf, 0);
}

/* What zgetdump -i shows, filled by the host from the dump header on the device. */
struct dump_info {
	unsigned long memory_size;
	unsigned long tod_start;
	unsigned long tod_end;
	unsigned long cpu_id;
	unsigned int version;
	unsigned int cpu_count;
	unsigned int real_cpu_count;
	unsigned int reserved;
};

#endif

/* Kept after the functions above, so that their line numbers (in the kernel's debug info, and
 * so in its build id) stay as they were. */
#define TRACE_KDUMP_SWAP      24	/* the kdump kernel's head swaps: 1 start, 2 done */
#define TRACE_KDUMP_SWAP_PROGRESS 25	/* done, total (bytes) */
#define TRACE_LOADER_START    36	/* the stand-alone kdump loader (path D) */
#define TRACE_LOADER_CHECK    37
#define TRACE_LOADER_COPY     38
#define TRACE_LOADER_ENTER    39
#endif
