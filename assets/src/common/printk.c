/* printk for every DumpLab guest program: format one line and hand it to the console. */
#include "libc.h"
#include "hypercall.h"
#include "printk.h"

void printk(int level, const char *fmt, ...)
{
	char line[256];
	va_list ap;
	int len;

	va_start(ap, fmt);
	len = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (len > (int)sizeof(line) - 2)
		len = sizeof(line) - 2;
	line[len++] = '\n';
	hc_console_write(line, len, level);
}
