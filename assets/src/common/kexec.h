/* The kexec crash image as the production kernel, the purgatory, the kdump kernel, the
 * stand-alone dumper and the host (machine/kexec.py) all see it. Layout of the crashkernel
 * region (offsets from crash_base):
 *
 *   0x000000  free; after the swap: the old system's [0, 0x2000)
 *   0x002000  purgatory (position independent, at most 0xE000 bytes with its stack)
 *   0x010000  kdump kernel image (Linux layout: 0x10010 is its kdump entry)
 *   0x100000  ELF core header, pre-allocated: PT_NOTE with room for every CPU's notes and
 *             VMCOREINFO, PT_LOADs of old memory (crashkernel region left out)
 *   0x800000  initrd
 */
#ifndef DUMPLAB_KEXEC_H
#define DUMPLAB_KEXEC_H

#define PURGATORY_OFFSET      0x2000UL
#define PURGATORY_MAX         0xE000UL
#define KDUMP_IMAGE_OFFSET    0x10000UL
#define ELFCOREHDR_OFFSET     0x100000UL
#define INITRD_OFFSET         0x800000UL
#define KDUMP_ENTRY           0x10010UL

#define PURGATORY_MAGIC       0x5055524741544f52UL	/* "PURGATOR" */
#define KEXEC_MAX_REGIONS     16
#define KEXEC_MAX_SEGMENTS    8
#define KEXEC_MAX_CPUS        64
#define OS_INFO_PURGATORY     3	/* os_info entry: the 2011 design's kdump entry point */

#define NOTES_PER_CPU_SIZE    764	/* the 7 notes of one CPU, padded */

/* Purgatory verification results (r2 of a verify-mode call). */
#define PURGATORY_OK          0
#define PURGATORY_BAD         1

/* Purgatory check kinds (TRACE_PURGATORY_CHECK). */
#define CHECK_OS_INFO         1
#define CHECK_PURGATORY_CKSM  2
#define CHECK_SEGMENT_SHA256  3

#ifndef __ASSEMBLER__
struct sha_region {
	unsigned long start;
	unsigned long len;
	unsigned char digest[32];
};

/* Filled in by kexec (the host) inside the purgatory segment: the purgatory's own data is
 * left out of the digests, as kexec-tools does. */
struct purgatory_info {
	unsigned long magic;
	unsigned long crash_base;
	unsigned long crash_size;
	unsigned long kernel_entry;
	unsigned long elfcorehdr;	/* header segment, kdump-side address before the swap */
	unsigned long elfcorehdr_size;
	unsigned long notes_offset;	/* offset of the first CPU note in the header segment */
	unsigned long notes_room;
	unsigned long checked_size;	/* bytes of the purgatory covered by its os_info checksum */
	unsigned long nr_regions;
	struct sha_region regions[KEXEC_MAX_REGIONS];
};

/* Load mode's second argument: the CPUs whose status is in their lowcore save area
 * (prefix + 0x1200), the dumping CPU first. */
struct cpu_table {
	unsigned long count;
	unsigned long prefix[KEXEC_MAX_CPUS];
};

/* What KEXEC_PREPARE returns in the staging buffer's descriptor table. */
struct kexec_segment {
	unsigned long buf_offset;	/* in the staging buffer */
	unsigned long bufsz;
	unsigned long mem;		/* destination (absolute) */
	unsigned long memsz;
};

struct kexec_descriptors {
	unsigned long nr_segments;
	unsigned long entry;		/* purgatory entry (absolute) */
	unsigned long purgatory_segment;
	unsigned long purgatory_checked_size;
	struct kexec_segment segment[KEXEC_MAX_SEGMENTS];
};
#endif
#endif
