/* os_info (the checksummed structure dump tools find through absolute 0xE18) and the
 * VMCOREINFO note (pointer at absolute 0xE0C). Layout: S390_FACTS.md §2. */
#include "kernel.h"
#include "cksm.h"

#define OS_INFO_MAGIC          0x4f53494e464f535aUL	/* "OSINFOSZ" */
#define OS_INFO_VERSION_MAJOR  1
#define OS_INFO_VERSION_MINOR  1
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

/* The VMCOREINFO ELF note: namesz, descsz, type 0, "VMCOREINFO\0" padded to 12, then the text
 * (no NUL counted in descsz, zero-padded to 4 bytes). The lowcore field 0xE0C points at it, as
 * arch_crash_save_vmcoreinfo() arranges on Linux; os_info entry 0 stays empty, as upstream
 * leaves it, so the kdump kernel and dump tools take the lowcore pointer (S390_FACTS §6.6). */
#define VMCOREINFO_NOTE_SIZE 4096
#define VMCOREINFO_HEADER    24
#define VMCOREINFO_TEXT_MAX  (VMCOREINFO_NOTE_SIZE - VMCOREINFO_HEADER)
static unsigned char vmcoreinfo_note[VMCOREINFO_NOTE_SIZE] __attribute__((aligned(8)));
static unsigned int vmcoreinfo_len;

/* What uname(2) reports; crash and makedumpfile read it through SYMBOL(init_uts_ns). */
#define UTS_FIELD 65
struct new_utsname {
	char sysname[UTS_FIELD];
	char nodename[UTS_FIELD];
	char release[UTS_FIELD];
	char version[UTS_FIELD];
	char machine[UTS_FIELD];
	char domainname[UTS_FIELD];
};

struct uts_namespace {
	struct new_utsname name;	/* first, as OFFSET(uts_namespace.name)=0 says */
};

struct uts_namespace init_uts_ns = {
	.name = {
		.sysname = "Linux",
		.nodename = UTS_NODENAME,
		.release = KERNEL_RELEASE,
		.version = "#1 SMP DumpLab",
		.machine = "s390x",
		.domainname = "(none)",
	},
};

unsigned long high_memory;

extern char _text[], _samode31[], _eamode31[];
extern const unsigned char __start_build_id[], __stop_build_id[];

/* The kernel image's GNU build id (the linker's .note.gnu.build-id), as hex. */
static void build_id_hex(char *out, unsigned int out_size)
{
	const unsigned char *note = __start_build_id;
	unsigned int namesz, descsz, n = 0;

	out[0] = 0;
	if (__stop_build_id - __start_build_id < 16)
		return;
	memcpy(&namesz, note, 4);
	memcpy(&descsz, note + 4, 4);
	note += 12 + ((namesz + 3) & ~3U);
	for (unsigned int i = 0; i < descsz && n + 3 <= out_size; i++)
		n += snprintf(out + n, out_size - n, "%02x", note[i]);
}

static void vmcoreinfo_update_header(void)
{
	unsigned int *header = (unsigned int *)vmcoreinfo_note;

	header[0] = 11;		/* strlen("VMCOREINFO") + 1 */
	header[1] = vmcoreinfo_len;
	header[2] = 0;
	memcpy(vmcoreinfo_note + 12, "VMCOREINFO", 11);
}

static void build_vmcoreinfo(void)
{
	char *text = (char *)vmcoreinfo_note + VMCOREINFO_HEADER;
	char build_id[41];

	build_id_hex(build_id, sizeof(build_id));
	vmcoreinfo_len = snprintf(text, VMCOREINFO_TEXT_MAX,
		"OSRELEASE=" KERNEL_RELEASE "\n"
		"BUILD-ID=%s\n"
		"PAGESIZE=4096\n"
		"SYMBOL(init_uts_ns)=%lx\n"
		"OFFSET(uts_namespace.name)=0\n"
		"SYMBOL(_stext)=%lx\n"
		"SYMBOL(lowcore_ptr)=%lx\n"
		"SYMBOL(high_memory)=%lx\n"
		"LENGTH(lowcore_ptr)=%u\n"
		"SYMBOL(heartbeat)=%lx\n"
		"SYMBOL(workload_lock)=%lx\n"
		"NUMBER(memory_size)=%lu\n"
		"NUMBER(workload_start)=%lu\n"
		"NUMBER(workload_size)=%lu\n"
		"SAMODE31=%lx\n"
		"EAMODE31=%lx\n"
		"KERNELOFFSET=0\n",
		build_id, (unsigned long)&init_uts_ns, (unsigned long)_text,
		(unsigned long)lowcore_ptr, (unsigned long)&high_memory, MAX_CPUS,
		(unsigned long)heartbeat, (unsigned long)&workload_lock,
		kernel.machine.memory_size, kernel.workload_start, kernel.workload_size,
		(unsigned long)_samode31, (unsigned long)_eamode31);
	vmcoreinfo_update_header();
}

/* What crash_save_vmcoreinfo() adds when kdump takes over: the time of the crash, in seconds
 * since 1970, from the TOD clock (epoch 1900, bit 51 = 1 microsecond). */
#define TOD_UNITS_PER_SECOND 4096000000UL
#define SECONDS_1900_TO_1970 2208988800UL
void vmcoreinfo_crashtime(void)
{
	unsigned long seconds = get_tod() / TOD_UNITS_PER_SECOND - SECONDS_1900_TO_1970;
	char *text = (char *)vmcoreinfo_note + VMCOREINFO_HEADER;

	if (vmcoreinfo_len < VMCOREINFO_TEXT_MAX)
		vmcoreinfo_len += snprintf(text + vmcoreinfo_len, VMCOREINFO_TEXT_MAX - vmcoreinfo_len,
					   "CRASHTIME=%lu\n", seconds);
	vmcoreinfo_update_header();
}

static unsigned int os_info_csum(void)
{
	return cksm((unsigned char *)&os_info + OS_INFO_CSUM_OFFSET,
		    sizeof(os_info) - OS_INFO_CSUM_OFFSET, 0);
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
	high_memory = kernel.machine.memory_size;
	build_vmcoreinfo();
	os_info.magic = OS_INFO_MAGIC;
	os_info.version_major = OS_INFO_VERSION_MAJOR;
	os_info.version_minor = OS_INFO_VERSION_MINOR;
	os_info.csum = os_info_csum();
	write_absolute_u64(LC_OS_INFO, (unsigned long)&os_info);
	write_absolute_u64(LC_VMCORE_INFO, (unsigned long)vmcoreinfo_note);
	hc_trace(TRACE_OS_INFO, (unsigned long)&os_info, os_info.csum, 0, 0);
	printk(KERN_INFO, "os_info: at %016lx, version %u.%u, checksum %08x",
	       (unsigned long)&os_info, os_info.version_major, os_info.version_minor, os_info.csum);
}
