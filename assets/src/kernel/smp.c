/* CPU bring-up and stop, the way Linux does it on s390: every CPU gets its own lowcore
 * (SIGP SET PREFIX), a restart new PSW pointing at the restart handler, and is started with
 * SIGP RESTART, which makes it call restart_fn(restart_data) from its lowcore. */
#include "kernel.h"

unsigned long lowcore_ptr[MAX_CPUS];
/* Logical CPU numbers (what the rest of the kernel indexes by) to CPU addresses (what SIGP
 * names), as Linux keeps them apart: the IPL CPU is logical 0; addresses may have gaps. */
unsigned int cpu_address[MAX_CPUS];
static unsigned long process_stack[MAX_CPUS];
static volatile int cpu_online[MAX_CPUS];

#define IRQ_STACK_SIZE     0x4000
#define PGM_STACK_SIZE     0x2000
#define RESTART_STACK_SIZE 0x2000
#define PROCESS_STACK_SIZE 0x4000

/* Machine checks and I/O interruptions never happen here; if one did, stop with its offset. */
#define CODE_UNEXPECTED_MCCK 0x160
#define CODE_UNEXPECTED_IO   0x170

static void smp_start_secondary(unsigned long cpu);

static unsigned long stack_top(unsigned long size)
{
	return (unsigned long)memblock_alloc(size, PAGE_SIZE) + size;
}

static void set_new_psw(unsigned long lc, unsigned long offset, unsigned long mask, unsigned long addr)
{
	psw_t *psw = (psw_t *)(lc + offset);

	psw->mask = mask;
	psw->addr = addr;
}

/* Fill the lowcore at absolute lc for a CPU; lc is never our own prefix area here, so its
 * real and absolute addresses are the same. */
void setup_lowcore(unsigned int cpu, unsigned long lc)
{
	memset((void *)lc, 0, LOWCORE_SIZE);
	set_new_psw(lc, LC_EXT_NEW_PSW, PSW_MASK_64, (unsigned long)ext_int_handler);
	set_new_psw(lc, LC_SVC_NEW_PSW, PSW_MASK_64, (unsigned long)svc_handler);
	set_new_psw(lc, LC_PGM_NEW_PSW, PSW_MASK_64, (unsigned long)pgm_check_handler);
	set_new_psw(lc, LC_RESTART_PSW, PSW_MASK_64, (unsigned long)restart_int_handler);
	set_new_psw(lc, LC_MCCK_NEW_PSW, PSW_MASK_WAIT | PSW_MASK_64, CODE_UNEXPECTED_MCCK);
	set_new_psw(lc, LC_IO_NEW_PSW, PSW_MASK_WAIT | PSW_MASK_64, CODE_UNEXPECTED_IO);
	*(unsigned int *)(lc + LC_CPU_NR) = cpu;
	*(unsigned long *)(lc + LC_KERNEL_STACK) = stack_top(IRQ_STACK_SIZE);
	*(unsigned long *)(lc + LC_PGM_STACK) = stack_top(PGM_STACK_SIZE);
	*(unsigned long *)(lc + LC_RESTART_STACK) = stack_top(RESTART_STACK_SIZE);
	*(unsigned long *)(lc + LC_RESTART_FN) =
		(unsigned long)(cpu ? smp_start_secondary : do_restart);
	*(unsigned long *)(lc + LC_RESTART_DATA) = cpu;
	*(unsigned long *)(lc + LC_RESTART_SOURCE) = -1UL;
	process_stack[cpu] = stack_top(PROCESS_STACK_SIZE);
	lowcore_ptr[cpu] = lc;
	if (cpu == 0) {
		unsigned int prefix = lc;

		asm volatile("spx %0" : : "Q" (prefix) : "memory");
		/* A PSW restart on a CPU whose prefix is 0 must still find our handler: copy the
		 * new PSWs and the restart fields into the absolute-zero lowcore, which our own
		 * prefix area now shows at real address lc. */
		memcpy((void *)(lc + LC_RESTART_PSW), (void *)LC_RESTART_PSW, 0x60);
		memcpy((void *)(lc + LC_SAVE_AREA_SYNC), (void *)LC_SAVE_AREA_SYNC, 0x200);
	}
}

/* Control registers and a recognisable register picture for every CPU: CR0 enables the
 * external subclasses we use and the additional floating-point registers; access and
 * floating-point registers carry the CPU number so dumps can be checked register by register. */
static void setup_cpu_registers(unsigned int cpu)
{
	unsigned long cr0;
	unsigned int fpc = 1;	/* round toward zero */

	asm volatile("stctg 0,0,%0" : "=Q" (cr0));
	cr0 |= CR0_EMERGENCY_SIGNAL | CR0_EXTERNAL_CALL | CR0_CLOCK_COMPARATOR | CR0_SERVICE_SIGNAL |
		0x40000UL /* AFP */;
	asm volatile("lctlg 0,0,%0" : : "Q" (cr0));
	asm volatile("sfpc %0" : : "d" (fpc));
	for (unsigned int i = 0; i < 16; i++) {
		unsigned long fpr = 0x4000000000000000UL | (unsigned long)cpu << 16 | i;
		unsigned int ar = cpu << 16 | 0xA000 | i;

		switch (i) {
#define SET_REGS(n) case n: asm volatile("ldgr %%f" #n ",%0\n sar %%a" #n ",%1" : : "d" (fpr), "d" (ar)); break;
		SET_REGS(0) SET_REGS(1) SET_REGS(2) SET_REGS(3) SET_REGS(4) SET_REGS(5) SET_REGS(6) SET_REGS(7)
		SET_REGS(8) SET_REGS(9) SET_REGS(10) SET_REGS(11) SET_REGS(12) SET_REGS(13) SET_REGS(14) SET_REGS(15)
#undef SET_REGS
		}
	}
}

static void cpu_online_now(unsigned int cpu)
{
	unsigned int prefix;

	setup_cpu_registers(cpu);
	asm volatile("stpx %0" : "=Q" (prefix));
	cpu_online[cpu] = 1;
	hc_trace(TRACE_CPU_ONLINE, cpu, prefix, process_stack[cpu], 0);
	printk(KERN_INFO, "smp: CPU %u online, prefix 0x%08x", cpu, prefix);
}

static void smp_start_secondary(unsigned long cpu)
{
	LC_U64(LC_RESTART_FN) = (unsigned long)do_restart;
	cpu_online_now(cpu);
	call_on_stack(cpu, process_stack[cpu], cpu_loop);
}

/* Which CPUs this LPAR has: every address SIGP SENSE does not answer "not operational"
 * (cc 3) for, looked at all through, as Linux's SCLP CPU list would give them. */
static unsigned int smp_detect_cpus(void)
{
	unsigned short self;
	unsigned int n = 1;

	asm volatile("stap %0" : "=Q" (self));
	cpu_address[0] = self;
	for (unsigned int address = 0; address < MAX_CPUS && n < MAX_CPUS; address++)
		if (address != self && sigp(address, SIGP_SENSE, 0, NULL) != SIGP_CC_NOT_OPERATIONAL)
			cpu_address[n++] = address;
	return n;
}

static int wait_online(unsigned int cpu)
{
	unsigned long deadline = get_tod() + 4096000UL * 1000;	/* one second */

	while (!cpu_online[cpu])
		if (get_tod() > deadline)
			return 0;
	return 1;
}

static void smp_start_cpu(unsigned int cpu)
{
	unsigned long lc = (unsigned long)memblock_alloc(LOWCORE_SIZE, LOWCORE_SIZE);
	unsigned int status = 0;
	int cc;

	setup_lowcore(cpu, lc);
	cc = sigp(cpu_address[cpu], SIGP_SET_PREFIX, lc, &status);
	if (cc != SIGP_CC_ORDER_CODE_ACCEPTED) {
		printk(KERN_ERR, "smp: set prefix of CPU %u failed: cc %d status %08x", cpu, cc, status);
		return;
	}
	sigp(cpu_address[cpu], SIGP_RESTART, 0, NULL);
	if (!wait_online(cpu))
		printk(KERN_ERR, "smp: CPU %u did not come online", cpu);
}

void smp_boot_cpus(void)
{
	cpu_online_now(0);
	for (unsigned int cpu = 1; cpu < kernel.ncpus; cpu++)
		smp_start_cpu(cpu);
	printk(KERN_INFO, "smp: Brought up 1 node, %u CPU%s", kernel.ncpus, kernel.ncpus > 1 ? "s" : "");
}

void smp_detect(void)
{
	kernel.ncpus = smp_detect_cpus();
}

/* Stop every other CPU and wait until SIGP SENSE reports it stopped. */
void smp_send_stop(void)
{
	unsigned int self = smp_processor_id();

	for (unsigned int cpu = 0; cpu < kernel.ncpus; cpu++) {
		unsigned int status = 0;

		if (cpu == self)
			continue;
		sigp(cpu_address[cpu], SIGP_STOP, 0, NULL);
		while (sigp(cpu_address[cpu], SIGP_SENSE, 0, &status) == SIGP_CC_BUSY ||
		       !(status & SIGP_STATUS_STOPPED))
			status = 0;
	}
}

/* Wait until SIGP SENSE reports the CPU stopped. */
void smp_wait_stopped(unsigned int cpu)
{
	unsigned int status = 0;

	while (sigp(cpu_address[cpu], SIGP_SENSE, 0, &status) == SIGP_CC_BUSY ||
	       !(status & SIGP_STATUS_STOPPED))
		status = 0;
}

/* Run fn(data) on the IPL CPU, as Linux's smp_call_ipl_cpu does before kdump: directly when
 * we are it; otherwise through its restart interruption (restart_fn, restart_data and
 * restart_source in its lowcore, then SIGP RESTART, which also starts it from the stopped
 * state), and this CPU stops so that the IPL CPU can store its status. */
void smp_call_ipl_cpu(void (*fn)(unsigned long), unsigned long data)
{
	unsigned int self = smp_processor_id();
	unsigned long lc = lowcore_ptr[0];	/* the IPL CPU is logical 0 */

	if (self == 0) {
		fn(data);
		return;
	}
	*(unsigned long *)(lc + LC_RESTART_FN) = (unsigned long)fn;
	*(unsigned long *)(lc + LC_RESTART_DATA) = data;
	*(unsigned long *)(lc + LC_RESTART_SOURCE) = self;
	sigp(cpu_address[0], SIGP_RESTART, 0, NULL);
	smp_stop_self();
}

void smp_stop_self(void)
{
	sigp(cpu_address[smp_processor_id()], SIGP_STOP, 0, NULL);
	for (;;)
		;
}

void smp_emergency_signal(unsigned int cpu)
{
	sigp(cpu_address[cpu], SIGP_EMERGENCY_SIGNAL, 0, NULL);
}
