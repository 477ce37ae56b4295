/* Per-CPU primitives: CPU number, clocks, interruption masks, wait states, spinlocks. */
#include "kernel.h"

unsigned int smp_processor_id(void)
{
	return LC_U32(LC_CPU_NR);
}

unsigned long get_tod(void)
{
	unsigned long tod;

	asm volatile("stck %0" : "=Q" (tod) : : "cc");
	return tod;
}

void set_clock_comparator(unsigned long tod)
{
	asm volatile("sckc %0" : : "Q" (tod));
}

/* STNSM/STOSM work on the first byte of the PSW mask: 0x03 are the I/O and external bits. */
unsigned long irq_disable(void)
{
	unsigned char mask;

	asm volatile("stnsm %0,0xfc" : "=Q" (mask) : : "memory");
	return mask;
}

void irq_enable(void)
{
	unsigned char mask;

	asm volatile("stosm %0,0x01" : "=Q" (mask) : : "memory");
}

void irq_restore(unsigned long mask)
{
	unsigned char byte = mask;

	asm volatile("ssm %0" : : "Q" (byte) : "memory");
}

/* Enabled wait for external interruptions. The external handler clears the wait bit in the
 * old PSW, so execution continues after the LPSWE once an interruption was handled. */
void psw_idle(void)
{
	psw_t psw = { PSW_MASK_EXT | PSW_MASK_MCHECK | PSW_MASK_WAIT | PSW_MASK_64, 0 };

	asm volatile("larl %%r1,0f\n"
		     "stg %%r1,8(%[psw])\n"
		     "lpswe 0(%[psw])\n"
		     "0:"
		     : : [psw] "a" (&psw) : "r1", "memory", "cc");
}

/* A disabled wait: only the operator can do anything with this CPU now. */
void disabled_wait(unsigned long code)
{
	psw_t psw = { PSW_MASK_WAIT | PSW_MASK_64, code };

	asm volatile("lpswe 0(%0)" : : "a" (&psw) : "memory");
	for (;;)
		;
}

int spin_trylock(volatile unsigned int *lock)
{
	return __sync_bool_compare_and_swap(lock, 0, smp_processor_id() + 1);
}

void spin_lock(volatile unsigned int *lock)
{
	while (!spin_trylock(lock))
		while (*lock)
			barrier();
}

void spin_unlock(volatile unsigned int *lock)
{
	__sync_synchronize();
	*lock = 0;
}

/* Absolute 0-0x1FFF is reached through the real address of our own prefix area (prefixing
 * swaps the two), as Linux's memcpy_absolute does. */
void write_absolute_u64(unsigned long address, unsigned long value)
{
	unsigned int prefix;
	unsigned long real = address;

	asm volatile("stpx %0" : "=Q" (prefix));
	if (address < LOWCORE_SIZE)
		real = prefix + address;
	asm volatile("stg %1,0(%0)" : : "a" (real), "d" (value) : "memory");
}

void write_absolute_u32(unsigned long address, unsigned int value)
{
	unsigned int prefix;
	unsigned long real = address;

	asm volatile("stpx %0" : "=Q" (prefix));
	if (address < LOWCORE_SIZE)
		real = prefix + address;
	asm volatile("st %1,0(%0)" : : "a" (real), "d" (value) : "memory");
}

unsigned long uptime_ms(void)
{
	return (get_tod() - kernel.boot_tod) / 4096000;
}
