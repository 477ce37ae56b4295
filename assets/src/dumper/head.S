/* The stand-alone dumper's entry: IPL'd into 0x2000-0x10000, memory Linux leaves unused. The
 * IPL PSW at absolute 0 points here (31-bit mode). */
#include "startup.h"

#define STACK_SIZE 8192

	DUMP_DEVICE_PROGRAM_HEAD dumper_main, dumper_program_check, dumper_stack, STACK_SIZE

	.section .note.GNU-stack, "", @progbits
