/* DIAGNOSE 308: set the IPL parameter block and re-IPL (S390_FACTS §3.3). */
#ifndef DUMPLAB_DIAG308_H
#define DUMPLAB_DIAG308_H

#define DIAG308_LOAD_CLEAR       3
#define DIAG308_LOAD_NORMAL_DUMP 4
#define DIAG308_SET              5
#define DIAG308_LOAD_NORMAL      7
#define IPIB_SIZE                120

/* Returns the DIAG's return code (0x0001 ok, 0x0102 no configuration); a load that the
 * machine accepts does not return at all. */
static inline unsigned long diag308(unsigned long subcode, void *address)
{
	register unsigned long r2 asm("2") = (unsigned long)address;
	register unsigned long r3 asm("3") = 0;

	asm volatile("diag %[r2],%[subcode],0x308"
		     : [r2] "+d" (r2), "+d" (r3) : [subcode] "d" (subcode) : "memory", "cc");
	return r3;
}

/* A CCW IPL parameter block for devno: list header, then the CCW block (type 2) with the load
 * parameter (blanks) at +8 and the device number at +102. */
static inline void build_ccw_ipib(unsigned char ipib[IPIB_SIZE], unsigned int devno)
{
	for (unsigned int i = 0; i < IPIB_SIZE; i++)
		ipib[i] = 0;
	*(unsigned int *)&ipib[0] = IPIB_SIZE;
	ipib[7] = 1;
	*(unsigned int *)&ipib[8] = IPIB_SIZE - 8;
	ipib[12] = 2;
	for (unsigned int i = 16; i < 24; i++)
		ipib[i] = ' ';
	*(unsigned short *)&ipib[8 + 102] = devno;
}

#endif
