/* The stand-alone kdump loader's entry (path D, `zipl -d DEVNO -k auto`): IPL'd into
 * 0x2000-0x10000 like the stand-alone dumper; the IPL PSW at absolute 0 points here (31-bit). */
#include "startup.h"

#define STACK_SIZE 8192

	DUMP_DEVICE_PROGRAM_HEAD loader_main, loader_program_check, loader_stack, STACK_SIZE

	.section .note.GNU-stack, "", @progbits
