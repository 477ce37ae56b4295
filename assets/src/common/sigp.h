/* SIGNAL PROCESSOR orders, condition codes and status bits (z/Architecture). */
#ifndef DUMPLAB_SIGP_H
#define DUMPLAB_SIGP_H

#define SIGP_SENSE                   0x01
#define SIGP_EXTERNAL_CALL           0x02
#define SIGP_EMERGENCY_SIGNAL        0x03
#define SIGP_START                   0x04
#define SIGP_STOP                    0x05
#define SIGP_RESTART                 0x06
#define SIGP_STOP_AND_STORE_STATUS   0x09
#define SIGP_INITIAL_CPU_RESET       0x0B
#define SIGP_CPU_RESET               0x0C
#define SIGP_SET_PREFIX              0x0D
#define SIGP_STORE_STATUS_AT_ADDRESS 0x0E
#define SIGP_SET_ARCHITECTURE        0x12
#define SIGP_SENSE_RUNNING           0x15

#define SIGP_CC_ORDER_CODE_ACCEPTED  0
#define SIGP_CC_STATUS_STORED        1
#define SIGP_CC_BUSY                 2
#define SIGP_CC_NOT_OPERATIONAL      3

#define SIGP_STATUS_INVALID_ORDER      0x00000002U
#define SIGP_STATUS_CHECK_STOP         0x00000010U
#define SIGP_STATUS_STOPPED            0x00000040U
#define SIGP_STATUS_EXT_CALL_PENDING   0x00000080U
#define SIGP_STATUS_INVALID_PARAMETER  0x00000100U
#define SIGP_STATUS_INCORRECT_STATE    0x00000200U
#define SIGP_STATUS_NOT_RUNNING        0x00000400U

#ifndef __ASSEMBLER__
/* Returns the condition code; *status receives the status word when cc == 1. */
static inline int sigp(unsigned int addr, unsigned int order, unsigned long parm,
		       unsigned int *status)
{
	register unsigned long r1 asm("1") = parm;
	int cc;

	asm volatile("sigp %[r1],%[addr],0(%[order])\n"
		     "ipm %[cc]\n"
		     "srl %[cc],28"
		     : [cc] "=d" (cc), [r1] "+d" (r1)
		     : [addr] "d" (addr), [order] "a" (order)
		     : "cc", "memory");
	if (status && cc == SIGP_CC_STATUS_STORED)
		*status = (unsigned int)r1;
	return cc;
}
#endif
#endif
