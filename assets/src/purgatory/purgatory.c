/* The kexec purgatory (our own, after the kexec-tools design of 2011): verify the crash
 * image, save the CPUs' registers into the pre-allocated ELF notes, swap [0, crash_size)
 * with the crashkernel region, and enter the kdump kernel at 0x10010. */
/* Position independent: every symbol is local to this image, so no GOT entry (which would
 * hold a link-time address) is ever needed. */
#pragma GCC visibility push(hidden)
#include "libc.h"
#include "lowcore.h"
#include "hypercall.h"
#include "cksm.h"
#include "sha256.h"
#include "kexec.h"

#define OS_INFO_MAGIC 0x4f53494e464f535aUL
#define PAGE_SIZE     4096UL
#define SWAP_CHUNK    256UL
#define SEGMENT_PROGRESS_STEP (16UL << 10)
/* A trace id of our own (docs/GUEST_ABI.md); kept out of hypercall.h so that no other
 * program's line table moves. */
#define TRACE_SEGMENT_PROGRESS 22

struct purgatory_info purgatory_info = { .magic = PURGATORY_MAGIC };

extern char _text[];
extern char swap_trampoline[], swap_trampoline_end[];
extern char purgatory_verify_failed[];
void purgatory_wait_failed(void) __attribute__((noreturn));

/* --- absolute storage ------------------------------------------------------------------- */

static unsigned long prefix(void)
{
	unsigned int value;

	asm volatile("stpx %0" : "=Q" (value));
	return value;
}

/* Absolute 0-0x1FFF through our prefix area when the caller runs with a prefix. */
static const void *absolute(unsigned long address)
{
	unsigned long p = prefix();

	if (p && address < LOWCORE_SIZE)
		return (const void *)(p + address);
	if (p && address >= p && address < p + LOWCORE_SIZE)
		return (const void *)(address - p);
	return (const void *)address;
}

static unsigned long absolute_u64(unsigned long address)
{
	unsigned long value;

	memcpy(&value, absolute(address), 8);
	return value;
}

/* --- checks ------------------------------------------------------------------------------ */

static void report(unsigned long kind, unsigned long index, int ok, unsigned long value)
{
	hc_trace(TRACE_PURGATORY_CHECK, kind, index, ok, value);
}

/* os_info must be intact, and must vouch for this purgatory with its checksum: the kdump
 * code can only be trusted if the structure that points to it can. */
static int check_os_info(void)
{
	unsigned long address = absolute_u64(LC_OS_INFO);
	const unsigned char *os_info = absolute(address);
	unsigned long magic;
	unsigned int csum, computed, entry_csum, own;
	int ok;

	if (!address || address & (PAGE_SIZE - 1)) {
		report(CHECK_OS_INFO, 0, 0, 0);
		return 0;
	}
	memcpy(&magic, os_info, 8);
	memcpy(&csum, os_info + 8, 4);
	computed = cksm(os_info + 0x0C, PAGE_SIZE - 0x0C, 0);
	ok = magic == OS_INFO_MAGIC && computed == csum;
	report(CHECK_OS_INFO, 0, ok, computed);
	if (!ok)
		return 0;
	memcpy(&entry_csum, os_info + 0x20 + 20 * OS_INFO_PURGATORY + 16, 4);
	own = cksm(_text, purgatory_info.checked_size, 0);
	ok = own == entry_csum;
	report(CHECK_PURGATORY_CKSM, OS_INFO_PURGATORY, ok, own);
	return ok;
}

static unsigned char computed_digest[32];

/* Hash one segment in steps of SEGMENT_PROGRESS_STEP bytes and report each step (and the
 * start), so the operator can watch the digest being computed.  One hypercall per step
 * costs nothing next to the thousands of instructions each 64-byte block takes. */
static void hash_segment(unsigned long index, const unsigned char *start, unsigned long len)
{
	struct sha256_ctx ctx;
	unsigned long done = 0;

	sha256_init(&ctx);
	hc_trace(TRACE_SEGMENT_PROGRESS, index, 0, len, (unsigned long)start);
	while (done < len) {
		unsigned long step = len - done;

		if (step > SEGMENT_PROGRESS_STEP)
			step = SEGMENT_PROGRESS_STEP;
		sha256_update(&ctx, start + done, step);
		done += step;
		hc_trace(TRACE_SEGMENT_PROGRESS, index, done, len, (unsigned long)start);
	}
	sha256_final(&ctx, computed_digest);
}

static int check_segments(void)
{
	int all_ok = 1;

	for (unsigned long i = 0; i < purgatory_info.nr_regions; i++) {
		const struct sha_region *region = &purgatory_info.regions[i];
		int ok;

		hash_segment(i, (const unsigned char *)region->start, region->len);
		ok = !memcmp(computed_digest, region->digest, 32);
		report(CHECK_SEGMENT_SHA256, i, ok, (unsigned long)computed_digest);
		all_ok &= ok;
	}
	return all_ok;
}

static int verify(void)
{
	int ok = check_os_info();

	/* Hash every segment even after a failure, so the operator sees each verdict. */
	return check_segments() && ok;
}

/* --- ELF notes ----------------------------------------------------------------------------- */

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

/* NT_PRSTATUS .. NT_S390_PREFIX of one CPU, from its store-status save area, in the order and
 * with the names of a kernel vmcore (S390_FACTS.md §5.3, §5.4). */
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

static void save_notes(const struct cpu_table *cpus)
{
	unsigned char *header = (unsigned char *)purgatory_info.elfcorehdr;
	unsigned char *p = header + purgatory_info.notes_offset;
	unsigned long *note_filesz = (unsigned long *)(header + 64 + 32);
	unsigned long count = cpus->count;

	if (count * NOTES_PER_CPU_SIZE > purgatory_info.notes_room)
		count = purgatory_info.notes_room / NOTES_PER_CPU_SIZE;
	for (unsigned long i = 0; i < count; i++) {
		unsigned char *note = p;

		p = put_cpu_notes(p, absolute(cpus->prefix[i] + LC_FPREGS_SAVE_AREA), i + 1);
		*note_filesz += p - note;
		hc_trace(TRACE_NOTES_SAVED, i + 1, cpus->prefix[i], (unsigned long)note, p - note);
	}
}

/* --- the swap ------------------------------------------------------------------------------ */

/* Exchange two ranges (multiples of 256 bytes) in place: three XCs swap 256 bytes with no
 * buffer, the way the purgatory's MVCLE-through-a-buffer does it in fewer instructions. */
static void swap_range(unsigned char *a, unsigned char *b, unsigned long len)
{
	for (unsigned long off = 0; off < len; off += SWAP_CHUNK)
		asm volatile("xc 0(256,%0),0(%1)\n"
			     "xc 0(256,%1),0(%0)\n"
			     "xc 0(256,%0),0(%1)"
			     : : "a" (a + off), "a" (b + off) : "memory", "cc");
}

/* Exchange [0, crash_size) with the crashkernel region, all but our own pages, which the
 * trampoline swaps last from the new system's lowcore. The old system ends up whole in the
 * crashkernel region; the kdump kernel, its initrd and ELF header in [0, crash_size). */
static void enter_trampoline(unsigned long purgatory) __attribute__((noreturn));
static void swap_and_enter(void) __attribute__((noreturn));
static void swap_and_enter(void)
{
	unsigned long base = purgatory_info.crash_base;
	unsigned long size = purgatory_info.crash_size;

	hc_trace(TRACE_SWAP, 1, base, size, 0);
	swap_range((unsigned char *)0, (unsigned char *)base, PURGATORY_OFFSET);
	swap_range((unsigned char *)(PURGATORY_OFFSET + PURGATORY_MAX),
		   (unsigned char *)(base + PURGATORY_OFFSET + PURGATORY_MAX),
		   size - PURGATORY_OFFSET - PURGATORY_MAX);
	*(volatile unsigned long *)0x10418UL = base;	/* OLDMEM_BASE */
	*(volatile unsigned long *)0x10420UL = size;	/* OLDMEM_SIZE */
	memcpy((void *)0x1000, swap_trampoline, swap_trampoline_end - swap_trampoline);
	*(volatile unsigned long *)0xf00UL = PSW_MASK_64;
	*(volatile unsigned long *)0xf08UL = purgatory_info.kernel_entry;
	hc_trace(TRACE_SWAP, 2, base, size, 0);
	hc_trace(TRACE_ENTER_KDUMP, purgatory_info.kernel_entry, base, size, 0);
	enter_trampoline(base + PURGATORY_OFFSET);
}

/* Separate, so that nothing runs between loading the trampoline's registers and the branch. */
static void enter_trampoline(unsigned long purgatory)
{
	register unsigned long r2 asm("2") = purgatory;
	register unsigned long r3 asm("3") = PURGATORY_OFFSET;
	register unsigned long r4 asm("4") = PURGATORY_MAX;

	asm volatile("lghi %%r1,0x1000\n"
		     "br %%r1" : : "d" (r2), "d" (r3), "d" (r4) : "r1", "memory");
	__builtin_unreachable();
}

/* --- entry ----------------------------------------------------------------------------------- */

long purgatory_main(long mode, const struct cpu_table *cpus)
{
	int ok;

	hc_trace(TRACE_PURGATORY_ENTER, mode, (unsigned long)_text, 0, 0);
	ok = purgatory_info.magic == PURGATORY_MAGIC && verify();
	hc_trace(TRACE_PURGATORY_RESULT, mode, ok ? PURGATORY_OK : PURGATORY_BAD, 0, 0);
	if (mode == 0)
		return ok ? PURGATORY_OK : PURGATORY_BAD;
	if (!ok) {
		*(volatile unsigned long *)(purgatory_verify_failed + 16) =
			(unsigned long)purgatory_verify_failed;
		purgatory_wait_failed();
	}
	save_notes(cpus);
	swap_and_enter();
}

void purgatory_wait_failed(void)
{
	asm volatile("j purgatory_verify_failed");
	__builtin_unreachable();
}
