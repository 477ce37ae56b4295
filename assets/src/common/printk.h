/* Operating System Messages: printk to the HMC console (the SCLP's role, by hypercall). */
#ifndef DUMPLAB_PRINTK_H
#define DUMPLAB_PRINTK_H

#define KERN_EMERG   0
#define KERN_ALERT   1
#define KERN_CRIT    2
#define KERN_ERR     3
#define KERN_WARNING 4
#define KERN_NOTICE  5
#define KERN_INFO    6

/* One line (a newline is added), at most 254 characters. */
void printk(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
