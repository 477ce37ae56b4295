/* The operator's dump tools at the OS console, as s390-tools provides them on Linux: zipl -d
 * (put a dump tool on a device), lsshut / chshut (the shutdown actions), lsreipl / chreipl (the
 * re-IPL device), dumpconf status, and zgetdump (copy a stand-alone dump off its device).
 *
 * Parsing, checks and messages are here, in the guest; what needs the device itself (writing
 * the dump tool, reading the dump) is the host's, through HC_ZIPL_DUMP and HC_ZGETDUMP, as the
 * kernel asks the host to play `kexec -p` (docs/FIDELITY.md). The messages are worded after
 * the real tools' output; a bad argument changes nothing. */
#include "kernel.h"

#define MAX_WORDS 6
#define WORD_SIZE 48

struct words {
	unsigned int count;
	char word[MAX_WORDS][WORD_SIZE];
};

/* Split arg at blanks; extra words beyond MAX_WORDS make count MAX_WORDS + 1. */
static void split(const char *arg, struct words *w)
{
	w->count = 0;
	while (*arg) {
		unsigned int n = 0;

		while (*arg == ' ')
			arg++;
		if (!*arg)
			break;
		if (w->count == MAX_WORDS) {
			w->count++;
			return;
		}
		while (*arg && *arg != ' ') {
			if (n < WORD_SIZE - 1)
				w->word[w->count][n++] = *arg;
			arg++;
		}
		w->word[w->count++][n] = 0;
	}
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* A device number as the tools take it: 0200, 0x200 or the bus id 0.0.0200. */
static int parse_devno(const char *text, unsigned int *devno)
{
	unsigned int value = 0, digits = 0;

	if (!strncmp(text, "0.0.", 4))
		text += 4;
	else if (!strncmp(text, "0x", 2))
		text += 2;
	for (; *text; text++, digits++) {
		int d = hex_digit(*text);

		if (d < 0 || digits == 4)
			return 0;
		value = value * 16 + (unsigned int)d;
	}
	if (!digits)
		return 0;
	*devno = value;
	return 1;
}

/* The device's dump-tool state (DUMPDEV_*), or a negative error (no such device). */
static long dump_device_state(unsigned int devno)
{
	return hypercall(HC_ZIPL_DUMP, ZIPL_QUERY, devno, 0, 0, 0);
}

static const char *dump_tool_name(long state)
{
	switch (state & 0xff) {
	case DUMPDEV_DUMPER:
		return "stand-alone dumper";
	case DUMPDEV_KDUMP:
		return "stand-alone kdump";
	default:
		return "no dump tool";
	}
}

/* --- zipl -d DEVNO [-k auto] ------------------------------------------------------------- */

static void zipl_usage(void)
{
	printk(KERN_ERR, "zipl: Usage: zipl -d DEVNO [-k auto] (install a dump tool on DEVNO)");
}

static int zipl_parse(const struct words *w, unsigned int *devno, int *kdump)
{
	*kdump = 0;
	if (w->count == 0 || strcmp(w->word[0], "-d")) {
		zipl_usage();
		return 0;
	}
	if (w->count < 2) {
		printk(KERN_ERR, "zipl: Option '-d' requires an argument (the dump device)");
		return 0;
	}
	if (!parse_devno(w->word[1], devno)) {
		printk(KERN_ERR, "zipl: '%s' is not a device number (like 0200 or 0.0.0200)", w->word[1]);
		return 0;
	}
	if (w->count == 2)
		return 1;
	if (w->count == 4 && !strcmp(w->word[2], "-k") && !strcmp(w->word[3], "auto")) {
		*kdump = 1;
		return 1;
	}
	if (w->count >= 3 && !strcmp(w->word[2], "-k"))
		printk(KERN_ERR, "zipl: Option '-k' accepts only 'auto'");
	else
		zipl_usage();
	return 0;
}

static void zipl_failed(unsigned int devno, long rc)
{
	switch (rc) {
	case -1:
		printk(KERN_ERR, "zipl: Could not find device 0.0.%04x", devno);
		break;
	case DUMPTOOL_IN_USE:
		printk(KERN_ERR, "zipl: Device 0.0.%04x holds the running system's boot loader: "
		       "not a dump device", devno);
		break;
	case DUMPTOOL_TOO_SMALL:
		printk(KERN_ERR, "zipl: Device 0.0.%04x is too small for the dump tool", devno);
		break;
	case DUMPTOOL_NOT_SUPPORTED:
		printk(KERN_ERR, "zipl: The stand-alone kdump dump tool is not supported on this machine");
		break;
	default:
		printk(KERN_ERR, "zipl: Writing the dump tool to 0.0.%04x failed (%ld)", devno, rc);
	}
}

void cmd_zipl(const char *arg)
{
	struct words w;
	unsigned int devno;
	int kdump;
	long blocks, rc;

	split(arg, &w);
	if (!zipl_parse(&w, &devno, &kdump))
		return;
	blocks = hc_block_info(devno);
	if (blocks < 0) {
		zipl_failed(devno, -1);
		return;
	}
	rc = hypercall(HC_ZIPL_DUMP, kdump ? ZIPL_INSTALL_KDUMP : ZIPL_INSTALL_DUMPER, devno, 0, 0, 0);
	if (rc < 0) {
		zipl_failed(devno, rc);
		return;
	}
	printk(KERN_INFO, "Dump target: device 0.0.%04x with a size of %lu MB", devno,
	       (unsigned long)blocks * BLOCK_SIZE >> 20);
	printk(KERN_INFO, "Installing the %s on 0.0.%04x: any dump on it will be overwritten "
	       "by the next dump", kdump ? "stand-alone kdump" : "stand-alone dumper", devno);
	printk(KERN_INFO, "Preparing dump device 0.0.%04x.", devno);
	printk(KERN_INFO, "Done.");
}

/* --- lsshut / chshut ------------------------------------------------------------------------ */

static void print_trigger(const char *trigger, enum shutdown_action action)
{
	printk(KERN_INFO, "%-16s %s%s", trigger, kexec_crash_loaded ? "kdump," : "",
	       action_name(action));
}

void cmd_lsshut(const char *arg)
{
	if (*arg) {
		printk(KERN_ERR, "lsshut: takes no arguments");
		return;
	}
	printk(KERN_INFO, "Trigger          Action");
	printk(KERN_INFO, "========================");
	printk(KERN_INFO, "%-16s %s", "Halt", "stop");
	print_trigger("Panic", kernel.params.on_panic);
	printk(KERN_INFO, "%-16s %s", "Power off", "stop");
	printk(KERN_INFO, "%-16s %s", "Reboot", "reipl");
	print_trigger("Restart", kernel.params.on_restart);
}

/* Linux refuses a dump action until a dump device is configured; here, until it carries a
 * dump tool. */
static int dump_action_possible(void)
{
	unsigned int devno = kernel.params.dump_devno;
	long state = dump_device_state(devno);

	if (state < 0) {
		printk(KERN_ERR, "chshut: No dump device: device 0.0.%04x does not exist", devno);
		return 0;
	}
	if (!(state & 0xff)) {
		printk(KERN_ERR, "chshut: Dump device 0.0.%04x has no dump tool (run: zipl -d %04x)",
		       devno, devno);
		return 0;
	}
	return 1;
}

void cmd_chshut(const char *arg)
{
	struct words w;
	enum shutdown_action action, *slot;
	unsigned int trigger;

	split(arg, &w);
	if (w.count != 2) {
		printk(KERN_ERR, "chshut: Usage: chshut panic|restart ACTION");
		return;
	}
	if (!strcmp(w.word[0], "panic")) {
		slot = &kernel.params.on_panic;
		trigger = 1;
	} else if (!strcmp(w.word[0], "restart")) {
		slot = &kernel.params.on_restart;
		trigger = 2;
	} else if (!strcmp(w.word[0], "halt") || !strcmp(w.word[0], "poff") ||
		   !strcmp(w.word[0], "reboot")) {
		printk(KERN_ERR, "chshut: Trigger '%s' is not supported by this kernel (panic, restart)",
		       w.word[0]);
		return;
	} else {
		printk(KERN_ERR, "chshut: Unknown shutdown trigger '%s' (panic, restart)", w.word[0]);
		return;
	}
	if (!strcmp(w.word[1], "kdump")) {
		printk(KERN_ERR, "chshut: 'kdump' is not a shutdown action: a loaded kdump kernel "
		       "always runs first (kdump load), lsshut shows it as kdump,ACTION");
		return;
	}
	if (!parse_action(w.word[1], &action)) {
		printk(KERN_ERR, "chshut: Invalid action '%s' for trigger '%s' "
		       "(stop, dump, dump_reipl, reipl)", w.word[1], w.word[0]);
		return;
	}
	if ((action == ACTION_DUMP || action == ACTION_DUMP_REIPL) && !dump_action_possible())
		return;
	*slot = action;
	hc_trace(TRACE_SHUTDOWN_CONFIG, trigger, action, 0, 0);
	printk(KERN_INFO, "chshut: on_%s action is now %s", w.word[0], action_name(action));
}

/* --- lsreipl / chreipl ---------------------------------------------------------------------- */

void cmd_lsreipl(const char *arg)
{
	if (*arg) {
		printk(KERN_ERR, "lsreipl: takes no arguments");
		return;
	}
	printk(KERN_INFO, "Re-IPL type: ccw");
	printk(KERN_INFO, "Device:      0.0.%04x", reipl_devno());
	printk(KERN_INFO, "Loadparm:    \"\"");
	printk(KERN_INFO, "clear:       0");
}

void cmd_chreipl(const char *arg)
{
	struct words w;
	unsigned int devno;

	split(arg, &w);
	if (w.count == 0) {
		printk(KERN_ERR, "chreipl: Usage: chreipl ccw DEVNO");
		return;
	}
	if (strcmp(w.word[0], "ccw")) {
		printk(KERN_ERR, "chreipl: Re-IPL type '%s' is not supported here (ccw only)", w.word[0]);
		return;
	}
	if (w.count != 2) {
		printk(KERN_ERR, "chreipl: No device specified (chreipl ccw DEVNO)");
		return;
	}
	if (!parse_devno(w.word[1], &devno)) {
		printk(KERN_ERR, "chreipl: '%s' is not a device number (like 0100 or 0.0.0100)", w.word[1]);
		return;
	}
	if (hc_block_info(devno) < 0) {
		printk(KERN_ERR, "chreipl: Device 0.0.%04x does not exist", devno);
		return;
	}
	set_reipl_devno(devno);
	hc_trace(TRACE_REIPL_CONFIG, devno, 0, 0, 0);
	printk(KERN_INFO, "Re-IPL type: ccw");
	printk(KERN_INFO, "Device:      0.0.%04x", devno);
	printk(KERN_INFO, "Loadparm:    \"\"");
	printk(KERN_INFO, "clear:       0");
}

/* --- dumpconf status --------------------------------------------------------------------- */

void cmd_dumpconf(const char *arg)
{
	unsigned int devno = kernel.params.dump_devno;
	long state;

	if (strcmp(arg, "status")) {
		printk(KERN_ERR, "dumpconf: Usage: dumpconf status");
		return;
	}
	state = dump_device_state(devno);
	printk(KERN_INFO, "on_panic action: %s%s", kexec_crash_loaded ? "kdump," : "",
	       action_name(kernel.params.on_panic));
	printk(KERN_INFO, "on_restart action: %s%s", kexec_crash_loaded ? "kdump," : "",
	       action_name(kernel.params.on_restart));
	if (state < 0) {
		printk(KERN_INFO, "dump device: ccw 0.0.%04x (does not exist)", devno);
		return;
	}
	printk(KERN_INFO, "dump device: ccw 0.0.%04x (%s%s)", devno, dump_tool_name(state),
	       state & DUMPDEV_HAS_DUMP ? ", holds a dump: zgetdump copies it off" : "");
}

/* --- zgetdump -i DEVNO | zgetdump DEVNO FILE [-f elf|s390] ------------------------------- */

static struct dump_info dump_info __attribute__((aligned(8)));

static void zgetdump_usage(void)
{
	printk(KERN_ERR, "zgetdump: Usage: zgetdump DEVNO FILE [-f elf|s390] | zgetdump -i DEVNO");
}

static void zgetdump_failed(unsigned int devno, long rc)
{
	switch (rc) {
	case -1:
		printk(KERN_ERR, "zgetdump: Device 0.0.%04x does not exist", devno);
		break;
	case DUMPTOOL_NO_DUMP:
		printk(KERN_ERR, "zgetdump: No dump found on device 0.0.%04x", devno);
		break;
	case DUMPTOOL_INCOMPLETE:
		printk(KERN_ERR, "zgetdump: The dump on device 0.0.%04x is incomplete (no end marker)",
		       devno);
		break;
	case DUMPTOOL_BAD_NAME:
		printk(KERN_ERR, "zgetdump: The output must be a plain file name (it goes into the "
		       "work directory's dumps/)");
		break;
	default:
		printk(KERN_ERR, "zgetdump: Copying the dump off device 0.0.%04x failed (%ld)", devno, rc);
	}
}

static void zgetdump_info(unsigned int devno)
{
	long rc = hypercall(HC_ZGETDUMP, ZGETDUMP_INFO, devno, (unsigned long)&dump_info, 0, 0);
	unsigned long mb = dump_info.memory_size >> 20;

	if (rc < 0) {
		zgetdump_failed(devno, rc);
		return;
	}
	printk(KERN_INFO, "General dump info:");
	printk(KERN_INFO, "  Dump format........: s390");
	printk(KERN_INFO, "  Version............: %u", dump_info.version);
	printk(KERN_INFO, "  Dump created (TOD).: %016lx", dump_info.tod_start);
	printk(KERN_INFO, "  Dump ended (TOD)...: %016lx", dump_info.tod_end);
	printk(KERN_INFO, "  Dump CPU ID........: %016lx", dump_info.cpu_id);
	printk(KERN_INFO, "  Build arch.........: s390x (64 bit)");
	printk(KERN_INFO, "  System arch........: s390x (64 bit)");
	printk(KERN_INFO, "  CPU count (online).: %u", dump_info.cpu_count);
	printk(KERN_INFO, "  CPU count (real)...: %u", dump_info.real_cpu_count);
	printk(KERN_INFO, "  Dump memory range..: %lu MB", mb);
	printk(KERN_INFO, "Memory map:");
	printk(KERN_INFO, "  0000000000000000 - %016lx (%lu MB)", dump_info.memory_size - 1, mb);
}

static int zgetdump_format(const struct words *w, unsigned long *format)
{
	*format = ZGETDUMP_FORMAT_ELF;	/* zgetdump's default target */
	if (w->count == 2)
		return 1;
	if (w->count != 4 || strcmp(w->word[2], "-f")) {
		zgetdump_usage();
		return 0;
	}
	if (!strcmp(w->word[3], "s390"))
		*format = ZGETDUMP_FORMAT_S390;
	else if (strcmp(w->word[3], "elf")) {
		printk(KERN_ERR, "zgetdump: Invalid target format '%s' (elf or s390)", w->word[3]);
		return 0;
	}
	return 1;
}

void cmd_zgetdump(const char *arg)
{
	struct words w;
	unsigned int devno;
	unsigned long format;
	long rc;

	split(arg, &w);
	if (w.count == 2 && !strcmp(w.word[0], "-i")) {
		if (!parse_devno(w.word[1], &devno))
			printk(KERN_ERR, "zgetdump: '%s' is not a device number", w.word[1]);
		else
			zgetdump_info(devno);
		return;
	}
	if (w.count < 2 || w.count > 4 || !strcmp(w.word[0], "-i")) {
		zgetdump_usage();
		return;
	}
	if (!parse_devno(w.word[0], &devno)) {
		printk(KERN_ERR, "zgetdump: '%s' is not a device number", w.word[0]);
		return;
	}
	if (!zgetdump_format(&w, &format))
		return;
	printk(KERN_INFO, "Format Info: source s390, target %s",
	       format == ZGETDUMP_FORMAT_ELF ? "elf" : "s390");
	printk(KERN_INFO, "Copying dump from device 0.0.%04x to %s", devno, w.word[1]);
	rc = hypercall(HC_ZGETDUMP, ZGETDUMP_COPY, devno, (unsigned long)w.word[1],
		       strlen(w.word[1]), format);
	if (rc < 0) {
		zgetdump_failed(devno, rc);
		return;
	}
	printk(KERN_INFO, "Success: Dump has been copied (%lu MB)", (unsigned long)rc >> 20);
}
