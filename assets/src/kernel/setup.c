/* start_kernel: parse the command line, lay out memory, set up lowcores and os_info, bring up
 * the other CPUs and start the workload. */
#include "kernel.h"

struct kernel_state kernel;

extern char _end[];
static unsigned long memblock_next;

void *memblock_alloc(unsigned long size, unsigned long align)
{
	unsigned long address = (memblock_next + align - 1) & ~(align - 1);

	if (address + size > kernel.workload_start && kernel.workload_start)
		panic("memblock: out of memory for %lu bytes", size);
	memblock_next = address + size;
	return (void *)address;
}

static unsigned long parse_size(const char *text)
{
	char *end;
	unsigned long value = strtoul(text, &end, 0);

	switch (*end) {
	case 'G': case 'g': return value << 30;
	case 'M': case 'm': return value << 20;
	case 'K': case 'k': return value << 10;
	default: return value;
	}
}

static void parse_word(const char *word)
{
	struct boot_params *p = &kernel.params;

	if (!strncmp(word, "crashkernel=", 12))
		p->crashkernel_size = parse_size(word + 12) & ~(MiB - 1);
	else if (!strncmp(word, "workload=", 9))
		p->workload_percent = strtoul(word + 9, NULL, 10);
	else if (!strncmp(word, "on_panic=", 9)) {
		if (!parse_action(word + 9, &p->on_panic))
			printk(KERN_WARNING, "setup: bad on_panic action '%s' ignored", word + 9);
	} else if (!strncmp(word, "on_restart=", 11)) {
		if (!parse_action(word + 11, &p->on_restart))
			printk(KERN_WARNING, "setup: bad on_restart action '%s' ignored", word + 11);
	} else if (!strncmp(word, "dumpdev=", 8))
		p->dump_devno = strtoul(word + 8, NULL, 16);
	else if (!strncmp(word, "kdump=", 6))
		p->kdump_at_boot = strtoul(word + 6, NULL, 10) != 0;
	else if (!strncmp(word, "loadparm=", 9))
		printk(KERN_INFO, "setup: load parameter %s", word + 9);
	else
		printk(KERN_WARNING, "setup: unknown kernel parameter '%s' ignored", word);
}

static void parse_command_line(void)
{
	char word[128];
	const char *p = command_line;

	printk(KERN_NOTICE, "Kernel command line: %s", command_line);
	while (*p) {
		unsigned int n = 0;

		while (*p == ' ')
			p++;
		while (*p && *p != ' ' && n < sizeof(word) - 1)
			word[n++] = *p++;
		while (*p && *p != ' ')
			p++;
		word[n] = 0;
		if (n)
			parse_word(word);
	}
}

static void setup_memory(void)
{
	unsigned long memory = kernel.machine.memory_size;
	unsigned long crash = kernel.params.crashkernel_size;
	unsigned long workload_end;

	printk(KERN_INFO, "setup: The maximum memory size is %luMB", memory >> 20);
	if (crash && crash <= memory / 2) {
		kernel.crash_base = memory - crash;
		printk(KERN_INFO, "setup: Reserving %luMB of memory at %luMB for crashkernel "
		       "(System RAM: %luMB)", crash >> 20, kernel.crash_base >> 20, kernel.crash_base >> 20);
	} else {
		if (crash)
			printk(KERN_WARNING, "setup: crashkernel=%luM is too large; none reserved", crash >> 20);
		kernel.params.crashkernel_size = 0;
		kernel.crash_base = memory;
	}
	memblock_next = (unsigned long)_end;
	/* Kernel data (lowcores, stacks, os_info) takes the first MiBs after the image; the
	 * workload fills its share of memory from the next 1 MiB boundary. */
	kernel.workload_start = ((unsigned long)_end + 2 * MAX_CPUS * 0x10000 + 8 * MiB) & ~(MiB - 1);
	kernel.workload_size = memory / 100 * kernel.params.workload_percent & ~(PAGE_SIZE - 1);
	workload_end = kernel.crash_base;
	if (kernel.workload_start + kernel.workload_size > workload_end)
		kernel.workload_size = workload_end > kernel.workload_start ?
			(workload_end - kernel.workload_start) & ~(PAGE_SIZE - 1) : 0;
}

void start_kernel(void)
{
	kernel.boot_tod = get_tod();
	kernel.params.on_panic = ACTION_STOP;
	kernel.params.on_restart = ACTION_STOP;
	kernel.params.workload_percent = 20;
	hc_machine_info(&kernel.machine);
	printk(KERN_NOTICE, "Linux version " KERNEL_RELEASE " (DumpLab production mini-kernel, s390x)");
	printk(KERN_INFO, "setup: Linux is running natively in 64-bit mode");
	parse_command_line();
	hc_trace(TRACE_BOOT_STAGE, 1, 1, 0, 0);
	setup_memory();
	setup_lowcore(0, (unsigned long)memblock_alloc(LOWCORE_SIZE, LOWCORE_SIZE));
	hc_trace(TRACE_BOOT_STAGE, 2, 1, 0, 0);
	os_info_init();
	kexec_init();
	hc_trace(TRACE_BOOT_STAGE, 3, 1, 0, 0);
	if (kernel.params.kdump_at_boot)
		kdump_load();
	smp_detect();
	workload_init();
	smp_boot_cpus();
	hc_trace(TRACE_BOOT_STAGE, 4, kernel.ncpus, 0, 0);
	call_on_stack(0, (unsigned long)memblock_alloc(0x4000, PAGE_SIZE) + 0x4000, cpu_loop);
}
