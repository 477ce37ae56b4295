/* The DumpLab production mini-kernel: shared declarations. */
#ifndef DUMPLAB_KERNEL_H
#define DUMPLAB_KERNEL_H

#include "libc.h"
#include "lowcore.h"
#include "hypercall.h"
#include "sigp.h"
#include "printk.h"

#define MAX_CPUS        64
#define PAGE_SIZE       4096UL
#define MiB             (1UL << 20)
#define KERNEL_RELEASE  "dumplab-1.0"
#define UTS_NODENAME    "dumplab"


/* Lowcore fields of the running CPU: real addresses 0-0x1FFF reach its own prefix area. */
#define LC_U64(off) (*(volatile unsigned long *)(unsigned long)(off))
#define LC_U32(off) (*(volatile unsigned int *)(unsigned long)(off))
#define LC_U16(off) (*(volatile unsigned short *)(unsigned long)(off))
#define LC_PSW(off) (*(volatile psw_t *)(unsigned long)(off))

#define barrier() asm volatile("" ::: "memory")

struct pt_regs {
	unsigned long gprs[16];
	psw_t psw;
	unsigned long pad[2];
};

/* Numbered as machine/profile.py's SHUTDOWN_ACTIONS lists them, from 1. */
enum shutdown_action { ACTION_STOP = 1, ACTION_DUMP = 2, ACTION_DUMP_REIPL = 3, ACTION_REIPL = 4 };

struct boot_params {
	unsigned long crashkernel_size;
	unsigned int workload_percent;
	enum shutdown_action on_panic;
	enum shutdown_action on_restart;
	unsigned int dump_devno;
	int kdump_at_boot;
};

struct kernel_state {
	struct machine_info machine;
	struct boot_params params;
	unsigned int ncpus;
	unsigned long crash_base;
	unsigned long workload_start;
	unsigned long workload_size;
	unsigned long boot_tod;
};

extern struct kernel_state kernel;
extern char command_line[];
extern unsigned long heartbeat[MAX_CPUS];
extern unsigned long lowcore_ptr[MAX_CPUS];
extern unsigned int cpu_address[MAX_CPUS];
extern volatile unsigned int workload_lock;

/* head.S */
void ext_int_handler(void);
void pgm_check_handler(void);
void svc_handler(void);
void restart_int_handler(void);
void call_on_stack(unsigned long arg, unsigned long stack_top, void (*fn)(unsigned long))
	__attribute__((noreturn));
void stop_here(void) __attribute__((noreturn));

/* cpu.c */
unsigned int smp_processor_id(void);
unsigned long get_tod(void);
void set_clock_comparator(unsigned long tod);
unsigned long irq_disable(void);
void irq_enable(void);
void irq_restore(unsigned long mask);
void psw_idle(void);
void disabled_wait(unsigned long code) __attribute__((noreturn));
void spin_lock(volatile unsigned int *lock);
void spin_unlock(volatile unsigned int *lock);
int spin_trylock(volatile unsigned int *lock);
void write_absolute_u64(unsigned long address, unsigned long value);
void write_absolute_u32(unsigned long address, unsigned int value);
unsigned long uptime_ms(void);

/* setup.c */
void *memblock_alloc(unsigned long size, unsigned long align);

/* smp.c */
void smp_detect(void);
void smp_boot_cpus(void);
void smp_send_stop(void);
void smp_stop_self(void) __attribute__((noreturn));
void smp_wait_stopped(unsigned int cpu);
void smp_call_ipl_cpu(void (*fn)(unsigned long), unsigned long data);
void setup_lowcore(unsigned int cpu, unsigned long lowcore);
void smp_emergency_signal(unsigned int cpu);

/* irq.c */
void arm_tick(void);
extern volatile unsigned long jiffies;
extern volatile int command_waiting;

/* os_info.c */
void os_info_init(void);
void vmcoreinfo_crashtime(void);
unsigned long os_info_address(void);
void os_info_crashkernel_add(unsigned long base, unsigned long size);
void os_info_entry_add(unsigned int index, unsigned long address, unsigned long size);

/* kexec.c */
extern int kexec_crash_loaded;
void kexec_init(void);
void kdump_load(void);
void kdump_unload(void);
void kdump_status(void);
void crash_kexec(void);

/* workload.c */
void workload_init(void);
void cpu_loop(unsigned long cpu) __attribute__((noreturn));
void hang(const char *kind);
extern volatile int loop_hang;

/* oscmd.c */
void process_os_commands(void);
void queue_os_command(const char *text, int priority);

/* panic.c */
void panic(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
void do_restart(unsigned long data) __attribute__((noreturn));
void reipl_boot_device(void);
const char *action_name(enum shutdown_action action);
int parse_action(const char *word, enum shutdown_action *action);
unsigned int ipl_devno(void);
unsigned int reipl_devno(void);
void set_reipl_devno(unsigned int devno);

/* dumptools.c: zipl -d, lsshut, chshut, lsreipl, chreipl, dumpconf, zgetdump */
void cmd_zipl(const char *arg);
void cmd_lsshut(const char *arg);
void cmd_chshut(const char *arg);
void cmd_lsreipl(const char *arg);
void cmd_chreipl(const char *arg);
void cmd_dumpconf(const char *arg);
void cmd_zgetdump(const char *arg);

#endif
