/* Interruption handlers (C side of head.S): the timer tick, operator commands, emergency
 * signals, program checks and SVCs. */
#include "kernel.h"

volatile unsigned long jiffies;
volatile int command_waiting;
volatile unsigned long svc_count;
volatile unsigned int pgm_test_code;

#define TICK_TOD (10UL * 4096000UL)	/* 10 ms: the tick of a busy CPU */

extern char pgm_test_insn[];
void deadlock_partner_signal(void);

void arm_tick(void)
{
	set_clock_comparator(get_tod() + TICK_TOD);
}

/* jiffies counts ticks since boot. Idle CPUs stop their tick, so it is caught up from the
 * clock, not incremented: it stays right however long every CPU slept. */
static void update_jiffies(void)
{
	unsigned long ticks = (get_tod() - kernel.boot_tod) / TICK_TOD;

	if (ticks > jiffies)
		jiffies = ticks;
}

/* Every CPU's tick takes the workload lock: a CPU that hangs holding it stops them all. A CPU
 * woken from idle gets its tick back from the idle loop (idle_until), not here. */
static void tick(int from_idle)
{
	spin_lock(&workload_lock);
	update_jiffies();
	spin_unlock(&workload_lock);
	if (!from_idle)
		arm_tick();
}

/* The service signal says the operator sent commands: read them all now, run them later in
 * process context (a system whose CPUs are all busy looping never gets to them). */
static void service_signal(void)
{
	char text[160];
	int priority;
	long len;

	while ((len = hc_console_read(text, sizeof(text), &priority)) >= 0)
		queue_os_command(text, priority);
}

void do_ext_interrupt(struct pt_regs *regs)
{
	unsigned short code = LC_U16(LC_EXT_INT_CODE);

	switch (code) {
	case EXT_CODE_CLOCK_COMP:
		tick(regs->psw.mask & PSW_MASK_WAIT ? 1 : 0);
		break;
	case EXT_CODE_SERVICE_SIGNAL:
		service_signal();
		break;
	case EXT_CODE_EMERGENCY:
		deadlock_partner_signal();
		break;
	case EXT_CODE_EXTERNAL_CALL:
		break;
	default:
		printk(KERN_WARNING, "irq: unexpected external interruption code %04x", code);
	}
	/* Leave psw_idle: go on after the wait instead of waiting again. */
	regs->psw.mask &= ~PSW_MASK_WAIT;
}

static const char *program_check_name(unsigned int code)
{
	switch (code & 0x7f) {
	case 0x01: return "operation";
	case 0x02: return "privileged operation";
	case 0x04: return "protection";
	case 0x05: return "addressing";
	case 0x06: return "specification";
	case 0x07: return "data";
	case 0x09: return "fixed-point divide";
	case 0x11: return "page translation";
	default: return "other";
	}
}

void do_program_check(struct pt_regs *regs)
{
	unsigned int code = LC_U16(LC_PGM_CODE);
	unsigned int ilc = LC_U16(LC_PGM_ILC);
	unsigned long address = regs->psw.addr - ilc;
	unsigned int cpu = smp_processor_id();

	if (address == (unsigned long)pgm_test_insn) {
		pgm_test_code = code;
		printk(KERN_WARNING, "pgmcheck: program check %04x (%s) at %016lx on CPU %u, "
		       "old PSW %016lx %016lx: recovered", code, program_check_name(code), address, cpu,
		       regs->psw.mask, regs->psw.addr);
		hc_trace(TRACE_PROGRAM_CHECK, cpu, code, regs->psw.addr, 1);
		return;
	}
	hc_trace(TRACE_PROGRAM_CHECK, cpu, code, regs->psw.addr, 0);
	panic("Kernel BUG: program check %04x (%s) at %016lx", code, program_check_name(code), address);
}

void do_svc(struct pt_regs *regs)
{
	(void)regs;
	svc_count++;
	printk(KERN_INFO, "svc: SVC %u handled on CPU %u (%lu so far)", LC_U16(LC_SVC_CODE),
	       smp_processor_id(), svc_count);
}
