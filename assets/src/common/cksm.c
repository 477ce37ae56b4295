/* csum_partial with the CKSM instruction, as arch/s390/include/asm/checksum.h does it.
 *
 * CKSM R1,R2: R1 bits 32-63 hold the running sum, R2/R2+1 an even/odd pair with the address
 * and the remaining length.  The CPU may stop after a CPU-determined amount of data with
 * condition code 3 (QEMU, hence unicorn, stops every 8 KiB), the registers updated so that
 * executing the instruction again continues: hence the loop on cc 3 ("jo").
 */
#include "cksm.h"

unsigned int cksm(const void *buf, unsigned long len, unsigned int initial)
{
	register unsigned long addr asm("4") = (unsigned long)buf;
	register unsigned long count asm("5") = len;
	unsigned long sum = initial;

	asm volatile("0:	cksm	%[sum],%[addr]\n"
		     "	jo	0b\n"
		     : [sum] "+&d" (sum), [addr] "+&d" (addr), "+&d" (count)
		     :
		     : "cc", "memory");
	return (unsigned int)sum;
}
