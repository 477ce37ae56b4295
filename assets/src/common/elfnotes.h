/* The ELF notes of one CPU in a vmcore, from its store-status save area, in the order and with
 * the names of a kernel vmcore (S390_FACTS.md §5.3, §5.4). Shared by the purgatory (which fills
 * the pre-allocated notes kexec made) and the kdump kernel (which builds its own ELF core
 * header when a stand-alone kdump loader started it). Static: each program gets its copy. */
#ifndef DUMPLAB_ELFNOTES_H
#define DUMPLAB_ELFNOTES_H

#include "libc.h"

static unsigned char *put_note(unsigned char *p, const char *name, unsigned int type,
			       const void *desc, unsigned int descsz)
{
	unsigned int namesz = strlen(name) + 1;
	unsigned int header[3] = { namesz, descsz, type };

	memcpy(p, header, 12);
	p += 12;
	memset(p, 0, (namesz + 3) & ~3U);
	memcpy(p, name, namesz);
	p += (namesz + 3) & ~3U;
	memset(p, 0, (descsz + 3) & ~3U);
	memcpy(p, desc, descsz);
	return p + ((descsz + 3) & ~3U);
}

/* NT_PRSTATUS .. NT_S390_PREFIX of one CPU (pid pid) from its 512-byte save area. */
static unsigned char *put_cpu_notes(unsigned char *p, const unsigned char *save, unsigned int pid)
{
	unsigned char prstatus[336], fpregs[136];
	unsigned long cpu_timer, todcmp;
	unsigned int todpreg, prefix_reg;

	memset(prstatus, 0, sizeof(prstatus));
	memcpy(prstatus + 32, &pid, 4);
	memcpy(prstatus + 112, save + 0x100, 16);	/* PSW */
	memcpy(prstatus + 128, save + 0x080, 128);	/* GPRs */
	memcpy(prstatus + 256, save + 0x140, 64);	/* ARs */
	p = put_note(p, "CORE", 1, prstatus, sizeof(prstatus));
	memset(fpregs, 0, sizeof(fpregs));
	memcpy(fpregs, save + 0x11C, 4);		/* FPC */
	memcpy(fpregs + 8, save + 0x000, 128);		/* FPRs */
	p = put_note(p, "CORE", 2, fpregs, sizeof(fpregs));
	memcpy(&cpu_timer, save + 0x128, 8);
	p = put_note(p, "LINUX", 0x301, &cpu_timer, 8);
	memcpy(&todcmp, save + 0x130, 8);
	p = put_note(p, "LINUX", 0x302, &todcmp, 8);
	memcpy(&todpreg, save + 0x124, 4);
	p = put_note(p, "LINUX", 0x303, &todpreg, 4);
	p = put_note(p, "LINUX", 0x304, save + 0x180, 128);
	memcpy(&prefix_reg, save + 0x118, 4);
	return put_note(p, "LINUX", 0x305, &prefix_reg, 4);
}

#endif
