/* Commands the operator types into Operating System Messages. */
#include "kernel.h"

#define QUEUE_SIZE 8
#define COMMAND_SIZE 160

struct os_command {
	char text[COMMAND_SIZE];
	int priority;
};

static struct os_command queue[QUEUE_SIZE];
static unsigned int queue_head, queue_tail;
static volatile unsigned int queue_lock;
extern volatile unsigned int pgm_test_code;
extern volatile unsigned long svc_count;

/* Called by the service-signal handler, interrupts disabled. */
void queue_os_command(const char *text, int priority)
{
	spin_lock(&queue_lock);
	if (queue_tail - queue_head < QUEUE_SIZE) {
		struct os_command *slot = &queue[queue_tail++ % QUEUE_SIZE];

		for (unsigned int i = 0; i < COMMAND_SIZE; i++) {
			slot->text[i] = text[i];
			if (!text[i])
				break;
		}
		slot->text[COMMAND_SIZE - 1] = 0;
		slot->priority = priority;
	} else {
		printk(KERN_WARNING, "oscmd: queue full, command '%s' dropped", text);
	}
	spin_unlock(&queue_lock);
}

static int dequeue(struct os_command *out)
{
	unsigned long flags = irq_disable();
	int found = 0;

	spin_lock(&queue_lock);
	if (queue_head != queue_tail) {
		*out = queue[queue_head++ % QUEUE_SIZE];
		found = 1;
	}
	spin_unlock(&queue_lock);
	irq_restore(flags);
	return found;
}

static void cmd_help(const char *arg)
{
	(void)arg;
	printk(KERN_INFO, "commands: help | status | echo TEXT | hang spin|wait|deadlock|loop |");
	printk(KERN_INFO, "  panic [TEXT] | pgmcheck | svc | on_panic ACTION | on_restart ACTION | reipl |");
	printk(KERN_INFO, "  kdump load|unload|status | zipl -d DEVNO [-k auto] | lsshut |");
	printk(KERN_INFO, "  chshut panic|restart stop|dump|dump_reipl|reipl | lsreipl | chreipl ccw DEVNO |");
	printk(KERN_INFO, "  dumpconf status | zgetdump DEVNO FILE [-f elf|s390] | zgetdump -i DEVNO");
}

static void cmd_status(const char *arg)
{
	unsigned long filled = 0;

	(void)arg;
	printk(KERN_INFO, "status: " KERNEL_RELEASE ", up %lu ms, %u CPUs, %lu MB memory, jiffies %lu",
	       uptime_ms(), kernel.ncpus, kernel.machine.memory_size >> 20, jiffies);
	for (unsigned int cpu = 0; cpu < kernel.ncpus; cpu++) {
		printk(KERN_INFO, "status: CPU %u heartbeat %lu lowcore %016lx", cpu, heartbeat[cpu],
		       lowcore_ptr[cpu]);
		filled += heartbeat[cpu] ? 1 : 0;
	}
	printk(KERN_INFO, "status: crashkernel %luMB at %016lx, kdump %s, on_panic %s, on_restart %s",
	       kernel.params.crashkernel_size >> 20, kernel.crash_base,
	       kexec_crash_loaded ? "loaded" : "not loaded",
	       action_name(kernel.params.on_panic), action_name(kernel.params.on_restart));
	(void)filled;
}

static void cmd_echo(const char *arg)
{
	printk(KERN_INFO, "%s", arg);
}

static void cmd_hang(const char *arg)
{
	hang(arg);
}

static void cmd_panic(const char *arg)
{
	panic("%s", *arg ? arg : "panic requested by the operator");
}

/* A deliberate operation exception: the program-check handler knows this address and
 * returns after it, which proves the whole interruption path. */
static void cmd_pgmcheck(const char *arg)
{
	(void)arg;
	pgm_test_code = 0;
	asm volatile(".globl pgm_test_insn\n"
		     "pgm_test_insn:\n"
		     ".short 0x0000\n" : : : "memory");
	printk(KERN_INFO, "pgmcheck: back after the program check, code %04x", pgm_test_code);
}

static void cmd_svc(const char *arg)
{
	(void)arg;
	asm volatile("svc 42" : : : "memory");
	printk(KERN_INFO, "svc: back after SVC 42 (%lu handled)", svc_count);
}

static void set_action(const char *name, enum shutdown_action *action, const char *arg)
{
	if (!parse_action(arg, action)) {
		printk(KERN_ERR, "%s: '%s' is not an action (stop, dump, dump_reipl, reipl)", name, arg);
		return;
	}
	printk(KERN_INFO, "%s: set to %s", name, action_name(*action));
}

static void cmd_on_panic(const char *arg)
{
	set_action("on_panic", &kernel.params.on_panic, arg);
}

static void cmd_on_restart(const char *arg)
{
	set_action("on_restart", &kernel.params.on_restart, arg);
}

static void cmd_reipl(const char *arg)
{
	(void)arg;
	reipl_boot_device();
}

static void cmd_kdump(const char *arg)
{
	if (!strcmp(arg, "load"))
		kdump_load();
	else if (!strcmp(arg, "unload"))
		kdump_unload();
	else if (!strcmp(arg, "status") || !*arg)
		kdump_status();
	else
		printk(KERN_ERR, "kdump: '%s' is not load, unload or status", arg);
}

static const struct {
	const char *name;
	void (*run)(const char *arg);
} commands[] = {
	{ "help", cmd_help }, { "status", cmd_status }, { "echo", cmd_echo },
	{ "hang", cmd_hang }, { "panic", cmd_panic }, { "pgmcheck", cmd_pgmcheck },
	{ "svc", cmd_svc }, { "on_panic", cmd_on_panic }, { "on_restart", cmd_on_restart },
	{ "reipl", cmd_reipl }, { "kdump", cmd_kdump }, { "zipl", cmd_zipl },
	{ "lsshut", cmd_lsshut }, { "chshut", cmd_chshut }, { "lsreipl", cmd_lsreipl },
	{ "chreipl", cmd_chreipl }, { "dumpconf", cmd_dumpconf }, { "zgetdump", cmd_zgetdump },
};

static void run_command(char *text)
{
	char *arg = strchr(text, ' ');

	if (arg) {
		*arg++ = 0;
		while (*arg == ' ')
			arg++;
	} else {
		arg = text + strlen(text);
	}
	for (unsigned int i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (!strcmp(text, commands[i].name)) {
			commands[i].run(arg);
			return;
		}
	}
	printk(KERN_ERR, "oscmd: unknown command '%s' (try help)", text);
}

void process_os_commands(void)
{
	struct os_command command;

	while (dequeue(&command))
		run_command(command.text);
}
