/* panic, PSW restart, and the shutdown actions (on_panic, on_restart) that run when there is
 * no kdump to take over: stop, dump (re-IPL the stand-alone dumper with DIAG 308), dump_reipl
 * (the same, the dumper re-IPLs this system afterwards) or reipl (IPL this system again). */
#include "kernel.h"
#include "diag308.h"
#include "cksm.h"

#define TRIGGER_PANIC   1
#define TRIGGER_RESTART 2


static unsigned char ipib[IPIB_SIZE] __attribute__((aligned(8)));
static volatile unsigned int panic_lock;

static unsigned char reipl_ipib[IPIB_SIZE] __attribute__((aligned(8)));
/* The re-IPL device chreipl chose; 0: the device this system was IPL'd from. */
static unsigned int reipl_devno_set;

/* Indexed by enum shutdown_action: the names Linux's sysfs shutdown_actions use. */
static const char *const action_names[] = {
	[ACTION_STOP] = "stop", [ACTION_DUMP] = "dump", [ACTION_DUMP_REIPL] = "dump_reipl",
	[ACTION_REIPL] = "reipl",
};

const char *action_name(enum shutdown_action action)
{
	if (action < ACTION_STOP || action > ACTION_REIPL)
		return "stop";
	return action_names[action];
}

int parse_action(const char *word, enum shutdown_action *action)
{
	for (unsigned int i = ACTION_STOP; i <= ACTION_REIPL; i++) {
		if (!strcmp(word, action_names[i])) {
			*action = (enum shutdown_action)i;
			return 1;
		}
	}
	return 0;
}

unsigned int ipl_devno(void)
{
	return (unsigned int)*(volatile unsigned long *)0x10400UL;
}

unsigned int reipl_devno(void)
{
	return reipl_devno_set ? reipl_devno_set : ipl_devno();
}

void set_reipl_devno(unsigned int devno)
{
	reipl_devno_set = devno;
}

/* dump_reipl, as Linux's dump_reipl_run: leave the re-IPL block (this system's boot device)
 * and its checksum in the lowcore (0xE00, 0xE08), where the stand-alone dumper looks when it
 * is done, so that it IPLs the production system again instead of stopping. */
static void set_dump_reipl_block(void)
{
	unsigned int devno = reipl_devno();

	build_ccw_ipib(reipl_ipib, devno);
	write_absolute_u64(LC_IPIB, (unsigned long)reipl_ipib);
	write_absolute_u32(LC_IPIB_CHECKSUM, cksm(reipl_ipib, IPIB_SIZE, 0));
	printk(KERN_EMERG, "dump_reipl: the dumper will re-IPL device %04x", devno);
}

static void reipl_dump_device(void)
{
	printk(KERN_EMERG, "dump: re-IPL of the stand-alone dumper on device %04x",
	       kernel.params.dump_devno);
	build_ccw_ipib(ipib, kernel.params.dump_devno);
	diag308(DIAG308_SET, ipib);
	diag308(DIAG308_LOAD_NORMAL_DUMP, 0);
	/* Still here: the machine refused the IPL. */
	printk(KERN_EMERG, "dump: the dump device could not be IPL'd; stopping instead");
}

/* The operator's `reipl` and the reipl action: load the re-IPL device (chreipl; by default
 * the device this kernel came from, parm area 0x10400). */
void reipl_boot_device(void)
{
	unsigned int devno = reipl_devno();

	printk(KERN_NOTICE, "reipl: re-IPL from device %04x", devno);
	irq_disable();
	smp_send_stop();
	build_ccw_ipib(ipib, devno);
	diag308(DIAG308_SET, ipib);
	diag308(DIAG308_LOAD_NORMAL, 0);
	printk(KERN_ERR, "reipl: the machine refused the re-IPL");
	irq_enable();
}

void stop_run(unsigned int trigger) __attribute__((noinline, noreturn));
void stop_run(unsigned int trigger)
{
	(void)trigger;
	disabled_wait((unsigned long)stop_run);
}

static void run_shutdown_action(unsigned int trigger, enum shutdown_action action) __attribute__((noreturn));
static void run_shutdown_action(unsigned int trigger, enum shutdown_action action)
{
	hc_trace(TRACE_SHUTDOWN_ACTION, trigger, action, 0, 0);
	printk(KERN_EMERG, "%s: running shutdown action %s",
	       trigger == TRIGGER_PANIC ? "on_panic" : "on_restart", action_name(action));
	if (action == ACTION_DUMP_REIPL)
		set_dump_reipl_block();
	if (action == ACTION_DUMP || action == ACTION_DUMP_REIPL)
		reipl_dump_device();
	if (action == ACTION_REIPL)
		reipl_boot_device();
	stop_run(trigger);
}

void panic(const char *fmt, ...)
{
	static char message[160];
	unsigned int cpu = smp_processor_id();
	va_list ap;
	int len;

	irq_disable();
	if (!spin_trylock(&panic_lock))
		smp_stop_self();	/* another CPU is already panicking */
	va_start(ap, fmt);
	len = vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	if (len >= (int)sizeof(message))
		len = sizeof(message) - 1;
	printk(KERN_EMERG, "Kernel panic - not syncing: %s", message);
	printk(KERN_EMERG, "CPU: %u PID: 0 Comm: dumplab Kdump: %s", cpu,
	       kexec_crash_loaded ? "loaded" : "not loaded");
	hc_trace(TRACE_PANIC, cpu, (unsigned long)message, len, 0);
	smp_send_stop();
	crash_kexec();
	run_shutdown_action(TRIGGER_PANIC, kernel.params.on_panic);
}

/* restart_fn of every online CPU: what the HMC's PSW Restart runs. */
void do_restart(unsigned long data)
{
	unsigned int cpu = smp_processor_id();
	unsigned long old_address = LC_U64(LC_RESTART_OLD_PSW + 8);

	(void)data;
	irq_disable();
	if (!spin_trylock(&panic_lock))
		smp_stop_self();
	printk(KERN_EMERG, "restart: PSW restart on CPU %u, interrupted at %016lx", cpu, old_address);
	hc_trace(TRACE_RESTART, cpu, old_address, 0, 0);
	smp_send_stop();
	crash_kexec();
	run_shutdown_action(TRIGGER_RESTART, kernel.params.on_restart);
}
