/* os_info (the checksummed structure dump tools find through absolute 0xE18) and the
 * VMCOREINFO note (pointer at absolute 0xE0C). Layout: S390_FACTS.md §2. */
#include "kernel.h"
#include "cksm.h"

#define OS_INFO_MAGIC          0x4f53494e464f535aUL	/* "OSINFOSZ" */
#define OS_INFO_VERSION_MAJOR  1
#define OS_INFO_VERSION_MINOR  1
#define OS_INFO_VMCOREINFO     0
#define OS_INFO_MAX            13
#define OS_INFO_CSUM_OFFSET    0x0C

struct os_info_entry {
	unsigned long addr;
	unsigned long size;
	unsigned int csum;
} __attribute__((packed));

struct os_info {
	unsigned long magic;
	unsigned int csum;
	unsigned short version_major;
	unsigned short version_minor;
	unsigned long crashkernel_addr;
	unsigned long crashkernel_size;
	struct os_info_entry entry[OS_INFO_MAX];
	unsigned char reserved[4096 - 0x20 - 20 * OS_INFO_MAX];
} __attribute__((packed));

_Static_assert(sizeof(struct os_info) == 4096, "os_info is one page");

static struct os_info os_info __attribute__((aligned(4096)));

/* An ELF note: namesz, descsz, type, "VMCOREINFO\0" padded to 12, then the text. */
#define VMCOREINFO_NOTE_SIZE 4096
#define VMCOREINFO_NAME_SIZE 12
static unsigned char vmcoreinfo_note[VMCOREINFO_NOTE_SIZE] __attribute__((aligned(8)));

extern char _text[];

static unsigned int os_info_csum(void)
{
	return cksm((unsigned char *)&os_info + OS_INFO_CSUM_OFFSET,
		    sizeof(os_info) - OS_INFO_CSUM_OFFSET, 0);
}

static unsigned long build_vmcoreinfo(void)
{
	char *text = (char *)vmcoreinfo_note + 12 + VMCOREINFO_NAME_SIZE;
	unsigned int *header = (unsigned int *)vmcoreinfo_note;
	int len;

	len = snprintf(text, VMCOREINFO_NOTE_SIZE - 24,
		       "OSRELEASE=" KERNEL_RELEASE "\n"
		       "PAGESIZE=4096\n"
		       "SYMBOL(_stext)=%lx\n"
		       "SYMBOL(lowcore_ptr)=%lx\n"
		       "LENGTH(lowcore_ptr)=%u\n"
		       "SYMBOL(heartbeat)=%lx\n"
		       "SYMBOL(workload_lock)=%lx\n"
		       "NUMBER(memory_size)=%lu\n"
		       "NUMBER(workload_start)=%lu\n"
		       "NUMBER(workload_size)=%lu\n"
		       "KERNELOFFSET=0\n",
		       (unsigned long)_text, (unsigned long)lowcore_ptr, MAX_CPUS,
		       (unsigned long)heartbeat, (unsigned long)&workload_lock,
		       kernel.machine.memory_size, kernel.workload_start, kernel.workload_size);
	header[0] = 11;		/* strlen("VMCOREINFO") + 1 */
	header[1] = len;
	header[2] = 0;
	memcpy(vmcoreinfo_note + 12, "VMCOREINFO", 11);
	return 24 + ((len + 3) & ~3);
}

static void os_info_update(void)
{
	os_info.csum = os_info_csum();
	hc_trace(TRACE_OS_INFO, (unsigned long)&os_info, os_info.csum, 0, 0);
}

void os_info_crashkernel_add(unsigned long base, unsigned long size)
{
	os_info.crashkernel_addr = base;
	os_info.crashkernel_size = size;
	os_info_update();
}

void os_info_entry_add(unsigned int index, unsigned long address, unsigned long size)
{
	struct os_info_entry *entry = &os_info.entry[index];

	entry->addr = address;
	entry->size = size;
	entry->csum = address ? cksm((void *)address, size, 0) : 0;
	os_info_update();
}

unsigned long os_info_address(void)
{
	return (unsigned long)&os_info;
}

void os_info_init(void)
{
	unsigned long note_size = build_vmcoreinfo();
	struct os_info_entry *entry = &os_info.entry[OS_INFO_VMCOREINFO];

	os_info.magic = OS_INFO_MAGIC;
	os_info.version_major = OS_INFO_VERSION_MAJOR;
	os_info.version_minor = OS_INFO_VERSION_MINOR;
	entry->addr = (unsigned long)vmcoreinfo_note;
	entry->size = note_size;
	entry->csum = cksm(vmcoreinfo_note, note_size, 0);
	os_info.csum = os_info_csum();
	write_absolute_u64(LC_OS_INFO, (unsigned long)&os_info);
	write_absolute_u64(LC_VMCORE_INFO, (unsigned long)vmcoreinfo_note);
	hc_trace(TRACE_OS_INFO, (unsigned long)&os_info, os_info.csum, 0, 0);
	printk(KERN_INFO, "os_info: at %016lx, version %u.%u, checksum %08x",
	       (unsigned long)&os_info, os_info.version_major, os_info.version_minor, os_info.csum);
}
