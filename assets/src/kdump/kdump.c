/* The kdump kernel: boots in [0, crash_size) after its head swapped memory (kexec path) or
 * after the stand-alone kdump loader copied the old [0, crash_size) away (path D); checks the
 * ELF core header and its notes (building both itself when no elfcorehdr= was given: the
 * stand-alone case), reads VMCOREINFO through the old system's os_info, presents old memory
 * with the swap undone, has the vmcore saved, and re-IPLs the production system. */
#include "libc.h"
#include "lowcore.h"
#include "hypercall.h"
#include "cksm.h"
#include "kexec.h"
#include "printk.h"
#include "diag308.h"
#include "sigp.h"
#include "elfnotes.h"

#define KERNEL_RELEASE "dumplab-kdump-1.0"
#define OS_INFO_MAGIC 0x4f53494e464f535aUL
#define PAGE_SIZE 4096UL
#define PT_NOTE 4
#define PT_LOAD 1


/* KDUMP_BOOT steps and KDUMP_CHECK kinds (docs/GUEST_ABI.md). */
#define BOOT_STARTED     1
#define BOOT_HEADER_OK   2
#define BOOT_READY       3
#define BOOT_SAVED       4
#define BOOT_SAVE_FAILED 5
#define CHECK_ELF_HEADER 1
#define CHECK_OLD_OS_INFO 2
#define CHECK_VMCOREINFO 3

/* Disabled-wait codes of the kdump kernel. */
#define WAIT_DONE        0x0000UL
#define WAIT_BAD_HEADER  0x4B01UL
#define WAIT_SAVE_FAILED 0x4B02UL

/* What to do when the vmcore cannot be saved (kdump-tools' FAILURE_ACTION). */
#define FAILURE_REBOOT 0
#define FAILURE_HALT   1
#define FAILURE_DUMP   2
static const char *const failure_names[] = { "reboot", "halt", "dump" };

extern char command_line[];
extern void kdump_program_check(void);

struct elf64_ehdr {
	unsigned char ident[16];
	unsigned short type, machine;
	unsigned int version;
	unsigned long entry, phoff, shoff;
	unsigned int flags;
	unsigned short ehsize, phentsize, phnum, shentsize, shnum, shstrndx;
};

struct elf64_phdr {
	unsigned int type, flags;
	unsigned long offset, vaddr, paddr, filesz, memsz, align;
};

static struct {
	unsigned long oldmem_base;
	unsigned long oldmem_size;
	unsigned long elfcorehdr;
	unsigned long dump_level;
	int reipl;
	int failure_action;
	unsigned int dump_devno;
} kdump = { .dump_level = 1, .reipl = 1, .failure_action = FAILURE_REBOOT, .dump_devno = 0x200 };

static void stop(unsigned long code) __attribute__((noreturn));
static void stop(unsigned long code)
{
	psw_t psw = { PSW_MASK_WAIT | PSW_MASK_64, code };

	asm volatile("lpswe 0(%0)" : : "a" (&psw) : "memory");
	__builtin_unreachable();
}

/* --- old memory, with the swap undone ----------------------------------------------------- */

static unsigned long old_to_new(unsigned long old)
{
	if (old < kdump.oldmem_size)
		return old + kdump.oldmem_base;
	if (old >= kdump.oldmem_base && old < kdump.oldmem_base + kdump.oldmem_size)
		return old - kdump.oldmem_base;
	return old;
}

static void copy_oldmem(void *to, unsigned long old, unsigned long len)
{
	memcpy(to, (const void *)old_to_new(old), len);
}

static unsigned long old_u64(unsigned long old)
{
	unsigned long value;

	copy_oldmem(&value, old, 8);
	return value;
}

/* --- command line --------------------------------------------------------------------------- */

static int parse_failure_action(const char *word)
{
	for (int i = 0; i < 3; i++) {
		unsigned long n = strlen(failure_names[i]);

		if (!strncmp(word, failure_names[i], n) && (word[n] == ' ' || !word[n]))
			return i;
	}
	return FAILURE_REBOOT;
}

static void parse_command_line(void)
{
	const char *p = command_line;

	while (*p) {
		while (*p == ' ')
			p++;
		if (!strncmp(p, "elfcorehdr=", 11))
			kdump.elfcorehdr = strtoul(p + 11, NULL, 0);
		else if (!strncmp(p, "dump_level=", 11))
			kdump.dump_level = strtoul(p + 11, NULL, 0);
		else if (!strncmp(p, "reipl=", 6))
			kdump.reipl = strtoul(p + 6, NULL, 0) != 0;
		else if (!strncmp(p, "failure_action=", 15))
			kdump.failure_action = parse_failure_action(p + 15);
		else if (!strncmp(p, "dump_devno=", 11))
			kdump.dump_devno = strtoul(p + 11, NULL, 0);
		while (*p && *p != ' ')
			p++;
	}
}

/* --- the ELF core header --------------------------------------------------------------------- */

static struct elf64_ehdr *header(void)
{
	return (struct elf64_ehdr *)kdump.elfcorehdr;
}

static struct elf64_phdr *phdr(unsigned int i)
{
	return (struct elf64_phdr *)(kdump.elfcorehdr + header()->phoff) + i;
}

static int header_valid(void)
{
	const struct elf64_ehdr *h = header();
	int ok = kdump.elfcorehdr && !memcmp(h->ident, "\177ELF\2\2\1", 7) && h->type == 4 &&
		 h->machine == 22 && h->phoff == 64 && h->phentsize == 56 && h->phnum >= 2 &&
		 phdr(0)->type == PT_NOTE;

	hc_trace(TRACE_KDUMP_CHECK, CHECK_ELF_HEADER, ok, kdump.elfcorehdr, 0);
	if (!ok)
		printk(KERN_ERR, "kdump: elfcorehdr at %016lx is not a valid s390x ELF core header",
		       kdump.elfcorehdr);
	return ok;
}

/* Walk the notes the purgatory wrote; say which CPUs they describe. */
static unsigned int report_cpus(void)
{
	const struct elf64_phdr *note = phdr(0);
	const unsigned char *p = (const unsigned char *)note->offset;
	const unsigned char *end = p + note->filesz;
	unsigned int cpus = 0, prefix = 0;
	const unsigned char *prstatus = NULL;

	while (p + 12 <= end) {
		unsigned int namesz, descsz, type;
		const unsigned char *desc;

		memcpy(&namesz, p, 4);
		memcpy(&descsz, p + 4, 4);
		memcpy(&type, p + 8, 4);
		desc = p + 12 + ((namesz + 3) & ~3U);
		if (type == 1) {
			prstatus = desc;
			cpus++;
		} else if (type == 0x305 && prstatus) {
			unsigned int pid;
			unsigned long psw[2];

			memcpy(&prefix, desc, 4);
			memcpy(&pid, prstatus + 32, 4);
			memcpy(psw, prstatus + 112, 16);
			printk(KERN_INFO, "kdump: CPU pid %u: PSW %016lx %016lx prefix %08x", pid,
			       psw[0], psw[1], prefix);
		}
		p = desc + ((descsz + 3) & ~3U);
	}
	return cpus;
}

/* --- stand-alone mode: the ELF core header built here ---------------------------------------- */

/* Without elfcorehdr= (a stand-alone kdump loader started us, no kexec prepared a header)
 * the kernel builds the header itself, as Linux's crash_dump.c does: notes of every CPU (the
 * IPL CPU's status from the old system's 0x1200, where Load with store status put it; the
 * others by SIGP stop and store status), PT_LOADs of old memory without the crashkernel region. */
#define SA_NOTES_OFFSET  0x1000UL
#define PRPSINFO_SIZE    136
#define NT_PRPSINFO      3

/* Where kexec would have put it (ELFCOREHDR_OFFSET): free memory of ours in [0, crash_size)
 * when a loader started us, and not part of the image, so kexec's digests stay small. */
static unsigned char *const standalone_header = (unsigned char *)ELFCOREHDR_OFFSET;
static unsigned char cpu_save[LC_SAVE_AREA_SIZE] __attribute__((aligned(8)));

static unsigned int stap(void)
{
	unsigned short address;

	asm volatile("stap %0" : "=Q" (address));
	return address;
}

static unsigned char *put_prpsinfo(unsigned char *p)
{
	unsigned char desc[PRPSINFO_SIZE];

	memset(desc, 0, sizeof(desc));
	desc[1] = 'R';				/* pr_sname */
	memcpy(desc + 40, "vmlinux", 7);	/* pr_fname */
	return put_note(p, "CORE", NT_PRPSINFO, desc, sizeof(desc));
}

/* Every CPU's notes, the IPL CPU (this one) first; returns the end of the notes. */
static unsigned char *put_standalone_cpu_notes(unsigned char *p)
{
	unsigned int self = stap(), pid = 1;

	copy_oldmem(cpu_save, LC_FPREGS_SAVE_AREA, LC_SAVE_AREA_SIZE);
	p = put_cpu_notes(p, cpu_save, pid++);
	for (unsigned int cpu = 0; cpu < KEXEC_MAX_CPUS; cpu++) {
		unsigned int status = 0;

		if (cpu == self)
			continue;
		/* Gaps in the CPU addresses answer cc 3: look at every address. */
		if (sigp(cpu, SIGP_STOP_AND_STORE_STATUS, 0, &status) != SIGP_CC_ORDER_CODE_ACCEPTED)
			continue;
		memcpy(cpu_save, (const void *)LC_FPREGS_SAVE_AREA, LC_SAVE_AREA_SIZE);
		p = put_cpu_notes(p, cpu_save, pid++);
	}
	return p;
}

static void put_phdr(unsigned int i, unsigned int type, unsigned long start, unsigned long size)
{
	struct elf64_phdr *ph = (struct elf64_phdr *)(standalone_header + 64) + i;

	ph->type = type;
	ph->flags = type == PT_LOAD ? 7 : 0;
	ph->offset = start;
	ph->vaddr = type == PT_LOAD ? start : 0;
	ph->paddr = ph->vaddr;
	ph->filesz = size;
	ph->memsz = size;
	ph->align = type == PT_LOAD ? PAGE_SIZE : 0;
}

static void build_standalone_header(unsigned long memory_size)
{
	struct elf64_ehdr *h = (struct elf64_ehdr *)standalone_header;
	unsigned char *notes = standalone_header + SA_NOTES_OFFSET;
	unsigned long end = kdump.oldmem_base + kdump.oldmem_size;
	unsigned char *p;
	unsigned short phnum = 2;

	memset(standalone_header, 0, SA_NOTES_OFFSET);
	memcpy(h->ident, "\177ELF\2\2\1", 7);
	h->type = 4;			/* ET_CORE */
	h->machine = 22;		/* EM_S390 */
	h->version = 1;
	h->phoff = 64;
	h->ehsize = 64;
	h->phentsize = 56;
	p = put_standalone_cpu_notes(put_prpsinfo(notes));
	put_phdr(0, PT_NOTE, (unsigned long)notes, p - notes);
	put_phdr(1, PT_LOAD, 0, kdump.oldmem_base);
	if (end < memory_size)
		put_phdr(phnum++, PT_LOAD, end, memory_size - end);
	h->phnum = phnum;
	kdump.elfcorehdr = (unsigned long)standalone_header;
	printk(KERN_INFO, "kdump: stand-alone dump: ELF core header built at %016lx", kdump.elfcorehdr);
}

/* --- os_info and VMCOREINFO of the old system ------------------------------------------------ */

static unsigned char old_os_info[PAGE_SIZE] __attribute__((aligned(8)));
static char vmcoreinfo[PAGE_SIZE];

static int read_old_os_info(void)
{
	unsigned long address = old_u64(LC_OS_INFO);
	unsigned long magic, crash_addr, crash_size;
	unsigned int csum;
	int ok;

	if (!address || address & (PAGE_SIZE - 1)) {
		printk(KERN_WARNING, "os_info: no os_info in the old system (pointer %016lx)", address);
		hc_trace(TRACE_KDUMP_CHECK, CHECK_OLD_OS_INFO, 0, address, 0);
		return 0;
	}
	copy_oldmem(old_os_info, address, PAGE_SIZE);
	memcpy(&magic, old_os_info, 8);
	memcpy(&csum, old_os_info + 8, 4);
	ok = magic == OS_INFO_MAGIC && csum == cksm(old_os_info + 0x0C, PAGE_SIZE - 0x0C, 0);
	hc_trace(TRACE_KDUMP_CHECK, CHECK_OLD_OS_INFO, ok, address, 0);
	if (!ok) {
		printk(KERN_WARNING, "os_info: checksum failed (os_info at %016lx)", address);
		return 0;
	}
	memcpy(&crash_addr, old_os_info + 0x10, 8);
	memcpy(&crash_size, old_os_info + 0x18, 8);
	printk(KERN_INFO, "os_info: crashkernel: addr=0x%lx size=%lu", crash_addr, crash_size);
	return 1;
}

/* The VMCOREINFO note we append: a header of our own around the old system's text. */
static void vmcoreinfo_header(unsigned int descsz)
{
	unsigned int header[3] = { 11, descsz, 0 };	/* namesz = strlen("VMCOREINFO") + 1 */

	memcpy(vmcoreinfo, header, 12);
	memcpy(vmcoreinfo + 12, "VMCOREINFO\0\0", 12);
}

/* os_info entry 0 holds the VMCOREINFO text itself (the note's descriptor), checksummed; the
 * kernel leaves it empty today. Returns the text's size, 0 if there is none. */
static unsigned long vmcoreinfo_from_os_info(int os_info_ok)
{
	unsigned long addr = 0, size = 0;
	unsigned int csum = 0;

	if (!os_info_ok)
		return 0;
	memcpy(&addr, old_os_info + 0x20, 8);
	memcpy(&size, old_os_info + 0x28, 8);
	memcpy(&csum, old_os_info + 0x30, 4);
	if (!addr || !size || size > PAGE_SIZE - 24) {
		printk(KERN_INFO, "os_info: entry 0: not available (addr=0x%lx size=%lu)", addr, size);
		return 0;
	}
	copy_oldmem(vmcoreinfo + 24, addr, size);
	if (cksm((unsigned char *)vmcoreinfo + 24, size, 0) != csum) {
		printk(KERN_WARNING, "os_info: entry 0: checksum failed (addr=0x%lx size=%lu)", addr, size);
		return 0;
	}
	printk(KERN_INFO, "os_info: entry 0: copied (addr=0x%lx size=%lu)", addr, size);
	return size;
}

/* The note the lowcore field 0xE0C points at: header checked, its text returned. */
static unsigned long vmcoreinfo_from_lowcore(unsigned long *note)
{
	unsigned int namesz, descsz;
	unsigned char header_bytes[24];

	copy_oldmem(note, LC_VMCORE_INFO, 8);
	printk(KERN_INFO, "kdump: VMCOREINFO through the lowcore pointer 0xE0C: %016lx", *note);
	if (!*note)
		return 0;
	copy_oldmem(header_bytes, *note, 24);
	memcpy(&namesz, header_bytes, 4);
	memcpy(&descsz, header_bytes + 4, 4);
	if (namesz != 11 || memcmp(header_bytes + 12, "VMCOREINFO", 11) || descsz > PAGE_SIZE - 24)
		return 0;
	copy_oldmem(vmcoreinfo + 24, *note + 24, descsz);
	return descsz;
}

/* VMCOREINFO in the kernel's order (nt_vmcoreinfo): os_info entry 0, else the note at 0xE0C.
 * Returns the size of the whole note built in vmcoreinfo[], 0 if there is none. */
static unsigned long read_vmcoreinfo(int os_info_ok)
{
	unsigned long note = 0, text = vmcoreinfo_from_os_info(os_info_ok);

	if (!text)
		text = vmcoreinfo_from_lowcore(&note);
	hc_trace(TRACE_KDUMP_CHECK, CHECK_VMCOREINFO, text != 0, note, text);
	if (!text)
		return 0;
	vmcoreinfo_header(text);
	memset(vmcoreinfo + 24 + text, 0, ((text + 3) & ~3UL) - text);
	return 24 + ((text + 3) & ~3UL);
}

/* Put VMCOREINFO last in the PT_NOTE, after the CPUs' notes, as a kernel vmcore has it. */
static void append_vmcoreinfo(unsigned long size)
{
	struct elf64_phdr *note = phdr(0);

	if (!size)
		return;
	memcpy((void *)(note->offset + note->filesz), vmcoreinfo, size);
	note->filesz += size;
	note->memsz = note->filesz;
}

/* --- re-IPL of the production system ------------------------------------------------------- */

static unsigned char ipib[IPIB_SIZE] __attribute__((aligned(8)));

static void reipl_production(void)
{
	unsigned int devno = old_u64(0x10400);

	printk(KERN_NOTICE, "kdump: re-IPL of the production system from device %04x", devno);
	build_ccw_ipib(ipib, devno);
	diag308(DIAG308_SET, ipib);
	diag308(DIAG308_LOAD_CLEAR, 0);	/* the dump is saved: the old memory is not needed */
	printk(KERN_ERR, "kdump: re-IPL refused");
}

/* The failure action: re-IPL the production system (the dump is lost), halt in a disabled
 * wait (the operator can still take a stand-alone dump), or IPL the stand-alone dumper
 * ourselves, which then writes a full dump holding both systems. */
static void save_failed(void) __attribute__((noreturn));
static void save_failed(void)
{
	hc_trace(TRACE_KDUMP_BOOT, BOOT_SAVE_FAILED, kdump.failure_action, 0, 0);
	printk(KERN_EMERG, "kdump: failure action: %s", failure_names[kdump.failure_action]);
	if (kdump.failure_action == FAILURE_REBOOT) {
		reipl_production();
	} else if (kdump.failure_action == FAILURE_DUMP) {
		printk(KERN_EMERG, "kdump: IPL of the stand-alone dumper on device %04x", kdump.dump_devno);
		build_ccw_ipib(ipib, kdump.dump_devno);
		diag308(DIAG308_SET, ipib);
		diag308(DIAG308_LOAD_NORMAL_DUMP, 0);
		printk(KERN_ERR, "kdump: the dump device could not be IPL'd");
	}
	stop(WAIT_SAVE_FAILED);
}

/* --- main -------------------------------------------------------------------------------------- */

static void setup_lowcore(void)
{
	psw_t *pgm_new = (psw_t *)(unsigned long)LC_PGM_NEW_PSW;

	pgm_new->mask = PSW_MASK_64;
	pgm_new->addr = (unsigned long)kdump_program_check;
}

void kdump_main(void)
{
	struct machine_info info;
	unsigned int cpus;
	unsigned long vmcoreinfo_size;
	long rc;

	setup_lowcore();
	kdump.oldmem_base = *(volatile unsigned long *)0x10418UL;
	kdump.oldmem_size = *(volatile unsigned long *)0x10420UL;
	hc_machine_info(&info);
	parse_command_line();
	printk(KERN_NOTICE, "Linux version " KERNEL_RELEASE " (DumpLab kdump kernel, s390x)");
	printk(KERN_NOTICE, "Kernel command line: %s", command_line);
	printk(KERN_INFO, "setup: The maximum memory size is %luMB", kdump.oldmem_size >> 20);
	printk(KERN_INFO, "kdump: OLDMEM_BASE=0x%lx OLDMEM_SIZE=0x%lx elfcorehdr=0x%lx",
	       kdump.oldmem_base, kdump.oldmem_size, kdump.elfcorehdr);
	printk(KERN_INFO, "smp: Brought up 1 node, 1 CPU (%u configured)", info.cpu_count);
	hc_trace(TRACE_KDUMP_BOOT, BOOT_STARTED, kdump.oldmem_base, kdump.oldmem_size, kdump.elfcorehdr);
	if (kdump.oldmem_size && !kdump.elfcorehdr)
		build_standalone_header(info.memory_size);
	if (!kdump.oldmem_size || !header_valid())
		stop(WAIT_BAD_HEADER);
	cpus = report_cpus();
	printk(KERN_INFO, "kdump: %u CPU%s found in the ELF notes", cpus, cpus == 1 ? "" : "s");
	hc_trace(TRACE_KDUMP_BOOT, BOOT_HEADER_OK, cpus, 0, 0);
	vmcoreinfo_size = read_vmcoreinfo(read_old_os_info());
	append_vmcoreinfo(vmcoreinfo_size);
	printk(KERN_NOTICE, "kdump: /proc/vmcore ready: %lu MB of old memory, %u CPUs",
	       info.memory_size >> 20, cpus);
	hc_trace(TRACE_KDUMP_BOOT, BOOT_READY, cpus, vmcoreinfo_size, 0);
	rc = hypercall(HC_VMCORE_SAVE, kdump.elfcorehdr, PAGE_SIZE * 16, kdump.dump_level, 0, 0);
	if (rc) {
		printk(KERN_ERR, "kdump: saving the vmcore failed (%ld)", rc);
		save_failed();
	}
	printk(KERN_NOTICE, "kdump: vmcore saved");
	hc_trace(TRACE_KDUMP_BOOT, BOOT_SAVED, 0, 0, 0);
	if (kdump.reipl)
		reipl_production();
	stop(WAIT_DONE);
}
