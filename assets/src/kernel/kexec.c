/* kexec -p (the system call's half) and crash_kexec: load the kdump kernel the host's kexec
 * tool prepared into the crashkernel region, record it in os_info, and on a panic or a PSW
 * restart verify it with the purgatory and hand over to it. */
#include "kernel.h"
#include "kexec.h"

#define STAGING_SIZE (2 * MiB)
#define TRIGGER_NOT_LOADED 1
#define TRIGGER_VERIFY     2
#define TRIGGER_LOAD       3

static unsigned char *staging;
static struct kexec_descriptors descriptors __attribute__((aligned(8)));
static struct cpu_table cpu_table __attribute__((aligned(8)));
static unsigned long purgatory_entry;
int kexec_crash_loaded;

void store_status_self(void *area);

void kexec_init(void)
{
	staging = memblock_alloc(STAGING_SIZE, PAGE_SIZE);
}

static int segment_fits(const struct kexec_segment *s)
{
	unsigned long end = kernel.crash_base + kernel.params.crashkernel_size;

	return s->bufsz <= s->memsz && s->mem >= kernel.crash_base && s->mem + s->memsz <= end &&
	       s->buf_offset + s->bufsz <= STAGING_SIZE;
}

static int descriptors_valid(void)
{
	if (descriptors.nr_segments == 0 || descriptors.nr_segments > KEXEC_MAX_SEGMENTS ||
	    descriptors.purgatory_segment >= descriptors.nr_segments)
		return 0;
	for (unsigned long i = 0; i < descriptors.nr_segments; i++)
		if (!segment_fits(&descriptors.segment[i]))
			return 0;
	return 1;
}

void kdump_load(void)
{
	long n;
	const struct kexec_segment *purgatory;

	if (!kernel.params.crashkernel_size) {
		printk(KERN_ERR, "kdump: no crashkernel memory reserved (crashkernel= missing)");
		return;
	}
	n = hypercall(HC_KEXEC_PREPARE, kernel.crash_base, kernel.params.crashkernel_size,
		      (unsigned long)staging, STAGING_SIZE, (unsigned long)&descriptors);
	if (n <= 0 || !descriptors_valid()) {
		printk(KERN_ERR, "kdump: kexec could not prepare the kdump kernel (%ld)", n);
		return;
	}
	kexec_crash_loaded = 0;
	for (unsigned long i = 0; i < descriptors.nr_segments; i++) {
		const struct kexec_segment *s = &descriptors.segment[i];

		memset((void *)s->mem, 0, s->memsz);
		memcpy((void *)s->mem, staging + s->buf_offset, s->bufsz);
		printk(KERN_INFO, "kdump: segment %lu: %lu bytes at %016lx", i, s->memsz, s->mem);
	}
	purgatory = &descriptors.segment[descriptors.purgatory_segment];
	purgatory_entry = descriptors.entry;
	os_info_crashkernel_add(kernel.crash_base, kernel.params.crashkernel_size);
	os_info_entry_add(OS_INFO_PURGATORY, purgatory->mem, descriptors.purgatory_checked_size);
	kexec_crash_loaded = 1;
	printk(KERN_NOTICE, "kdump: kdump kernel loaded: %lu segments, purgatory entry %016lx",
	       descriptors.nr_segments, purgatory_entry);
	hc_trace(TRACE_KEXEC_LOADED, 1, descriptors.nr_segments, purgatory_entry, 0);
}

void kdump_unload(void)
{
	if (!kexec_crash_loaded) {
		printk(KERN_INFO, "kdump: not loaded");
		return;
	}
	kexec_crash_loaded = 0;
	os_info_crashkernel_add(0, 0);
	os_info_entry_add(OS_INFO_PURGATORY, 0, 0);
	printk(KERN_NOTICE, "kdump: kdump kernel unloaded");
	hc_trace(TRACE_KEXEC_LOADED, 0, 0, 0, 0);
}

void kdump_status(void)
{
	if (kexec_crash_loaded)
		printk(KERN_INFO, "kdump: loaded, crashkernel %luMB at %016lx, purgatory entry %016lx",
		       kernel.params.crashkernel_size >> 20, kernel.crash_base, purgatory_entry);
	else
		printk(KERN_INFO, "kdump: not loaded (crashkernel %luMB at %016lx)",
		       kernel.params.crashkernel_size >> 20, kernel.crash_base);
}

static long call_purgatory(long mode, const struct cpu_table *cpus)
{
	long (*purgatory)(long, const struct cpu_table *) = (void *)purgatory_entry;

	return purgatory(mode, cpus);
}

/* Every other CPU is stopped; have each store its status in its own lowcore, as the real
 * kernel does with SIGP STORE STATUS AT ADDRESS, and list them after the dumping CPU. */
static void store_other_cpus(unsigned int self)
{
	cpu_table.count = 1;
	cpu_table.prefix[0] = lowcore_ptr[self];
	for (unsigned int cpu = 0; cpu < kernel.ncpus; cpu++) {
		unsigned int status;

		if (cpu == self)
			continue;
		if (sigp(cpu_address[cpu], SIGP_STORE_STATUS_AT_ADDRESS, lowcore_ptr[cpu] + LC_FPREGS_SAVE_AREA,
			 &status) == SIGP_CC_ORDER_CODE_ACCEPTED)
			cpu_table.prefix[cpu_table.count++] = lowcore_ptr[cpu];
	}
}

/* After a successful verify: store all status, reset this CPU's prefix to 0 (what the
 * system reset does), put our own status at absolute 0x1200, and enter the purgatory in load
 * mode. It does not come back unless its checks fail. */
static void machine_kdump(unsigned int self) __attribute__((noreturn));
static void machine_kdump(unsigned int self)
{
	unsigned long lowcore = lowcore_ptr[self];
	unsigned int zero = 0;

	store_other_cpus(self);
	/* Real 0x1200 is our own lowcore's save area (prefixing), absolute lowcore + 0x1200. */
	store_status_self((void *)LC_FPREGS_SAVE_AREA);
	asm volatile("spx %0" : : "Q" (zero) : "memory");
	memcpy((void *)LC_FPREGS_SAVE_AREA, (void *)(lowcore + LC_FPREGS_SAVE_AREA), LC_SAVE_AREA_SIZE);
	hc_trace(TRACE_CRASH_KEXEC, TRIGGER_LOAD, self, 0, 0);
	call_purgatory(1, &cpu_table);
	stop_here();
}

/* On the IPL CPU, called by the CPU that crashed (its number in `source`): once that CPU has
 * stopped, store everyone's status and hand over to the purgatory. */
static void machine_kdump_on_ipl_cpu(unsigned long source) __attribute__((noreturn));
static void machine_kdump_on_ipl_cpu(unsigned long source)
{
	unsigned int self = smp_processor_id();

	if (source != self)
		smp_wait_stopped(source);
	machine_kdump(self);
}

/* The kernel's half of kdump: returns only when kdump cannot be used. The checks run on the
 * CPU that crashed; the hand-over runs on the IPL CPU (Linux: smp_call_ipl_cpu), so the
 * vmcore's first CPU note is the IPL CPU's. */
void crash_kexec(void)
{
	unsigned int self = smp_processor_id();
	long rc;

	if (!kexec_crash_loaded) {
		printk(KERN_EMERG, "kdump: no kdump kernel loaded");
		hc_trace(TRACE_CRASH_KEXEC, TRIGGER_NOT_LOADED, self, 0, 0);
		return;
	}
	vmcoreinfo_crashtime();	/* as crash_save_vmcoreinfo() before the checks */
	printk(KERN_EMERG, "kdump: verifying the kdump kernel (purgatory, verify mode)");
	rc = call_purgatory(0, NULL);
	hc_trace(TRACE_CRASH_KEXEC, TRIGGER_VERIFY, self, rc, 0);
	if (rc != 0) {
		printk(KERN_EMERG, "kdump: checksum verification failed: kdump is not possible");
		return;
	}
	printk(KERN_EMERG, "kdump: starting the kdump kernel");
	smp_call_ipl_cpu(machine_kdump_on_ipl_cpu, self);
	stop_here();
}
