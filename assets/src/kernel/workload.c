/* The workload every CPU runs: fill its share of memory with recognisable pages, keep a
 * heartbeat, run operator commands, idle (tickless) until the next heartbeat. And the hangs
 * the fault catalogue asks for. */
#include "kernel.h"

unsigned long heartbeat[MAX_CPUS];
volatile unsigned int workload_lock;	/* lock A: every tick takes it */
volatile unsigned int lock_b;
volatile int loop_hang;
static volatile int deadlock_partner = -1;
static volatile int deadlock_stage;
static volatile unsigned int cpus_in_loop;
static volatile unsigned int cpus_filled;

#define PAGE_MAGIC 0xD0D0CAFE00000000UL
#define CHUNK_PAGES 16
/* An idle CPU wakes once a second for its heartbeat, all CPUs at the same whole seconds since
 * boot (one wake-up of the machine, not one per CPU at scattered times). */
#define HEARTBEAT_TOD (1000UL * 4096000UL)

struct cpu_work {
	unsigned long start;
	unsigned long pages;
	unsigned long filled;
	unsigned long generation;
};
static struct cpu_work work[MAX_CPUS];

void workload_init(void)
{
	unsigned long pages = kernel.workload_size / PAGE_SIZE;
	unsigned long share = pages / kernel.ncpus;

	for (unsigned int cpu = 0; cpu < kernel.ncpus; cpu++) {
		work[cpu].start = kernel.workload_start + cpu * share * PAGE_SIZE;
		work[cpu].pages = share;
	}
	printk(KERN_INFO, "workload: %lu MB of recognisable data at %016lx, %lu pages per CPU",
	       kernel.workload_size >> 20, kernel.workload_start, share);
}

/* A page that says whose it is: a text header, then words derived from its address. */
static void fill_page(unsigned long address, unsigned int cpu, unsigned long index, unsigned long gen)
{
	unsigned long *word = (unsigned long *)address;

	snprintf((char *)address, 64, "DUMPLAB cpu %02u page %08lx gen %08lu", cpu, index, gen);
	for (unsigned long i = 8; i < PAGE_SIZE / 8; i++)
		word[i] = PAGE_MAGIC ^ (address + i * 8) ^ gen;
}

static void fill_chunk(unsigned int cpu)
{
	struct cpu_work *w = &work[cpu];
	unsigned long end = w->filled + CHUNK_PAGES;

	if (end > w->pages)
		end = w->pages;
	for (; w->filled < end; w->filled++)
		fill_page(w->start + w->filled * PAGE_SIZE, cpu, w->filled, 0);
	if (w->filled < w->pages)
		return;
	printk(KERN_INFO, "workload: CPU %u filled %lu pages", cpu, w->pages);
	if (__sync_add_and_fetch(&cpus_filled, 1) == kernel.ncpus) {
		printk(KERN_NOTICE, "workload: %lu MB of recognisable data in place",
		       kernel.workload_size >> 20);
		hc_trace(TRACE_BOOT_STAGE, 6, kernel.ncpus, kernel.workload_size, 0);
	}
}

/* After the fill: rewrite one page per heartbeat so memory keeps changing. */
static void touch_page(unsigned int cpu)
{
	struct cpu_work *w = &work[cpu];

	if (!w->pages)
		return;
	w->generation++;
	fill_page(w->start + (w->generation % w->pages) * PAGE_SIZE, cpu,
		  w->generation % w->pages, w->generation);
}

static void beat(unsigned int cpu)
{
	unsigned long flags = irq_disable();

	spin_lock(&workload_lock);
	heartbeat[cpu]++;
	spin_unlock(&workload_lock);
	irq_restore(flags);
}

/* The next whole heartbeat period since boot, strictly after now. */
static unsigned long next_heartbeat(unsigned long now)
{
	unsigned long since_boot = now - kernel.boot_tod;

	return kernel.boot_tod + (since_boot / HEARTBEAT_TOD + 1) * HEARTBEAT_TOD;
}

/* Tickless idle: with nothing to do until the next heartbeat, stop the 10 ms tick and program
 * the clock comparator for that heartbeat, then wait. Interruptions are off until the wait
 * PSW enables them, so no tick can re-arm the comparator in between. An operator command
 * (service signal) or a signal from another CPU ends the wait early. On the way out the tick
 * runs again, so a CPU that gets busy (a command, a hang) has its timer as before. */
static void idle_until_heartbeat(void)
{
	irq_disable();
	set_clock_comparator(next_heartbeat(get_tod()));
	psw_idle();
	arm_tick();
}

static void enter_loop(void) __attribute__((noreturn));
static void enter_loop(void)
{
	irq_enable();
	for (;;)
		barrier();
}

static void announce(unsigned int cpu)
{
	hc_trace(TRACE_WORKLOAD_START, cpu, work[cpu].start, work[cpu].pages * PAGE_SIZE, 0);
	if (__sync_add_and_fetch(&cpus_in_loop, 1) == kernel.ncpus) {
		printk(KERN_NOTICE, "workload: running on all %u CPUs", kernel.ncpus);
		hc_trace(TRACE_BOOT_STAGE, 5, kernel.ncpus, 0, 0);
	}
}

void cpu_loop(unsigned long cpu)
{
	announce(cpu);
	arm_tick();
	irq_enable();
	for (;;) {
		if (loop_hang)
			enter_loop();
		beat(cpu);
		process_os_commands();
		if (work[cpu].filled < work[cpu].pages) {
			fill_chunk(cpu);
			continue;
		}
		touch_page(cpu);
		idle_until_heartbeat();
	}
}

/* --- hangs ------------------------------------------------------------------------------ */

/* Signal every other CPU. Idle CPUs sleep until their next heartbeat (up to a second): a
 * lock holder that signals them, as a cross-CPU call does, has them run into its lock now. */
static void signal_others(unsigned int cpu)
{
	for (unsigned int other = 0; other < kernel.ncpus; other++)
		if (other != cpu)
			smp_emergency_signal(other);
}

static void hang_spin(unsigned int cpu)
{
	hc_trace(TRACE_HANG, 1, cpu, (unsigned long)&workload_lock, 0);
	printk(KERN_WARNING, "hang: CPU %u spins with interrupts disabled holding workload_lock", cpu);
	irq_disable();
	spin_lock(&workload_lock);
	signal_others(cpu);
	for (;;)
		barrier();
}

void hang_wait(void) __attribute__((noinline, noreturn));
void hang_wait(void)
{
	unsigned int cpu = smp_processor_id();

	hc_trace(TRACE_HANG, 2, cpu, 0, 0);
	printk(KERN_WARNING, "hang: CPU %u stops the other CPUs and enters a disabled wait", cpu);
	irq_disable();
	smp_send_stop();
	disabled_wait((unsigned long)hang_wait);
}

/* Called from the emergency-signal handler: the partner of a deadlock takes lock B, then
 * waits for lock A, which the first CPU holds while it waits for B. */
void deadlock_partner_signal(void)
{
	if (deadlock_stage != 1 || deadlock_partner != (int)smp_processor_id())
		return;
	spin_lock(&lock_b);
	deadlock_stage = 2;
	spin_lock(&workload_lock);
}

static void hang_deadlock(unsigned int cpu)
{
	hc_trace(TRACE_HANG, 3, cpu, (unsigned long)&workload_lock, 0);
	printk(KERN_WARNING, "hang: CPU %u takes workload_lock then lock_b; its partner the reverse", cpu);
	irq_disable();
	spin_lock(&workload_lock);
	if (kernel.ncpus == 1) {
		spin_lock(&workload_lock);	/* a single CPU deadlocks on itself */
	}
	deadlock_partner = (cpu + 1) % kernel.ncpus;
	deadlock_stage = 1;
	signal_others(cpu);	/* the partner takes lock B; the rest wait for lock A */
	while (deadlock_stage != 2)
		barrier();
	spin_lock(&lock_b);
	for (;;)
		barrier();
}

static void hang_loop(unsigned int cpu)
{
	hc_trace(TRACE_HANG, 4, cpu, 0, 0);
	printk(KERN_WARNING, "hang: every CPU loops forever with interrupts enabled");
	loop_hang = 1;
	signal_others(cpu);
	enter_loop();
}

void hang(const char *kind)
{
	unsigned int cpu = smp_processor_id();

	if (!strcmp(kind, "spin"))
		hang_spin(cpu);
	else if (!strcmp(kind, "wait"))
		hang_wait();
	else if (!strcmp(kind, "deadlock"))
		hang_deadlock(cpu);
	else if (!strcmp(kind, "loop"))
		hang_loop(cpu);
	else
		printk(KERN_ERR, "hang: unknown kind '%s' (spin, wait, deadlock, loop)", kind);
}
