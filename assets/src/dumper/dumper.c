/* The stand-alone dumper of the 2011 kdump design: collect every CPU's status, check that the
 * kdump code in memory can still be trusted (os_info, the purgatory's checksum, the purgatory's
 * own SHA-256 verification) and start kdump through the purgatory; if anything fails, say why
 * and write a full dump of all memory in the s390 dump format to the dump device. */
#include "libc.h"
#include "lowcore.h"
#include "hypercall.h"
#include "sigp.h"
#include "cksm.h"
#include "diag308.h"
#include "kexec.h"
#include "printk.h"

#define OS_INFO_MAGIC      0x4f53494e464f535aUL
#define PAGE_SIZE          4096UL
#define MiB                (1UL << 20)
#define DUMP_AREA_BLOCK    256UL	/* the dump starts 1 MiB into the device */
#define CHUNK_BLOCKS       4096UL	/* 16 MiB per write */
#define S390_DUMP_MAGIC    0xa8190173618f23fdUL
#define DUMP_END_MAGIC     0x44554d505f454e44UL	/* "DUMP_END" */

/* Disabled-wait codes (S390_FACTS §4.2). */
#define EOK                     0x0000
#define ESSCH                   0x4502
#define EOS_INFO_MISSING        0x4520
#define EOS_INFO_CSUM_FAILED    0x4521
#define EOS_INFO_VERSION        0x4522
#define EOS_INFO_NOCRASHKERNEL  0x4523
#define EMEM                    0x4600

/* DUMPER_CHECK kinds, in the order they run. */
enum check {
	CHECK_POINTER = 1, CHECK_MAGIC, CHECK_CSUM, CHECK_VERSION, CHECK_CRASHKERNEL,
	CHECK_PURGATORY_CSUM, CHECK_PURGATORY_VERIFY,
};

/* DUMPER_DECISION reasons besides the error codes above. */
#define REASON_PURGATORY_CSUM   0x4530
#define REASON_PURGATORY_VERIFY 0x4531

extern void dumper_program_check(void);

static struct machine_info info;
static unsigned char saved_lowcore[LOWCORE_SIZE] __attribute__((aligned(8)));
static struct cpu_table cpus __attribute__((aligned(8)));
static unsigned int real_cpu_count;
static unsigned char header[PAGE_SIZE] __attribute__((aligned(8)));
static unsigned long os_info_address;

/* --- basics -------------------------------------------------------------------------------- */

/* libc_stop: the disabled wait of zipl's tools, 31-bit mask, the code as address. */
static void stop(unsigned long code) __attribute__((noreturn));
static void stop(unsigned long code)
{
	psw_t psw = { 0x0002000080000000UL, code };

	asm volatile("lpswe 0(%0)" : : "a" (&psw) : "memory");
	__builtin_unreachable();
}

/* The re-IPL block the system left at 0xE00 (Linux's dump_reipl shutdown action), if its
 * checksum at 0xE08 matches: NULL otherwise. Read from the lowcore as the system left it. */
static unsigned char *dump_reipl_block(void)
{
	unsigned long address;
	unsigned int csum, length;

	memcpy(&address, saved_lowcore + LC_IPIB, 8);
	memcpy(&csum, saved_lowcore + LC_IPIB_CHECKSUM, 4);
	if (!address || address + IPIB_SIZE > info.memory_size)
		return NULL;
	memcpy(&length, (const void *)address, 4);
	if (length < 8 || length > IPIB_SIZE || cksm((const void *)address, length, 0) != csum)
		return NULL;
	return (unsigned char *)address;
}

/* As zipl's dumpers end: re-IPL the system when it asked for it (dump_reipl), else stop. */
static void dump_exit(unsigned long code) __attribute__((noreturn));
static void dump_exit(unsigned long code)
{
	unsigned char *ipib = dump_reipl_block();

	if (ipib) {
		printk(KERN_NOTICE, "Re-IPL of the dumped system (dump_reipl)");
		diag308(DIAG308_SET, ipib);
		diag308(DIAG308_LOAD_NORMAL, 0);
		printk(KERN_ERR, "Re-IPL refused");
	}
	stop(code);
}

static unsigned long stck(void)
{
	unsigned long tod;

	asm volatile("stck %0" : "=Q" (tod) : : "cc");
	return tod;
}

static unsigned long stidp(void)
{
	unsigned long id;

	asm volatile("stidp %0" : "=Q" (id));
	return id;
}

static unsigned int stap(void)
{
	unsigned short address;

	asm volatile("stap %0" : "=Q" (address));
	return address;
}

/* --- CPU status -------------------------------------------------------------------------------- */

static int prefix_valid(unsigned long prefix)
{
	return prefix >= 0x10000 && !(prefix & (LOWCORE_SIZE - 1)) && prefix < info.memory_size;
}

/* A save area that store status filled: copy it into the CPU's own prefix page, where dump
 * tools and the purgatory look for it. */
static void keep_status(unsigned int cpu, const unsigned char *save)
{
	unsigned int prefix;
	unsigned long psw[2];

	memcpy(&prefix, save + 0x118, 4);
	memcpy(psw, save + 0x100, 16);
	real_cpu_count++;
	if (!psw[0] && !psw[1]) {
		printk(KERN_NOTICE, "CPU %u: no status stored%s", cpu,
		       cpu == stap() ? " (was the Load done without store status?)" : "");
		hc_trace(TRACE_DUMPER_CPU, cpu, prefix, 0, 0);
		return;
	}
	if (!prefix_valid(prefix)) {
		/* A CPU without a lowcore of its own (a kdump kernel, a dumper): real dumpers only
		 * copy status into prefix pages from 0x10000 up. */
		printk(KERN_NOTICE, "CPU %u: status stored, but prefix %08x is no lowcore of its own: "
		       "PSW %016lx %016lx", cpu, prefix, psw[0], psw[1]);
		hc_trace(TRACE_DUMPER_CPU, cpu, prefix, 2, 0);
		return;
	}
	memcpy((void *)((unsigned long)prefix + LC_FPREGS_SAVE_AREA), save, LC_SAVE_AREA_SIZE);
	cpus.prefix[cpus.count++] = prefix;
	printk(KERN_NOTICE, "CPU %u: status stored, prefix %08x, PSW %016lx %016lx", cpu, prefix, psw[0], psw[1]);
	hc_trace(TRACE_DUMPER_CPU, cpu, prefix, 1, 0);
}

/* The IPL CPU's status is what Load with store status put at absolute 0x1200; every other CPU
 * is stopped and stores its status there too, one after the other. */
static void collect_cpus(void)
{
	unsigned int self = stap();

	keep_status(self, saved_lowcore + LC_FPREGS_SAVE_AREA);
	for (unsigned int cpu = 0; cpu < KEXEC_MAX_CPUS; cpu++) {
		unsigned int status = 0;
		int cc;

		if (cpu == self)
			continue;
		cc = sigp(cpu, SIGP_STOP_AND_STORE_STATUS, 0, &status);
		if (cc == SIGP_CC_NOT_OPERATIONAL)
			continue;	/* no CPU at this address: look at every one, gaps and all */
		if (cc == SIGP_CC_ORDER_CODE_ACCEPTED)
			keep_status(cpu, (const unsigned char *)LC_FPREGS_SAVE_AREA);
	}
	/* Absolute 0x1000-0x1FFF as the system left it (store status wrote 0x1200). */
	memmove((void *)0x1000UL, saved_lowcore + 0x1000, 0x1000);
	printk(KERN_NOTICE, "%u CPUs, %u with status", real_cpu_count, (unsigned int)cpus.count);
}

/* --- the kdump checks ---------------------------------------------------------------------- */

static int check(enum check kind, int ok, unsigned long value, const char *good, const char *bad)
{
	hc_trace(TRACE_DUMPER_CHECK, kind, ok, value, 0);
	printk(KERN_NOTICE, "%s %s", ok ? "ok:    " : "FAILED:", ok ? good : bad);
	return ok;
}

static int memory_was_cleared(void)
{
	const unsigned long *kernel = (const unsigned long *)0x10000;

	for (unsigned long i = 0; i < PAGE_SIZE / 8; i++)
		if (kernel[i])
			return 0;
	return 1;
}

/* Returns 0 when kdump can be trusted, else the reason (a disabled-wait code or ours). */
static unsigned long kdump_checks(void)
{
	const unsigned char *os_info;
	unsigned long magic, crash_addr, purgatory, purgatory_size;
	unsigned int csum, entry_csum;
	unsigned short major;

	printk(KERN_NOTICE, "Checking kdump");
	memcpy(&os_info_address, saved_lowcore + LC_OS_INFO, 8);
	if (!check(CHECK_POINTER, os_info_address && !(os_info_address & (PAGE_SIZE - 1)) &&
		   os_info_address + PAGE_SIZE <= info.memory_size, os_info_address,
		   "os_info pointer at 0xE18, page aligned", "no os_info pointer at 0xE18 (EOS_INFO_MISSING)")) {
		if (memory_was_cleared())
			printk(KERN_NOTICE, "Memory is empty: a Load clear erased the system. Use a normal Load.");
		return EOS_INFO_MISSING;
	}
	os_info = (const unsigned char *)os_info_address;
	memcpy(&magic, os_info, 8);
	if (!check(CHECK_MAGIC, magic == OS_INFO_MAGIC, magic, "os_info magic OSINFOSZ",
		   "os_info magic is wrong (EOS_INFO_MISSING)"))
		return EOS_INFO_MISSING;
	memcpy(&csum, os_info + 8, 4);
	if (!check(CHECK_CSUM, cksm(os_info + 0x0C, PAGE_SIZE - 0x0C, 0) == csum, csum,
		   "os_info checksum", "os_info checksum incorrect (EOS_INFO_CSUM_FAILED)"))
		return EOS_INFO_CSUM_FAILED;
	memcpy(&major, os_info + 0x0C, 2);
	if (!check(CHECK_VERSION, major <= 1, major, "os_info version 1",
		   "os_info major version too high (EOS_INFO_VERSION)"))
		return EOS_INFO_VERSION;
	memcpy(&crash_addr, os_info + 0x10, 8);
	if (!check(CHECK_CRASHKERNEL, crash_addr != 0, crash_addr, "crashkernel memory defined",
		   "no crashkernel memory defined: kdump is not loaded (EOS_INFO_NOCRASHKERNEL)"))
		return EOS_INFO_NOCRASHKERNEL;
	memcpy(&purgatory, os_info + 0x20 + 20 * OS_INFO_PURGATORY, 8);
	memcpy(&purgatory_size, os_info + 0x20 + 20 * OS_INFO_PURGATORY + 8, 8);
	memcpy(&entry_csum, os_info + 0x20 + 20 * OS_INFO_PURGATORY + 16, 4);
	if (!check(CHECK_PURGATORY_CSUM, purgatory && purgatory_size &&
		   purgatory + purgatory_size <= info.memory_size &&
		   cksm((const void *)purgatory, purgatory_size, 0) == entry_csum, purgatory,
		   "purgatory checksum", "purgatory checksum incorrect: the kdump code was overwritten"))
		return REASON_PURGATORY_CSUM;
	printk(KERN_NOTICE, "Calling the purgatory to verify the kdump kernel (SHA-256 of every segment)");
	{
		long (*verify)(long, const struct cpu_table *) = (void *)purgatory;
		long rc = verify(0, 0);

		if (!check(CHECK_PURGATORY_VERIFY, rc == 0, rc, "kdump kernel segments verified",
			   "a kdump kernel segment failed its SHA-256 check"))
			return REASON_PURGATORY_VERIFY;
	}
	return 0;
}

/* Everything checked out: restore the old system's lowcore and let the purgatory save the
 * notes, swap memory and start the kdump kernel. */
static void start_kdump(void) __attribute__((noreturn));
static void start_kdump(void)
{
	unsigned long purgatory;
	long (*load)(long, const struct cpu_table *);

	memcpy(&purgatory, (const void *)(os_info_address + 0x20 + 20 * OS_INFO_PURGATORY), 8);
	load = (void *)purgatory;
	printk(KERN_NOTICE, "Starting kdump: the purgatory saves the registers and swaps memory");
	hc_trace(TRACE_DUMPER_DECISION, 1, 0, cpus.count, 0);
	memcpy((void *)0, saved_lowcore, LOWCORE_SIZE);
	load(1, &cpus);
	stop(REASON_PURGATORY_VERIFY);
}

/* --- the full dump, s390 dump format -------------------------------------------------------- */

static void put_u64(unsigned long offset, unsigned long value) { memcpy(header + offset, &value, 8); }
static void put_u32(unsigned long offset, unsigned int value) { memcpy(header + offset, &value, 4); }
static void put_u16(unsigned long offset, unsigned short value) { memcpy(header + offset, &value, 2); }

static void build_header(unsigned long tod)
{
	memset(header, 0, sizeof(header));
	put_u64(0x000, S390_DUMP_MAGIC);
	put_u32(0x008, 5);			/* version, as zgetdump writes it */
	put_u32(0x00C, PAGE_SIZE);		/* hdr_size */
	put_u32(0x010, 4);			/* dump_level */
	put_u32(0x014, PAGE_SIZE);		/* page_size */
	put_u64(0x018, info.memory_size);	/* mem_size */
	put_u64(0x020, 0);			/* mem_start */
	put_u64(0x028, info.memory_size);	/* mem_end */
	put_u32(0x030, info.memory_size / PAGE_SIZE);
	put_u64(0x038, tod);
	put_u64(0x040, stidp());
	put_u32(0x048, 2);			/* arch: 64 bit */
	put_u32(0x050, 2);			/* build_arch */
	put_u64(0x054, info.memory_size);	/* mem_size_real */
	put_u16(0x05D, cpus.count);
	put_u16(0x05F, real_cpu_count);
	for (unsigned long i = 0; i < cpus.count; i++)
		put_u32(0x800 + 4 * i, cpus.prefix[i]);
}

static void dump_failed(const char *why, unsigned long code) __attribute__((noreturn));
static void dump_failed(const char *why, unsigned long code)
{
	printk(KERN_NOTICE, "%s", why);
	printk(KERN_NOTICE, "Dump failed");
	hc_trace(TRACE_DUMP_DONE, 0, 0, code, 0);
	stop(code);
}

static void write_blocks(unsigned long block, unsigned long count, const void *buffer)
{
	if (hc_block_write(info.ipl_devno, block, count, buffer) != 0)
		dump_failed("I/O error on the dump device", ESSCH);
}

static void write_memory(unsigned long first_block)
{
	unsigned long total_mb = info.memory_size / MiB, reported = 0;

	/* The lowcore as it was before this dumper ran. */
	write_blocks(first_block, LOWCORE_SIZE / PAGE_SIZE, saved_lowcore);
	for (unsigned long address = LOWCORE_SIZE; address < info.memory_size;) {
		unsigned long count = (info.memory_size - address) / PAGE_SIZE;

		if (count > CHUNK_BLOCKS)
			count = CHUNK_BLOCKS;
		write_blocks(first_block + address / PAGE_SIZE, count, (const void *)address);
		address += count * PAGE_SIZE;
		if (address / MiB >= reported + 64 || address == info.memory_size) {
			reported = address / MiB;
			printk(KERN_NOTICE, "%08lu / %08lu MB", reported, total_mb);
			hc_trace(TRACE_DUMP_PROGRESS, address, info.memory_size, 0, 0);
		}
	}
}

static void full_dump(unsigned long reason) __attribute__((noreturn));
static void full_dump(unsigned long reason)
{
	unsigned long device_blocks = hc_block_info(info.ipl_devno);
	unsigned long memory_blocks = info.memory_size / PAGE_SIZE;
	unsigned long end_block = DUMP_AREA_BLOCK + 1 + memory_blocks;
	unsigned long bytes = PAGE_SIZE + info.memory_size + 16;

	printk(KERN_NOTICE, "Taking a full dump instead (reason %04lx): all %lu MB of memory", reason,
	       info.memory_size / MiB);
	hc_trace(TRACE_DUMPER_DECISION, 2, reason, cpus.count, 0);
	printk(KERN_NOTICE, "Dumping 64 bit OS");
	if ((long)device_blocks < 0 || end_block + 1 > device_blocks)
		dump_failed("Device too small", EMEM);
	build_header(stck());
	write_blocks(DUMP_AREA_BLOCK, 1, header);
	write_memory(DUMP_AREA_BLOCK + 1);
	memset(header, 0, sizeof(header));
	put_u64(0, DUMP_END_MAGIC);
	put_u64(8, stck());
	write_blocks(end_block, 1, header);
	printk(KERN_NOTICE, "Dump successful");
	hc_trace(TRACE_DUMP_DONE, DUMP_AREA_BLOCK, bytes, EOK, 0);
	dump_exit(EOK);
}

/* --- main ------------------------------------------------------------------------------------- */

void dumper_main(void)
{
	psw_t *pgm_new = (psw_t *)(unsigned long)LC_PGM_NEW_PSW;
	unsigned long reason;

	memcpy(saved_lowcore, (const void *)0, LOWCORE_SIZE);
	pgm_new->mask = PSW_MASK_64;
	pgm_new->addr = (unsigned long)dumper_program_check;
	hc_machine_info(&info);
	printk(KERN_NOTICE, "DumpLab stand-alone dump tool (64 bit), kdump aware");
	hc_trace(TRACE_DUMPER_START, info.ipl_devno, info.memory_size, info.cpu_count, 0);
	collect_cpus();
	reason = kdump_checks();
	if (!reason)
		start_kdump();
	full_dump(reason);
}
