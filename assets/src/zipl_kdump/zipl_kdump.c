/* The stand-alone kdump loader (path D, S390_FACTS §0.3, §4.1): what zipl's boot stages do
 * for a kdump entry. Check os_info (pointer, magic, checksum, version, crashkernel) and
 * nothing else (no purgatory, no SHA-256); save the old [0, crash_size) into the crashkernel
 * region; load the kdump kernel from this device at 0x10000; set OLDMEM_BASE/SIZE; enter it
 * at 0x10010. Any failure: "Dump failed: Check disabled wait code" and a disabled wait with
 * the code (0x4520-0x4524). */
#include "libc.h"
#include "lowcore.h"
#include "hypercall.h"
#include "cksm.h"
#include "kexec.h"
#include "printk.h"

#define OS_INFO_MAGIC      0x4f53494e464f535aUL
#define PAGE_SIZE          4096UL
#define MiB                (1UL << 20)
#define OLDMEM_BASE        0x10418UL
#define OLDMEM_SIZE        0x10420UL

/* The kdump kernel on the device (machine/zipl_kdump.py writes it, docs/GUEST_ABI.md). */
#define KDUMP_DESCRIPTOR_BLOCK 128UL
#define KDUMP_DESCRIPTOR_MAGIC 0x444c4b44554d5031UL	/* "DLKDUMP1" */

/* Disabled-wait codes (S390_FACTS §4.2). */
#define EOS_INFO_MISSING        0x4520
#define EOS_INFO_CSUM_FAILED    0x4521
#define EOS_INFO_VERSION        0x4522
#define EOS_INFO_NOCRASHKERNEL  0x4523
#define EHSA_COPY_FAILED        0x4524

/* LOADER_CHECK kinds: the stand-alone dumper's first five (machine/sadump.py CHECKS), then
 * whether the kdump kernel could be read from the device. */
enum check {
	CHECK_POINTER = 1, CHECK_MAGIC, CHECK_CSUM, CHECK_VERSION, CHECK_CRASHKERNEL, CHECK_KERNEL,
};

struct kdump_descriptor {
	unsigned long magic;
	unsigned long image_block;	/* the kernel image from 0x10000, in 4 KiB blocks */
	unsigned long image_size;	/* bytes to load */
	unsigned long image_memsz;	/* bytes it needs from 0x10000, .bss included */
};

extern void loader_program_check(void);

static struct machine_info info;
static unsigned char saved_lowcore[LOWCORE_SIZE] __attribute__((aligned(8)));
static unsigned char block[PAGE_SIZE] __attribute__((aligned(8)));
static unsigned long crash_base, crash_size;

/* libc_stop: the disabled wait of zipl's boot code, 31-bit mask, the code as address. */
static void stop(unsigned long code) __attribute__((noreturn));
static void stop(unsigned long code)
{
	psw_t psw = { 0x0002000080000000UL, code };

	asm volatile("lpswe 0(%0)" : : "a" (&psw) : "memory");
	__builtin_unreachable();
}

/* kdump_failed(): the one message the real loader prints, then the code tells the rest. */
static void kdump_failed(unsigned long code) __attribute__((noreturn));
static void kdump_failed(unsigned long code)
{
	printk(KERN_EMERG, "Dump failed: Check disabled wait code");
	stop(code);
}

static int check(enum check kind, int ok, unsigned long value)
{
	hc_trace(TRACE_LOADER_CHECK, kind, ok, value, 0);
	return ok;
}

/* The os_info checks of kdump_os_info_check(), in its order; 0 or the wait code. The old
 * lowcore is read as the system left it (saved before this loader touched it). */
static unsigned long os_info_check(void)
{
	const unsigned char *os_info;
	unsigned long address, magic;
	unsigned int csum;
	unsigned short major;

	memcpy(&address, saved_lowcore + LC_OS_INFO, 8);
	if (!check(CHECK_POINTER, address && !(address & (PAGE_SIZE - 1)) &&
		   address + PAGE_SIZE <= info.memory_size, address))
		return EOS_INFO_MISSING;
	os_info = (const unsigned char *)address;
	memcpy(&magic, os_info, 8);
	if (!check(CHECK_MAGIC, magic == OS_INFO_MAGIC, magic))
		return EOS_INFO_MISSING;
	memcpy(&csum, os_info + 8, 4);
	if (!check(CHECK_CSUM, cksm(os_info + 0x0C, PAGE_SIZE - 0x0C, 0) == csum, csum))
		return EOS_INFO_CSUM_FAILED;
	memcpy(&major, os_info + 0x0C, 2);
	if (!check(CHECK_VERSION, major <= 1, major))
		return EOS_INFO_VERSION;
	memcpy(&crash_base, os_info + 0x10, 8);
	memcpy(&crash_size, os_info + 0x18, 8);
	if (!check(CHECK_CRASHKERNEL, crash_base != 0 && crash_size != 0, crash_base))
		return EOS_INFO_NOCRASHKERNEL;
	return 0;
}

/* The old [0, crash_size) into the crashkernel region: the lowcore as the system left it,
 * the rest as it is (this loader included, as zipl's stage 2 is in a real dump). */
static void save_old_memory(void)
{
	memcpy((void *)crash_base, saved_lowcore, LOWCORE_SIZE);
	memcpy((void *)(crash_base + LOWCORE_SIZE), (const void *)LOWCORE_SIZE, crash_size - LOWCORE_SIZE);
	hc_trace(TRACE_LOADER_COPY, crash_base, crash_size, 0, 0);
}

/* The kdump kernel from this device to 0x10000; 0 when it is there. */
static unsigned long load_kdump_kernel(void)
{
	struct kdump_descriptor d;
	unsigned long blocks;

	if (hc_block_read(info.ipl_devno, KDUMP_DESCRIPTOR_BLOCK, 1, block) != 0)
		return EHSA_COPY_FAILED;
	memcpy(&d, block, sizeof(d));
	blocks = (d.image_size + PAGE_SIZE - 1) / PAGE_SIZE;
	if (d.magic != KDUMP_DESCRIPTOR_MAGIC || !d.image_size || d.image_memsz < d.image_size ||
	    KDUMP_IMAGE_OFFSET + d.image_memsz > crash_size ||
	    KDUMP_IMAGE_OFFSET + blocks * PAGE_SIZE > crash_size)
		return EHSA_COPY_FAILED;
	if (hc_block_read(info.ipl_devno, d.image_block, blocks, (void *)KDUMP_IMAGE_OFFSET) != 0)
		return EHSA_COPY_FAILED;
	return 0;
}

static void enter_kdump(void) __attribute__((noreturn));
static void enter_kdump(void)
{
	*(volatile unsigned long *)OLDMEM_BASE = crash_base;
	*(volatile unsigned long *)OLDMEM_SIZE = crash_size;
	hc_trace(TRACE_LOADER_ENTER, KDUMP_ENTRY, crash_base, crash_size, 0);
	asm volatile("br %0" : : "a" (KDUMP_ENTRY) : "memory");
	__builtin_unreachable();
}

void loader_main(void)
{
	psw_t *pgm_new = (psw_t *)(unsigned long)LC_PGM_NEW_PSW;
	unsigned long code;

	memcpy(saved_lowcore, (const void *)0, LOWCORE_SIZE);
	pgm_new->mask = PSW_MASK_64;
	pgm_new->addr = (unsigned long)loader_program_check;
	hc_machine_info(&info);
	printk(KERN_NOTICE, "DumpLab stand-alone kdump (64 bit)");
	hc_trace(TRACE_LOADER_START, info.ipl_devno, info.memory_size, info.cpu_count, 0);
	code = os_info_check();
	if (code)
		kdump_failed(code);
	printk(KERN_NOTICE, "kdump: crashkernel at %lu MB, %lu MB: saving the old memory below it",
	       crash_base / MiB, crash_size / MiB);
	save_old_memory();
	code = load_kdump_kernel();
	if (!check(CHECK_KERNEL, code == 0, KDUMP_DESCRIPTOR_BLOCK))
		kdump_failed(code);
	enter_kdump();
}
